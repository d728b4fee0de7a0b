//! The matmul driver: quantizes the activations once, then splits the weight rows over the
//! worker threads.
//!
//! Decode (m = 1) is bound by memory bandwidth: each thread streams a contiguous range of
//! weight rows exactly once. Prefill (m > 1) is bound by arithmetic: rows are taken in tiles
//! small enough to stay in L1/L2 while every activation row passes over them, so weights
//! are read from memory once per matmul rather than once per token (as ggml's mul_mat does).

use rayon::prelude::*;

use crate::activation::{quantize_q8, quantize_q8k, BlockQ8, BlockQ8K};
use crate::kernels::{row_dot, Backend, Four, RowDot};
use crate::threads;
use whale_core::gguf::GgmlType;

/// Activations in the form the kernel for a weight format consumes, `m` rows.
enum Acts {
    Q8(Vec<BlockQ8>),
    Q8K(Vec<BlockQ8K>),
    F32(Vec<f32>),
}

/// A pointer into the output that workers write disjoint elements through.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every (activation row, weight row) element is written by exactly one work item.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

fn quantize_acts(kind: RowDot, x: &[f32], m: usize, cols: usize) -> Acts {
    let par = m > 1;
    match kind {
        RowDot::Q8(..) => {
            let nb = cols / 32;
            let mut v = vec![BlockQ8::default(); m * nb];
            let job = |(xi, o): (&[f32], &mut [BlockQ8])| quantize_q8(xi, o);
            if par {
                x.par_chunks(cols).zip(v.par_chunks_mut(nb)).for_each(job);
            } else {
                x.chunks(cols).zip(v.chunks_mut(nb)).for_each(job);
            }
            Acts::Q8(v)
        }
        RowDot::Q8K(..) => {
            let nb = cols / 256;
            let mut v = vec![BlockQ8K::default(); m * nb];
            let job = |(xi, o): (&[f32], &mut [BlockQ8K])| quantize_q8k(xi, o);
            if par {
                x.par_chunks(cols).zip(v.par_chunks_mut(nb)).for_each(job);
            } else {
                x.chunks(cols).zip(v.chunks_mut(nb)).for_each(job);
            }
            Acts::Q8K(v)
        }
        RowDot::F32(_) => Acts::F32(x.to_vec()),
    }
}

/// One weight row `wr` against the `m` activation rows of `a` (`nb` blocks each), four rows
/// at a time where the kernel has a four-row form; `put(i, v)` stores row `i`'s result.
///
/// # Safety
/// `one` and `four` must be kernels whose CPU features are present.
unsafe fn dot_rows<B>(
    wr: &[u8],
    a: &[B],
    nb: usize,
    m: usize,
    one: unsafe fn(&[u8], &[B]) -> f32,
    four: Option<Four<B>>,
    put: impl Fn(usize, f32),
) {
    let row = |i: usize| &a[i * nb..(i + 1) * nb];
    let mut i = 0;
    if let Some(four) = four {
        while i + 4 <= m {
            let v = four(wr, [row(i), row(i + 1), row(i + 2), row(i + 3)]);
            v.iter().enumerate().for_each(|(j, &v)| put(i + j, v));
            i += 4;
        }
    }
    for i in i..m {
        put(i, one(wr, row(i)));
    }
}

/// `out[i][r] = Σ_k x[i][k] · w[r][k]` for a `rows × cols` weight in `ty` (`w` = whole rows,
/// lengths checked by the caller) and `m × cols` activations. Returns `m × rows`.
pub(crate) fn matmul(
    ty: GgmlType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    m: usize,
    backend: Backend,
) -> Vec<f32> {
    let mut out = vec![0.0f32; m * rows];
    if m == 0 || rows == 0 {
        return out;
    }
    let row_bytes = cols / ty.block_size() as usize * ty.type_size() as usize;
    let kind = row_dot(ty, backend);
    let pool = threads::pool();
    let n_threads = pool.as_ref().map_or_else(rayon::current_num_threads, |p| p.current_num_threads());

    // Tile height: for decode, ~4 tiles per thread for balance; for prefill, the rows that
    // fit in ~16 KiB so the tile stays cached while all activation rows pass over it.
    let tile = if m == 1 {
        rows.div_ceil(4 * n_threads).max(8)
    } else {
        (16 * 1024 / row_bytes.max(1)).clamp(4, 64)
    };
    let n_tiles = rows.div_ceil(tile);
    let outp = OutPtr(out.as_mut_ptr());

    let run = || {
        let acts = quantize_acts(kind, x, m, cols);
        let work = |t: usize| {
            let outp = outp;
            let r0 = t * tile;
            let r1 = (r0 + tile).min(rows);
            for r in r0..r1 {
                let wr = &w[r * row_bytes..(r + 1) * row_bytes];
                // SAFETY: i < m and r < rows; each (i, r) belongs to exactly one tile.
                let put = |i: usize, v: f32| unsafe { *outp.0.add(i * rows + r) = v };
                // SAFETY (kernel calls): the kernels' CPU features were checked when `kind`
                // was chosen, and every activation slice has this matrix's block count.
                match (kind, &acts) {
                    (RowDot::Q8(one, four), Acts::Q8(a)) => unsafe { dot_rows(wr, a, cols / 32, m, one, four, put) },
                    (RowDot::Q8K(one, four), Acts::Q8K(a)) => unsafe { dot_rows(wr, a, cols / 256, m, one, four, put) },
                    (RowDot::F32(f), Acts::F32(a)) => {
                        for i in 0..m {
                            put(i, unsafe { f(wr, &a[i * cols..(i + 1) * cols]) });
                        }
                    }
                    _ => unreachable!("activations are quantized for this kernel"),
                }
            }
        };
        if n_tiles > 1 {
            (0..n_tiles).into_par_iter().for_each(work);
        } else {
            work(0);
        }
    };
    threads::install_on(pool, run);
    out
}
