//! [`QMatrix`]: a weight matrix stored in one GGML block format, rows as in GGUF.
//!
//! `rows` = output features, `cols` = input features (GGUF `ne0`, contiguous). The bytes are
//! kept exactly as stored in the file (in a candle `QTensor`, so either implementation can
//! run on the one copy), and `matmul` multiplies activations `(m, cols)` into `(m, rows)`
//! with whichever of Whale's kernels (`crate::kernels`) and candle's is faster for the
//! format ([`Backend::auto`], from `examples/qbench.rs`).

use std::sync::Arc;

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use crate::formats::{dequantize_unchecked, quantize_row, row_bytes};
use crate::kernels::Backend;
use crate::QuantError;
use whale_core::gguf::GgmlType;

#[derive(Clone)]
pub struct QMatrix {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    storage: Arc<QTensor>,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QMatrix")
            .field("ty", &self.ty)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("bytes", &self.as_bytes().len())
            .finish()
    }
}

impl QMatrix {
    /// Wraps `rows × cols` weights already in `ty` (e.g. a GGUF tensor's data); checks that
    /// `cols` is a whole number of blocks and that `bytes` has exactly the expected length.
    pub fn from_bytes(ty: GgmlType, rows: usize, cols: usize, bytes: &[u8]) -> Result<Self, QuantError> {
        let rb = row_bytes(ty, cols, "column count")?;
        let expected = rb.checked_mul(rows).ok_or_else(|| QuantError::Shape {
            what: format!("{ty} matrix"),
            expected: "a size that fits in memory".into(),
            found: format!("{rows} x {cols}"),
        })?;
        if bytes.len() != expected {
            return Err(QuantError::ByteLength {
                ty,
                what: format!("{rows} x {cols} matrix"),
                expected,
                found: bytes.len(),
            });
        }
        Self::stored(ty, rows, cols, bytes)
    }

    /// Quantizes row-major f32 weights (`rows × cols`) with ggml's reference quantizer.
    pub fn quantize(ty: GgmlType, rows: usize, cols: usize, data: &[f32]) -> Result<Self, QuantError> {
        let rb = row_bytes(ty, cols, "column count")?;
        if data.len() != rows * cols {
            return Err(QuantError::Shape {
                what: format!("{ty} weights to quantize"),
                expected: format!("{rows} x {cols} = {} values", rows * cols),
                found: format!("{} values", data.len()),
            });
        }
        let mut bytes = vec![0u8; rb * rows];
        if cols > 0 {
            // Rows are independent, and the K-quant searches are slow: spread them over the
            // kernels' thread pool (quantizing a 1.5B model is minutes on one core).
            use rayon::prelude::*;
            crate::threads::install(|| {
                data.par_chunks_exact(cols)
                    .zip(bytes.par_chunks_exact_mut(rb))
                    .try_for_each(|(x, o)| quantize_row(ty, x, o))
            })?;
        }
        Self::stored(ty, rows, cols, &bytes)
    }

