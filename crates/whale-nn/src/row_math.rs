//! Row-invariant arithmetic for inference: the two inner loops of the fused attention kernels,
//! each summing in one fixed order so a query's result never depends on which other queries
//! share the call (a dot product, query · key, and a weighted sum of rows, softmax weights ·
//! values), and the small float products built on the dot ([`heads_matvec`], [`matmul_t`]).
//! AVX2 + FMA where the CPU has them (checked once), plain Rust otherwise; the two forms round
//! differently, and a process only ever uses one of them.

use crate::{Result, WhaleError};
use candle_core::{DType, Storage, Tensor};
use rayon::prelude::*;

/// `x · wᵀ` for f32 CPU tensors `x: (n, a)`, `w: (b, a)` → `(n, b)`: [`heads_matvec`] with
/// one head (for small float matrices in inference, such as a MoE router).
pub fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let ((n, a), (b, wa)) = (x.dims2()?, w.dims2()?);
    if a != wa {
        return Err(WhaleError::InvalidInput(format!("row-wise matmul: rows {:?} against a matrix {:?}", x.dims(), w.dims())));
    }
    Ok(heads_matvec(&x.reshape((n, 1, a))?, &w.reshape((1, b, a))?)?.reshape((n, b))?)
}

/// A matrix per head applied to each row's head: `x: (n, h, a)`, `w: (h, b, a)` →
/// `(n, h, b)` with `out[i, j] = w[j] · x[i, j]` (MLA's W_UK and W_UV around the latent
/// attention; with one head, [`matmul_t`]). Each output element is one fixed-order dot
/// product over a contiguous row of `w[j]`, so a row's result does not depend on how many
/// rows share the call, as a batched GEMM's may, and decoding streams the weights in order.
pub fn heads_matvec(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (n, h, a) = x.dims3()?;
    let (wh, b, wa) = w.dims3()?;
    if (wh, wa) != (h, a) {
        return Err(WhaleError::InvalidInput(format!("row-wise product: per-head matrices {:?} for rows {:?}", w.dims(), x.dims())));
    }
    let xv = contiguous_f32(x, "row-wise product: the per-head rows")?;
    // The weights are read in place: a copy per call would cost more than the products.
    let (ws, wl) = w.storage_and_layout();
    let wview = view(&ws, wl, "row-wise product: the per-head matrices")?;
    if !wl.is_contiguous() {
        return Err(WhaleError::InvalidInput("row-wise product: the per-head matrices are not contiguous".into()));
    }
    let wv = &wview.data[wview.offset..][..h * b * a];
    let math = RowMath::get();
    let mut out = vec![0f32; n * h * b];
    whale_quant::install(|| {
        out.par_chunks_mut(b).enumerate().for_each(|(item, o)| {
            let (xi, wj) = (&xv[item * a..][..a], &wv[(item % h) * b * a..][..b * a]);
            for (oc, row) in o.iter_mut().zip(wj.chunks_exact(a)) {
                *oc = (math.dot)(xi, row);
            }
        });
    });
    Ok(Tensor::from_vec(out, (n, h, b), x.device())?)
}

/// A rank-3 or rank-4 f32 CPU tensor's elements in place, with its strides.
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub stride: Vec<usize>,
    pub dims: Vec<usize>,
}

pub(crate) fn view<'a>(storage: &'a Storage, layout: &candle_core::Layout, what: &str) -> Result<View<'a>> {
    let Storage::Cpu(cpu) = storage else {
        return Err(WhaleError::InvalidInput(format!("{what} is not on the CPU")));
    };
    let data = cpu.as_slice::<f32>().map_err(|_| WhaleError::InvalidInput(format!("{what} is not f32")))?;
    if layout.stride().last() != Some(&1) {
        return Err(WhaleError::InvalidInput(format!("{what}: rows are not contiguous")));
    }
    Ok(View { data, offset: layout.start_offset(), stride: layout.stride().to_vec(), dims: layout.dims().to_vec() })
}

/// The elements of a custom op's CPU argument, which must be contiguous and of type `T`
/// (`what` names the argument in the error).
pub fn contiguous_slice<'a, T: candle_core::WithDType>(
    s: &'a candle_core::CpuStorage,
    l: &candle_core::Layout,
    what: &str,
) -> candle_core::Result<&'a [T]> {
    let data = s.as_slice::<T>().map_err(|_| candle_core::Error::Msg(format!("{what} must be {:?}", T::DTYPE)))?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}

