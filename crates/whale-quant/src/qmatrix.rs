//! [`QMatrix`]: a weight matrix stored in one GGML block format, rows as in GGUF.
//!
//! `rows` = output features, `cols` = input features (GGUF `ne0`, contiguous). The bytes are
//! kept exactly as stored in the file, so loading a GGUF tensor is a copy, and `matmul`
//! multiplies activations `(m, cols)` into `(m, rows)` with the kernels in `crate::kernels`.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use crate::formats::{dequantize_unchecked, quantize_row, row_bytes};
use crate::kernels::Backend;
use crate::QuantError;
use whale_core::gguf::GgmlType;

#[derive(Clone)]
pub struct QMatrix {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    bytes: Arc<Vec<u8>>,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QMatrix")
            .field("ty", &self.ty)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("bytes", &self.bytes.len())
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
        Ok(QMatrix { ty, rows, cols, bytes: Arc::new(bytes.to_vec()) })
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
            for (x, o) in data.chunks_exact(cols).zip(bytes.chunks_exact_mut(rb)) {
                quantize_row(ty, x, o)?;
            }
        }
        Ok(QMatrix { ty, rows, cols, bytes: Arc::new(bytes) })
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
        &self.bytes
    }

    /// All weights as f32, row-major `rows × cols` (bit-exact with ggml's dequantization).
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.rows * self.cols];
        if self.cols > 0 {
            let rb = self.bytes.len() / self.rows.max(1);
            for (b, o) in self.bytes.chunks_exact(rb.max(1)).zip(out.chunks_exact_mut(self.cols)) {
                dequantize_unchecked(self.ty, b, o);
            }
        }
        out
    }

    /// `x · Wᵀ`: `x` is `(m, cols)` f32 on the CPU (any layout); returns `(m, rows)` f32.
    pub fn matmul(&self, x: &Tensor) -> Result<Tensor, QuantError> {
        self.matmul_with(x, Backend::best())
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
        let backend = if backend.is_available() { backend } else { Backend::Portable };
        Ok(crate::matmul::matmul(self.ty, &self.bytes, self.rows, self.cols, x, m, backend))
    }

    fn shape_err(&self, x: &Tensor) -> QuantError {
        QuantError::Shape {
            what: format!("QMatrix::matmul input for a {} x {} {} matrix", self.rows, self.cols, self.ty),
            expected: format!("(m, {})", self.cols),
            found: format!("{:?}", x.dims()),
        }
    }
}
