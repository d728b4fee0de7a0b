//! One cached block: the KV (or MLA latent) of 64 consecutive positions for every layer, and
//! its on-disk encoding.
//!
//! File layout (little-endian): `b"WKVB"`, `u32` version, the 32-byte block key, `u8` dtype,
//! `u32` tensor count, per tensor `u32` rank + `u64` dims, then the raw element bytes of every
//! tensor, then a CRC-32 of everything before it. A block is only ever served after its
//! checksum, key, dtype and every shape match what the running model expects.

use super::{BlockKey, CacheError};
use candle_core::{DType, Device, Tensor};
use half::{bf16, f16};

const MAGIC: &[u8; 4] = b"WKVB";
const VERSION: u32 = 1;

/// Per layer, the tensors of `LayerCache::export` (`[k, v]` or `[latent]`), batch 1.
#[derive(Debug, Clone)]
pub struct Block {
    pub layers: Vec<Vec<Tensor>>,
}

impl Block {
    pub fn bytes(&self) -> usize {
        self.layers.iter().flatten().map(|t| t.elem_count() * t.dtype().size_in_bytes()).sum()
    }

    pub fn encode(&self, key: &BlockKey) -> Result<Vec<u8>, CacheError> {
        let dtype = self.layers.first().and_then(|l| l.first()).map_or(DType::F32, |t| t.dtype());
        let mut out = Vec::with_capacity(self.bytes() + 256);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&key.0);
        out.push(dtype_code(dtype)?);
        let tensors: Vec<&Tensor> = self.layers.iter().flatten().collect();
        out.extend_from_slice(&(tensors.len() as u32).to_le_bytes());
        for t in &tensors {
            out.extend_from_slice(&(t.rank() as u32).to_le_bytes());
            for &d in t.dims() {
                out.extend_from_slice(&(d as u64).to_le_bytes());
            }
        }
        for t in &tensors {
            if t.dtype() != dtype {
                return Err(CacheError::Format(format!("mixed dtypes in one block: {:?} and {dtype:?}", t.dtype())));
            }
            append_elements(t, &mut out)?;
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Decodes and verifies a block: `expected` gives, per layer, the shapes its tensors must
    /// have; any mismatch is an error (the caller drops the file and recomputes).
    pub fn decode(
        bytes: &[u8],
        key: &BlockKey,
        dtype: DType,
        expected: &[Vec<Vec<usize>>],
        device: &Device,
    ) -> Result<Block, CacheError> {
        let bad = |m: &str| CacheError::Format(m.to_string());
        if bytes.len() < 4 + 4 + 32 + 1 + 4 + 4 {
            return Err(bad("file shorter than a block header"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err(bad("checksum mismatch (torn or corrupted write)"));
        }
        let mut r = Reader { buf: body, pos: 0 };
        if r.take(4)? != MAGIC {
            return Err(bad("bad magic"));
        }
        let version = r.u32()?;
        if version != VERSION {
            return Err(CacheError::Format(format!("version {version}, expected {VERSION}")));
        }
        if r.take(32)? != key.0 {
            return Err(bad("stored key differs from the file's name"));
        }
        let code = r.take(1)?[0];
        if code != dtype_code(dtype)? {
            return Err(CacheError::Format(format!("dtype code {code}, expected {:?}", dtype)));
        }
        let n = r.u32()? as usize;
        let want: Vec<&Vec<usize>> = expected.iter().flatten().collect();
        if n != want.len() {
            return Err(CacheError::Format(format!("{n} tensors, expected {}", want.len())));
        }
        let mut shapes = Vec::with_capacity(n);
        for w in &want {
            let rank = r.u32()? as usize;
            if rank != w.len() {
                return Err(CacheError::Format(format!("tensor rank {rank}, expected {}", w.len())));
            }
            let dims = (0..rank).map(|_| r.u64().map(|d| d as usize)).collect::<Result<Vec<_>, _>>()?;
            if &dims != *w {
                return Err(CacheError::Format(format!("tensor shape {dims:?}, expected {w:?}")));
            }
            shapes.push(dims);
        }
        let mut flat = Vec::with_capacity(n);
        for dims in shapes {
            let count: usize = dims.iter().product();
            let raw = r.take(count * dtype.size_in_bytes())?;
            flat.push(tensor_from_bytes(raw, dtype, &dims, device)?);
        }
        if r.pos != body.len() {
            return Err(bad("trailing bytes after the tensors"));
        }
        let mut it = flat.into_iter();
        let layers = expected.iter().map(|l| it.by_ref().take(l.len()).collect()).collect();
        Ok(Block { layers })
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CacheError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| {
            CacheError::Format(format!("truncated: wanted {n} bytes at offset {}, file body is {}", self.pos, self.buf.len()))
        })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, CacheError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, CacheError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
}

fn dtype_code(d: DType) -> Result<u8, CacheError> {
    match d {
        DType::F32 => Ok(0),
        DType::F16 => Ok(1),
        DType::BF16 => Ok(2),
        other => Err(CacheError::Format(format!("cache dtype {other:?} cannot be stored (f32, f16, bf16 only)"))),
    }
}

fn append_elements(t: &Tensor, out: &mut Vec<u8>) -> Result<(), CacheError> {
    let flat = t.flatten_all()?;
    match t.dtype() {
        DType::F32 => flat.to_vec1::<f32>()?.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        DType::F16 => flat.to_vec1::<f16>()?.iter().for_each(|x| out.extend_from_slice(&x.to_bits().to_le_bytes())),
        DType::BF16 => flat.to_vec1::<bf16>()?.iter().for_each(|x| out.extend_from_slice(&x.to_bits().to_le_bytes())),
        other => return Err(CacheError::Format(format!("cache dtype {other:?} cannot be stored"))),
    }
    Ok(())
}

fn tensor_from_bytes(raw: &[u8], dtype: DType, dims: &[usize], device: &Device) -> Result<Tensor, CacheError> {
    let t = match dtype {
        DType::F32 => {
            let v: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4"))).collect();
            Tensor::from_vec(v, dims, device)?
        }
        DType::F16 => {
            let v: Vec<f16> = raw.chunks_exact(2).map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]]))).collect();
            Tensor::from_vec(v, dims, device)?
        }
        DType::BF16 => {
            let v: Vec<bf16> = raw.chunks_exact(2).map(|c| bf16::from_bits(u16::from_le_bytes([c[0], c[1]]))).collect();
            Tensor::from_vec(v, dims, device)?
        }
        other => return Err(CacheError::Format(format!("cache dtype {other:?} cannot be stored"))),
    };
    Ok(t)
}