/// [`contiguous_slice`] of a tensor's storage (a backward pass reads its tensors' storage
/// through `storage_and_layout`), which must be on the CPU.
pub fn storage_slice<'a, T: candle_core::WithDType>(
    s: &'a Storage,
    l: &candle_core::Layout,
    what: &str,
) -> candle_core::Result<&'a [T]> {
    let Storage::Cpu(cpu) = s else { candle_core::bail!("{what} must be on the CPU") };
    contiguous_slice(cpu, l, what)
}

/// `t`'s values in order (a copy), checked f32.
pub(crate) fn contiguous_f32(t: &Tensor, what: &str) -> Result<Vec<f32>> {
    if t.dtype() != DType::F32 {
        return Err(WhaleError::InvalidInput(format!("{what} is {:?}, expected f32", t.dtype())));
    }
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

/// The pair of loops the CPU runs.
#[derive(Clone, Copy)]
pub(crate) struct RowMath {
    pub dot: fn(&[f32], &[f32]) -> f32,
    /// `out += Σ_t w[t] · row(t)`, one multiply-add per row onto each element in increasing
    /// `t`: a sum taken in pieces (rows `0..a`, then `a..b`) equals one taken at once, bit
    /// for bit.
    pub weighted_sum: fn(&[f32], Rows<'_>, &mut [f32]),
}

/// Rows `t = 0, 1, …` of a strided matrix: row `t` starts at `base + t · stride` of `data`.
#[derive(Clone, Copy)]
pub(crate) struct Rows<'a> {
    pub data: &'a [f32],
    pub base: usize,
    pub stride: usize,
    pub width: usize,
}

impl<'a> Rows<'a> {
    #[inline]
    pub fn at(&self, t: usize) -> &'a [f32] {
        &self.data[self.base + t * self.stride..][..self.width]
    }
}

impl RowMath {
    pub fn get() -> RowMath {
        #[cfg(target_arch = "x86_64")]
        {
            use std::sync::OnceLock;
            static HAS: OnceLock<bool> = OnceLock::new();
            if *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
                return RowMath { dot: avx2::dot, weighted_sum: avx2::weighted_sum };
            }
        }
        RowMath { dot: portable::dot, weighted_sum: portable::weighted_sum }
    }
}

