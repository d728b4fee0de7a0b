//! A linear layer `y = x Wᵀ + b` over HF weight names (`{name}.weight` of shape
//! `(out, in)`, optional `{name}.bias`). Quantized weights will plug in here, so model code
//! has one linear type for every precision.

use crate::Result;
use candle_core::Tensor;
use whale_core::Weights;

#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn load(w: &Weights, name: &str, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let w = w.pp(name);
        let weight = w.get(&[out_dim, in_dim], "weight")?;
        let bias = if bias { Some(w.get_zeros(&[out_dim], "bias")?) } else { None };
        Ok(Self { weight, bias })
    }

    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// `(out, in)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// `x: (..., in)` → `(..., out)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let in_dim = dims[dims.len() - 1];
        let rows: usize = dims[..dims.len() - 1].iter().product();
        // One 2-D GEMM against the transposed weight (no copy: gemm takes the strides).
        let y = x.reshape((rows, in_dim))?.matmul(&self.weight.t()?)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().unwrap() = self.weight.dim(0)?;
        Ok(y.reshape(out_dims)?)
    }
}
