//! A linear layer `y = x Wᵀ + b` over HF weight names (`{name}.weight` of shape
//! `(out, in)`, optional `{name}.bias`). One type for every precision: the weight is a dense
//! tensor (f32/f16/bf16, trainable) or a GGML block-quantized matrix ([`QMatrix`], frozen,
//! multiplied by whale-quant's integer kernels), so model code is the same for both.
//!
//! A weight comes out quantized when the checkpoint stores it in a block format (a GGUF
//! file's Q8_0/Q4_K/...); float tensors of a GGUF file stay dense, like safetensors ones.

use crate::Result;
use candle_core::{DType, Device, Tensor};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::OnceLock;
use whale_core::gguf::GgmlType;
use whale_core::Weights;
pub use whale_quant::QMatrix;

#[derive(Debug, Clone)]
enum LinearWeight {
    Dense(Tensor),
    /// `dense` caches a dequantized copy for callers that need the matrix itself
    /// (e.g. MLA's weight absorption); the forward never uses it.
    Quant { q: QMatrix, dense: OnceLock<Tensor> },
}

#[derive(Debug, Clone)]
pub struct Linear {
    weight: LinearWeight,
    bias: Option<Tensor>,
}

/// Whether a GGML type is a plain float format (kept as a dense tensor).
pub(crate) fn is_float(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

impl Linear {
    pub fn load(w: &Weights, name: &str, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let w = w.pp(name);
        let quant = match w.get_raw(&[out_dim, in_dim], "weight")? {
            Some(raw) if !is_float(raw.ty) => Some(QMatrix::from_bytes(raw.ty, out_dim, in_dim, &raw.data)?),
            _ => None,
        };
        let weight = match quant {
            Some(q) => LinearWeight::Quant { q, dense: OnceLock::new() },
            None => LinearWeight::Dense(w.get(&[out_dim, in_dim], "weight")?),
        };
        let bias = if bias { Some(w.get_zeros(&[out_dim], "bias")?) } else { None };
        Ok(Self { weight, bias })
    }

    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight: LinearWeight::Dense(weight), bias }
    }

    /// A quantized layer; `bias` (if any) is added in the bias's dtype.
    pub fn from_qmatrix(q: QMatrix, bias: Option<Tensor>) -> Self {
        Self { weight: LinearWeight::Quant { q, dense: OnceLock::new() }, bias }
    }

    /// The quantized weight, if this layer has one.
    pub fn qmatrix(&self) -> Option<&QMatrix> {
        match &self.weight {
            LinearWeight::Quant { q, .. } => Some(q),
            LinearWeight::Dense(_) => None,
        }
    }

    /// `(out, in)`. For a quantized layer this is a dequantized f32 copy, made on first use
    /// and kept (the forward does not need it).
    pub fn weight(&self) -> &Tensor {
        match &self.weight {
            LinearWeight::Dense(t) => t,
            // QMatrix checked its byte length against rows × cols at construction, so the
            // values always fill the shape.
            LinearWeight::Quant { q, dense } => {
                dense.get_or_init(|| q.dequantize_tensor(&Device::Cpu).expect("QMatrix::dequantize yields rows × cols values"))
            }
        }
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    pub fn out_dim(&self) -> usize {
        match &self.weight {
            LinearWeight::Dense(t) => t.dims()[0],
            LinearWeight::Quant { q, .. } => q.rows(),
        }
    }

    /// `x: (..., in)` → `(..., out)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let in_dim = dims[dims.len() - 1];
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let x2 = x.reshape((rows, in_dim))?;
        let y = match &self.weight {
            // One 2-D GEMM against the transposed weight (no copy: gemm takes the strides).
            LinearWeight::Dense(w) => match hooked_gemm(&x2, w)? {
                Some(y) => y,
                None => x2.matmul(&w.t()?)?,
            },
            // The kernels take f32 activations on the CPU and return f32.
            LinearWeight::Quant { q, .. } => {
                let on_cpu = x2.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
                q.matmul(&on_cpu)?.to_device(x.device())?.to_dtype(x.dtype())?
            }
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().unwrap() = self.out_dim();
        Ok(y.reshape(out_dims)?)
    }
}

/// A replacement for the dense GEMM `x · Wᵀ`, installed per thread: mixed-precision
/// training (whale-train) runs the same model code with bf16 or simulated-FP8 matmuls
/// through it, instead of a second, training-only copy of every layer.
pub trait GemmHook {
    /// `x: (rows, in)`, `w: (out, in)` → `Some((rows, out))`, or `None` for the plain GEMM.
    fn gemm(&self, x: &Tensor, w: &Tensor) -> Result<Option<Tensor>>;
}

thread_local! {
    static GEMM_HOOK: RefCell<Option<Rc<dyn GemmHook>>> = const { RefCell::new(None) };
}

/// Runs `f` with `hook` replacing the dense linear GEMMs of this thread (the previous hook,
/// if any, comes back afterwards, also when `f` panics).
pub fn with_gemm_hook<R>(hook: Rc<dyn GemmHook>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Rc<dyn GemmHook>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            GEMM_HOOK.with(|h| *h.borrow_mut() = self.0.take());
        }
    }
    let _restore = Restore(GEMM_HOOK.with(|h| h.borrow_mut().replace(hook)));
    f()
}

fn hooked_gemm(x: &Tensor, w: &Tensor) -> Result<Option<Tensor>> {
    match GEMM_HOOK.with(|h| h.borrow().clone()) {
        Some(hook) => hook.gemm(x, w),
        None => Ok(None),
    }
}
