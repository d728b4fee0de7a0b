//! Parsing of the GGUF header (GGUF spec, v2 and v3): magic, version, tensor and KV counts,
//! the metadata KV pairs, the tensor infos, and the start of the aligned data section.
//!
//! Kept apart from [`super::GgufFile`] so that the same code reads a memory-mapped file or an
//! in-memory buffer, and so that every structural check lives in one place.

use std::collections::HashMap;

use super::cursor::Cursor;
use super::error::GgufErrorKind;
use super::tensor::{GgmlType, TensorInfo, GGML_MAX_DIMS};
use super::value::{GgufArray, GgufValue, GgufValueType};

pub(crate) const GGUF_MAGIC: &[u8; 4] = b"GGUF";
pub(crate) const DEFAULT_ALIGNMENT: u64 = 32;
/// Arrays of arrays deeper than this are refused (the spec allows nesting; no real file
/// nests more than once, and unbounded nesting would let a file overflow the stack).
pub(crate) const MAX_ARRAY_DEPTH: usize = 8;
/// Smallest possible KV pair: empty key (8) + type (4) + a one-byte value.
const MIN_KV_BYTES: u64 = 13;
/// Smallest possible tensor info: empty name (8) + n_dims (4) + type (4) + offset (8).
const MIN_TENSOR_INFO_BYTES: u64 = 24;

type R<T> = Result<T, GgufErrorKind>;

pub(crate) struct Header {
    pub version: u32,
    pub metadata: Vec<(String, GgufValue)>,
    pub index: HashMap<String, usize>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    pub data_offset: u64,
}

pub(crate) fn parse_header(buf: &[u8]) -> R<Header> {
    let mut c = Cursor::new(buf);
    let magic = c.take(4.min(buf.len() as u64), &|| "magic".into())?;
    if magic != GGUF_MAGIC {
        return Err(GgufErrorKind::BadMagic { found: magic.to_vec() });
    }
    let version = c.u32(&|| "version".into())?;
    if version != 2 && version != 3 {
        return Err(GgufErrorKind::UnsupportedVersion { version });
    }
    let n_tensors_at = c.pos();
    let n_tensors = c.u64(&|| "tensor count".into())?;
    let n_kv_at = c.pos();
    let n_kv = c.u64(&|| "metadata KV count".into())?;
    let n_kv = c.check_count(n_kv, MIN_KV_BYTES, n_kv_at, &|| "metadata KV count".into())?;
    let n_tensors =
        c.check_count(n_tensors, MIN_TENSOR_INFO_BYTES, n_tensors_at, &|| "tensor count".into())?;

    let mut metadata = Vec::with_capacity(n_kv);
    let mut index = HashMap::with_capacity(n_kv);
    for i in 0..n_kv {
        let key = c.strict_string(&|| format!("key of metadata KV pair #{i}"))?;
        let what = || format!("value of `{key}`");
        let type_at = c.pos();
        let type_id = c.u32(&what)?;
        let value = read_value(&mut c, type_id, type_at, 0, &what)?;
        if index.insert(key.clone(), metadata.len()).is_some() {
            return Err(GgufErrorKind::DuplicateKey { key });
        }
        metadata.push((key, value));
    }

    let alignment = match index.get("general.alignment").map(|&i| &metadata[i].1) {
        None => DEFAULT_ALIGNMENT,
        Some(GgufValue::U32(a)) => *a as u64,
        Some(v) => {
            return Err(GgufErrorKind::WrongType {
                key: "general.alignment".into(),
                expected: "u32".into(),
                found: v.type_description(),
            })
        }
    };
    if alignment == 0 || !alignment.is_power_of_two() {
        return Err(GgufErrorKind::BadAlignment { alignment });
    }

    let mut tensors = Vec::with_capacity(n_tensors);
    let mut names = std::collections::HashSet::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let t = read_tensor_info(&mut c, i)?;
        if !names.insert(t.name.clone()) {
            return Err(GgufErrorKind::DuplicateTensor { name: t.name });
        }
        if t.offset % alignment != 0 {
            return Err(GgufErrorKind::TensorOutOfBounds {
                name: t.name,
                reason: format!("offset {} is not a multiple of the alignment {alignment}", t.offset),
            });
        }
        tensors.push(t);
    }
    // The data section starts at the next multiple of the alignment. Past the end of the
    // buffer is allowed here (a file with zero tensors may omit the padding); tensor extents
    // are checked against the file by the caller.
    let end = c.pos();
    let data_offset = end.div_ceil(alignment) * alignment;
    Ok(Header { version, metadata, index, tensors, alignment, data_offset })
}

