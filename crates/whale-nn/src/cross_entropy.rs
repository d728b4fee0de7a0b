//! Mean token cross-entropy `mean_i(logsumexp(z_i) - z_i[t_i])` as one op with its own
//! backward, `(softmax(z_i) - onehot(t_i)) / n`.
//!
//! The composed form (log-softmax, gather, mean) makes about ten passes over the
//! `(tokens, vocab)` logits in the forward and as many tensors of that size in the
//! backward; at a training batch of 2,048 tokens and a vocabulary of 8k that is 64 MB a
//! pass, more than the output head's GEMMs cost. Here each row is read once forward and
//! once backward (rows split over the threads), in f32 with the row sums in f64 and the
//! vectorized `exp` of [`crate::fast_exp`].

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::fast_exp::{exp_shifted_in_place, max_f32};
use crate::row_math::{contiguous_slice, storage_slice};
use crate::{Result, WhaleError};

/// `logits: (n, vocab)` float, `targets: (n,)` u32 → the mean loss, a scalar f32 tracked
/// for the backward to the logits.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (n, vocab) = logits
        .dims2()
        .map_err(|_| WhaleError::InvalidInput(format!("cross-entropy logits must be (tokens, vocab), found {:?}", logits.dims())))?;
    if targets.dims() != [n] {
        return Err(WhaleError::InvalidInput(format!(
            "cross-entropy targets must be ({n},) to match logits {:?}, found {:?}",
            logits.dims(),
            targets.dims()
        )));
    }
    if targets.dtype() != DType::U32 {
        return Err(WhaleError::InvalidInput(format!("cross-entropy targets must be u32, found {:?}", targets.dtype())));
    }
    if n == 0 || vocab == 0 {
        return Err(WhaleError::InvalidInput(format!("cross-entropy over empty logits {:?}", logits.dims())));
    }
    let ids = targets.to_vec1::<u32>()?;
    if let Some((row, &t)) = ids.iter().enumerate().find(|(_, &t)| t as usize >= vocab) {
        return Err(WhaleError::InvalidInput(format!("cross-entropy target {t} at row {row} is outside the vocabulary of {vocab}")));
    }
    let dtype = logits.dtype();
    let z = logits.to_dtype(DType::F32)?.contiguous()?;
    let loss = z.apply_op2(&targets.contiguous()?, CrossEntropy)?;
    Ok(if dtype == DType::F32 { loss } else { loss.to_dtype(DType::F32)? })
}

struct CrossEntropy;

/// `(max, Σ exp(z - max))` of one row; `scratch` is left holding the exps.
fn row_stats(z: &[f32], scratch: &mut Vec<f32>) -> (f32, f64) {
    let max = max_f32(z);
    scratch.clear();
    scratch.extend_from_slice(z);
    (max, exp_shifted_in_place(scratch, max))
}

/// Rows per parallel task: enough work per task to amortize the split.
const ROWS_PER_TASK: usize = 16;

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "whale-cross-entropy"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, vocab) = l1.shape().dims2()?;
        let z = contiguous_slice::<f32>(s1, l1, "cross-entropy logits")?;
        let t = contiguous_slice::<u32>(s2, l2, "cross-entropy targets")?;
        let total: f64 = z
            .par_chunks(vocab * ROWS_PER_TASK)
            .zip(t.par_chunks(ROWS_PER_TASK))
            .map(|(rows, ts)| {
                let mut scratch = Vec::with_capacity(vocab);
                rows.chunks(vocab)
                    .zip(ts)
                    .map(|(row, &t)| {
                        let (max, sum) = row_stats(row, &mut scratch);
                        max as f64 + sum.ln() - row[t as usize] as f64
                    })
                    .sum::<f64>()
            })
            .sum();
        Ok((CpuStorage::F32(vec![(total / n as f64) as f32]), Shape::from(())))
    }

    fn bwd(&self, logits: &Tensor, targets: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, vocab) = logits.dims2()?;
        let g = grad.to_dtype(DType::F32)?.to_scalar::<f32>()? / n as f32;
        let (zs, zl) = logits.storage_and_layout();
        let (ts, tl) = targets.storage_and_layout();
        let z = storage_slice::<f32>(&zs, zl, "cross-entropy logits")?;
        let t = storage_slice::<u32>(&ts, tl, "cross-entropy targets")?;
        let mut dz = vec![0f32; n * vocab];
        dz.par_chunks_mut(vocab * ROWS_PER_TASK)
            .zip(z.par_chunks(vocab * ROWS_PER_TASK))
            .zip(t.par_chunks(ROWS_PER_TASK))
            .for_each(|((out, rows), ts)| {
                let mut scratch = Vec::with_capacity(vocab);
                for ((o, row), &t) in out.chunks_mut(vocab).zip(rows.chunks(vocab)).zip(ts) {
                    let (_, sum) = row_stats(row, &mut scratch);
                    // softmax = exp(z - max) / Σ: the exps are already in `scratch`.
                    let k = (g as f64 / sum) as f32;
                    for (o, &e) in o.iter_mut().zip(scratch.iter()) {
                        *o = e * k;
                    }
                    o[t as usize] -= g;
                }
            });
        Ok((Some(Tensor::from_vec(dz, (n, vocab), logits.device())?), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn logits_and_targets() -> (Var, Tensor) {
        let v: Vec<f32> = (0..5 * 37).map(|i| ((i * 7919 % 113) as f32 / 113.0 - 0.5) * 6.0).collect();
        let z = Var::from_tensor(&Tensor::from_vec(v, (5, 37), &Device::Cpu).unwrap()).unwrap();
        let t = Tensor::new(&[0u32, 36, 5, 17, 5], &Device::Cpu).unwrap();
        (z, t)
    }

    /// Loss and gradient equal candle's composed cross-entropy (log-softmax, gather, mean).
    #[test]
    fn matches_the_composed_loss_and_gradient() {
        let (z, t) = logits_and_targets();
        let ours = cross_entropy(z.as_tensor(), &t).unwrap();
        let theirs = candle_nn::loss::cross_entropy(z.as_tensor(), &t).unwrap();
        let (a, b) = (ours.to_scalar::<f32>().unwrap(), theirs.to_scalar::<f32>().unwrap());
        assert!((a - b).abs() < 1e-6, "loss {a} vs {b}");
        let ga = ours.backward().unwrap().get(z.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let gb = theirs.backward().unwrap().get(z.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let diff = ga.iter().zip(&gb).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-7, "max gradient difference {diff}");
    }

    /// The backward scales with the incoming gradient (a loss weight upstream).
    #[test]
    fn gradient_scales_with_the_loss_weight() {
        let (z, t) = logits_and_targets();
        let g1 = cross_entropy(z.as_tensor(), &t).unwrap().backward().unwrap();
        let g3 = (cross_entropy(z.as_tensor(), &t).unwrap() * 3.0).unwrap().backward().unwrap();
        let a = (g1.get(z.as_tensor()).unwrap() * 3.0).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = g3.get(z.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-7));
    }

    #[test]
    fn bad_targets_are_named() {
        let (z, _) = logits_and_targets();
        let out = Tensor::new(&[0u32, 1, 37, 2, 3], &Device::Cpu).unwrap();
        let e = cross_entropy(z.as_tensor(), &out).unwrap_err().to_string();
        assert!(e.contains("target 37 at row 2") && e.contains("37"), "{e}");
        let short = Tensor::new(&[0u32, 1], &Device::Cpu).unwrap();
        let e = cross_entropy(z.as_tensor(), &short).unwrap_err().to_string();
        assert!(e.contains("(5,)"), "{e}");
    }
}