mod portable {
    /// Eight partial sums (vectorizes without fast-math).
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            for k in 0..8 {
                acc[k] += x[k] * y[k];
            }
        }
        let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for (x, y) in ra.iter().zip(rb) {
            s += x * y;
        }
        s
    }

    pub fn weighted_sum(w: &[f32], rows: super::Rows<'_>, out: &mut [f32]) {
        for (t, &wt) in w.iter().enumerate() {
            for (o, x) in out.iter_mut().zip(rows.at(t)) {
                *o += wt * x;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: chosen only when the CPU has AVX2 and FMA.
        unsafe { dot_impl(a, b) }
    }

    pub fn weighted_sum(w: &[f32], rows: super::Rows<'_>, out: &mut [f32]) {
        // SAFETY: as above.
        unsafe { weighted_sum_impl(w, rows, out) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
    }

    /// Four accumulators over 32-wide chunks (FMA latency), then 8-wide, then scalar.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_impl(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (k, s) in acc.iter_mut().enumerate() {
                *s = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8 * k)), _mm256_loadu_ps(pb.add(i + 8 * k)), *s);
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc[0]);
            i += 8;
        }
        let mut s = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
        while i < n {
            s = a[i].mul_add(b[i], s);
            i += 1;
        }
        s
    }

    /// 64 output columns at a time held in registers while every row passes.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn weighted_sum_impl(w: &[f32], rows: super::Rows<'_>, out: &mut [f32]) {
        let n = out.len().min(rows.width);
        let po = out.as_mut_ptr();
        let mut c = 0;
        while c + 64 <= n {
            let mut acc: [__m256; 8] = std::array::from_fn(|k| _mm256_loadu_ps(po.add(c + 8 * k)));
            for (t, &wt) in w.iter().enumerate() {
                let (wv, pr) = (_mm256_set1_ps(wt), rows.at(t)[c..c + 64].as_ptr());
                for (k, s) in acc.iter_mut().enumerate() {
                    *s = _mm256_fmadd_ps(wv, _mm256_loadu_ps(pr.add(8 * k)), *s);
                }
            }
            for (k, s) in acc.iter().enumerate() {
                _mm256_storeu_ps(po.add(c + 8 * k), *s);
            }
            c += 64;
        }
        while c + 8 <= n {
            let mut s = _mm256_loadu_ps(po.add(c));
            for (t, &wt) in w.iter().enumerate() {
                s = _mm256_fmadd_ps(_mm256_set1_ps(wt), _mm256_loadu_ps(rows.at(t)[c..c + 8].as_ptr()), s);
            }
            _mm256_storeu_ps(po.add(c), s);
            c += 8;
        }
        for (c, o) in out.iter_mut().enumerate().take(n).skip(c) {
            for (t, &wt) in w.iter().enumerate() {
                *o = wt.mul_add(rows.at(t)[c], *o);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn heads_matvec_matches_a_batched_matmul_and_each_row_alone() {
        let (n, h, a, b) = (5, 3, 40, 72);
        let (x, w) = (rand_t(&[n, h, a], 7), rand_t(&[h, b, a], 8));
        let got = heads_matvec(&x, &w).unwrap();
        let want = x.transpose(0, 1).unwrap().contiguous().unwrap().matmul(&w.transpose(1, 2).unwrap()).unwrap().transpose(0, 1).unwrap();
        let d = max_diff(&got, &want);
        assert!(d < 1e-5, "max diff {d}");
        let alone = heads_matvec(&x.narrow(0, 3, 1).unwrap(), &w).unwrap();
        assert_eq!(max_diff(&alone, &got.narrow(0, 3, 1).unwrap()), 0.0);
        assert!(heads_matvec(&x, &rand_t(&[h, b, a + 1], 9)).is_err());
    }

    /// Uniform values in [-0.5, 0.5) from a seed (also the fused attention tests').
    pub(crate) fn rand_t(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let v: Vec<f32> = (0..n)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn matmul_t_matches_candle_and_each_row_alone() {
        let x: Vec<f32> = (0..7 * 50).map(|i| ((i * 31 % 97) as f32 - 48.0) / 29.0).collect();
        let w: Vec<f32> = (0..9 * 50).map(|i| ((i * 17 % 83) as f32 - 41.0) / 23.0).collect();
        let (x, w) = (Tensor::from_vec(x, (7, 50), &Device::Cpu).unwrap(), Tensor::from_vec(w, (9, 50), &Device::Cpu).unwrap());
        let got = matmul_t(&x, &w).unwrap();
        let want = x.matmul(&w.t().unwrap()).unwrap();
        let diff = (&got - &want).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-4, "max diff {diff}");
        let alone = matmul_t(&x.narrow(0, 4, 1).unwrap(), &w).unwrap();
        assert_eq!(alone.to_vec2::<f32>().unwrap()[0], got.to_vec2::<f32>().unwrap()[4]);
        assert!(matmul_t(&x, &x.narrow(1, 0, 49).unwrap()).is_err());
    }

    #[test]
    fn both_forms_agree_with_f64_sums() {
        let a: Vec<f32> = (0..77).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect();
        let b: Vec<f32> = (0..77).map(|i| ((i * 53 % 89) as f32 - 44.0) / 13.0).collect();
        let want: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
        let rows: Vec<Vec<f32>> = (0..9).map(|t| (0..75).map(|c| ((t * 75 + c) % 23) as f32 - 11.0).collect()).collect();
        let w: Vec<f32> = (0..9).map(|t| 0.1 * t as f32 - 0.3).collect();
        let portable = RowMath { dot: portable::dot, weighted_sum: portable::weighted_sum };
        for m in [RowMath::get(), portable] {
            assert!(((m.dot)(&a, &b) as f64 - want).abs() < 1e-3);
            let mut out = vec![0f32; 75];
            let flat: Vec<f32> = rows.concat();
            (m.weighted_sum)(&w, Rows { data: &flat, base: 0, stride: 75, width: 75 }, &mut out);
            for c in 0..75 {
                let want: f64 = (0..9).map(|t| w[t] as f64 * rows[t][c] as f64).sum();
                assert!((out[c] as f64 - want).abs() < 1e-4, "column {c}: {} vs {want}", out[c]);
            }
            // In pieces, the same sum bit for bit.
            let mut pieces = vec![0f32; 75];
            for (a, b) in [(0, 1), (1, 5), (5, 9)] {
                (m.weighted_sum)(&w[a..b], Rows { data: &flat, base: 75 * a, stride: 75, width: 75 }, &mut pieces);
            }
            assert_eq!(pieces, out);
        }
    }
}