fn read_value(
    c: &mut Cursor<'_>,
    type_id: u32,
    type_at: u64,
    depth: usize,
    what: &dyn Fn() -> String,
) -> R<GgufValue> {
    let Some(ty) = GgufValueType::from_id(type_id) else {
        return Err(GgufErrorKind::UnknownValueType { what: what(), offset: type_at, type_id });
    };
    Ok(match ty {
        GgufValueType::U8 => GgufValue::U8(c.u8(what)?),
        GgufValueType::I8 => GgufValue::I8(c.u8(what)? as i8),
        GgufValueType::U16 => GgufValue::U16(c.u16(what)?),
        GgufValueType::I16 => GgufValue::I16(c.u16(what)? as i16),
        GgufValueType::U32 => GgufValue::U32(c.u32(what)?),
        GgufValueType::I32 => GgufValue::I32(c.u32(what)? as i32),
        GgufValueType::F32 => GgufValue::F32(f32::from_bits(c.u32(what)?)),
        GgufValueType::Bool => GgufValue::Bool(c.u8(what)? != 0),
        GgufValueType::String => GgufValue::String(c.lossy_string(what)?),
        GgufValueType::U64 => GgufValue::U64(c.u64(what)?),
        GgufValueType::I64 => GgufValue::I64(c.u64(what)? as i64),
        GgufValueType::F64 => GgufValue::F64(f64::from_bits(c.u64(what)?)),
        GgufValueType::Array => GgufValue::Array(read_array(c, depth, what)?),
    })
}

fn read_array(c: &mut Cursor<'_>, depth: usize, what: &dyn Fn() -> String) -> R<GgufArray> {
    let at = c.pos();
    if depth >= MAX_ARRAY_DEPTH {
        return Err(GgufErrorKind::TooDeep { what: what(), offset: at, max_depth: MAX_ARRAY_DEPTH });
    }
    let elem_id = c.u32(what)?;
    let Some(elem) = GgufValueType::from_id(elem_id) else {
        return Err(GgufErrorKind::UnknownValueType { what: what(), offset: at, type_id: elem_id });
    };
    let count_at = c.pos();
    let count = c.u64(what)?;
    let n = c.check_count(count, elem.min_size(), count_at, what)?;

    // Fixed-size elements: one bounds check for the whole run, then decode the slice.
    macro_rules! fixed {
        ($variant:ident, $t:ty, $conv:expr) => {{
            let size = std::mem::size_of::<$t>();
            let bytes = c.take((n * size) as u64, what)?;
            GgufArray::$variant(
                bytes
                    .chunks_exact(size)
                    .map(|ch| $conv(<[u8; std::mem::size_of::<$t>()]>::try_from(ch).unwrap_or_default()))
                    .collect(),
            )
        }};
    }
    Ok(match elem {
        GgufValueType::U8 => fixed!(U8, u8, |b: [u8; 1]| b[0]),
        GgufValueType::I8 => fixed!(I8, i8, |b: [u8; 1]| b[0] as i8),
        GgufValueType::U16 => fixed!(U16, u16, u16::from_le_bytes),
        GgufValueType::I16 => fixed!(I16, i16, i16::from_le_bytes),
        GgufValueType::U32 => fixed!(U32, u32, u32::from_le_bytes),
        GgufValueType::I32 => fixed!(I32, i32, i32::from_le_bytes),
        GgufValueType::F32 => fixed!(F32, f32, f32::from_le_bytes),
        GgufValueType::Bool => fixed!(Bool, u8, |b: [u8; 1]| b[0] != 0),
        GgufValueType::U64 => fixed!(U64, u64, u64::from_le_bytes),
        GgufValueType::I64 => fixed!(I64, i64, i64::from_le_bytes),
        GgufValueType::F64 => fixed!(F64, f64, f64::from_le_bytes),
        GgufValueType::String => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(c.lossy_string(what)?);
            }
            GgufArray::String(v)
        }
        GgufValueType::Array => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(read_array(c, depth + 1, what)?);
            }
            GgufArray::Array(v)
        }
    })
}

fn read_tensor_info(c: &mut Cursor<'_>, i: usize) -> R<TensorInfo> {
    let name = c.strict_string(&|| format!("name of tensor #{i}"))?;
    let what = || format!("info of tensor `{name}`");
    let n_dims = c.u32(&what)?;
    if n_dims as usize > GGML_MAX_DIMS {
        return Err(GgufErrorKind::BadTensorShape {
            name,
            reason: format!("{n_dims} dimensions; GGML allows at most {GGML_MAX_DIMS}"),
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        dims.push(c.u64(&what)?);
    }
    let type_id = c.u32(&what)?;
    let offset = c.u64(&what)?;
    TensorInfo::new(name, dims, type_id, GgmlType::from_id(type_id), offset)
}