    /// Copies checked bytes into the candle storage.
    fn stored(ty: GgmlType, rows: usize, cols: usize, bytes: &[u8]) -> Result<Self, QuantError> {
        let dtype = candle_dtype(ty)
            .ok_or_else(|| QuantError::Unsupported { ty, supported: crate::SUPPORTED.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ") })?;
        let storage = qtensor_from_ggml(dtype, bytes, vec![rows, cols], &Device::Cpu)?;
        Ok(QMatrix { ty, rows, cols, storage: Arc::new(storage) })
    }

    pub fn ty(&self) -> GgmlType {
        self.ty
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn as_bytes(&self) -> &[u8] {
        // CPU storage lends its bytes (`Cow::Borrowed`); QMatrix only ever builds CPU storage.
        match self.storage.data() {
            Ok(std::borrow::Cow::Borrowed(b)) => b,
            _ => &[],
        }
    }

    /// All weights as f32, row-major `rows × cols` (bit-exact with ggml's dequantization).
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.rows * self.cols];
        if self.cols > 0 {
            let bytes = self.as_bytes();
            let rb = bytes.len() / self.rows.max(1);
            for (b, o) in bytes.chunks_exact(rb.max(1)).zip(out.chunks_exact_mut(self.cols)) {
                dequantize_unchecked(self.ty, b, o);
            }
        }
        out
    }

    /// All weights as an f32 `(rows, cols)` tensor on `device`.
    pub fn dequantize_tensor(&self, device: &Device) -> Result<Tensor, QuantError> {
        Ok(Tensor::from_vec(self.dequantize(), (self.rows, self.cols), device)?)
    }

    /// Row `r` as f32 into `out` (`cols` values; bit-exact with ggml's dequantization).
    pub fn dequantize_row_into(&self, r: usize, out: &mut [f32]) -> Result<(), QuantError> {
        if r >= self.rows || out.len() != self.cols {
            return Err(QuantError::Shape {
                what: format!("row of a {} x {} {} matrix", self.rows, self.cols, self.ty),
                expected: format!("row < {} into {} values", self.rows, self.cols),
                found: format!("row {r} into {} values", out.len()),
            });
        }
        let rb = self.as_bytes().len() / self.rows;
        dequantize_unchecked(self.ty, &self.as_bytes()[r * rb..(r + 1) * rb], out);
        Ok(())
    }

    /// `x · Wᵀ`: `x` is `(m, cols)` f32 on the CPU (any layout); returns `(m, rows)` f32.
    pub fn matmul(&self, x: &Tensor) -> Result<Tensor, QuantError> {
        let backend = if crate::decoding() {
            Backend::for_decode(self.ty, self.rows, self.cols)
        } else {
            Backend::auto(self.ty, self.rows, self.cols)
        };
        self.matmul_with(x, backend)
    }

    /// [`QMatrix::matmul`] on a chosen backend (for tests and benchmarks).
    pub fn matmul_with(&self, x: &Tensor, backend: Backend) -> Result<Tensor, QuantError> {
        let (m, k) = x.dims2().map_err(|_| self.shape_err(x))?;
        if k != self.cols {
            return Err(self.shape_err(x));
        }
        if !matches!(x.device(), Device::Cpu) {
            return Err(QuantError::Shape {
                what: "QMatrix::matmul input device".into(),
                expected: "cpu".into(),
                found: format!("{:?}", x.device()),
            });
        }
        if backend == Backend::Candle {
            // Always the quantized kernels: `QMatMul::from_arc` would turn float formats into
            // a dense matmul over a dequantized copy.
            let qmm = QMatMul::QTensor(self.storage.clone());
            return Ok(qmm.forward(&x.to_dtype(DType::F32)?.contiguous()?)?);
        }
        let xs = x.to_dtype(DType::F32)?.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let out = self.matmul_slice(&xs, m, backend)?;
        Ok(Tensor::from_vec(out, (m, self.rows), &Device::Cpu)?)
    }

    /// `x · Wᵀ` on raw row-major `(m, cols)` activations; returns `(m, rows)` row-major.
    pub fn matmul_slice(&self, x: &[f32], m: usize, backend: Backend) -> Result<Vec<f32>, QuantError> {
        if x.len() != m * self.cols {
            return Err(QuantError::Shape {
                what: "QMatrix::matmul input".into(),
                expected: format!("{m} x {} = {} values", self.cols, m * self.cols),
                found: format!("{} values", x.len()),
            });
        }
        let backend = match backend {
            Backend::Candle => {
                let t = Tensor::from_slice(x, (m, self.cols), &Device::Cpu)?;
                return Ok(self.matmul_with(&t, Backend::Candle)?.flatten_all()?.to_vec1()?);
            }
            b if b.is_available() => b,
            _ => Backend::Portable,
        };
        Ok(crate::matmul::matmul(self.ty, self.as_bytes(), self.rows, self.cols, x, m, backend))
    }

    fn shape_err(&self, x: &Tensor) -> QuantError {
        QuantError::Shape {
            what: format!("QMatrix::matmul input for a {} x {} {} matrix", self.rows, self.cols, self.ty),
            expected: format!("(m, {})", self.cols),
            found: format!("{:?}", x.dims()),
        }
    }
}

/// candle's name for a GGML type (every type a QMatrix can hold has one).
pub fn candle_dtype(ty: GgmlType) -> Option<GgmlDType> {
    use GgmlType as T;
    Some(match ty {
        T::F32 => GgmlDType::F32,
        T::F16 => GgmlDType::F16,
        T::BF16 => GgmlDType::BF16,
        T::Q4_0 => GgmlDType::Q4_0,
        T::Q4_1 => GgmlDType::Q4_1,
        T::Q5_0 => GgmlDType::Q5_0,
        T::Q5_1 => GgmlDType::Q5_1,
        T::Q8_0 => GgmlDType::Q8_0,
        T::Q2_K => GgmlDType::Q2K,
        T::Q3_K => GgmlDType::Q3K,
        T::Q4_K => GgmlDType::Q4K,
        T::Q5_K => GgmlDType::Q5K,
        T::Q6_K => GgmlDType::Q6K,
        _ => return None,
    })
}
