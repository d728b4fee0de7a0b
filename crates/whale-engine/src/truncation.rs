//! Top-k and min-p truncation of a candidate set, and the top-n of a row, without
//! full-vocabulary sorts.
//!
//! Why not just sort: a DeepSeek vocabulary has ~129k entries (Qwen ~152k), and a full sort per
//! token costs more than everything else in the sampler. Top-k up to 256 is one scan with a small
//! sorted buffer, larger k a `select_nth_unstable` (linear) plus a sort of the k survivors; top-n
//! for logprobs is the same scan. Top-p lives in `top_p.rs`.
//!
//! Candidates are compared by score (temperature-scaled logit) descending, ties to the lower id.
//! That is a total order, so which tokens survive, and in which order they are left, does not
//! depend on the selection algorithm; seeded sampling stays reproducible across Rust versions.

use std::cmp::Ordering;

/// Most likely first, ties to the lower id.
pub(crate) fn most_likely_first(scores: &[f32]) -> impl Fn(&u32, &u32) -> Ordering + '_ {
    move |&a, &b| scores[b as usize].total_cmp(&scores[a as usize]).then(a.cmp(&b))
}

/// Up to this k an insertion scan (one compare per id once the buffer is full) beats
/// `select_nth_unstable`, whose indirect compares and swaps cost far more per id.
const SCAN_MAX_K: usize = 256;

/// Fills `out` with the `k` most likely ids of the whole row (ids with score -inf, i.e.
/// probability 0, excluded), sorted most likely first. `k` must be > 0.
pub(crate) fn top_k_of_row(scores: &[f32], k: usize, out: &mut Vec<u32>) {
    out.clear();
    if k <= SCAN_MAX_K {
        for (i, &s) in scores.iter().enumerate() {
            if s == f32::NEG_INFINITY || (out.len() == k && s <= scores[out[k - 1] as usize]) {
                // Equal to the current k-th: the later (higher) id loses the tie.
                continue;
            }
            let at = out.partition_point(|&j| scores[j as usize].total_cmp(&s) != Ordering::Less);
            out.insert(at, i as u32);
            out.truncate(k);
        }
    } else {
        out.extend((0..scores.len() as u32).filter(|&i| scores[i as usize] != f32::NEG_INFINITY));
        if k < out.len() {
            top_k(scores, out, k);
        } else {
            // Fewer finite ids than k: keep them all, in the same (sorted) order.
            out.sort_unstable_by(most_likely_first(scores));
        }
    }
}

/// Keeps the `k` most likely candidates (`k == 0` disables), sorted most likely first.
pub(crate) fn top_k(scores: &[f32], candidates: &mut Vec<u32>, k: usize) {
    if k == 0 || k >= candidates.len() {
        return;
    }
    let order = most_likely_first(scores);
    candidates.select_nth_unstable_by(k - 1, &order);
    candidates.truncate(k);
    candidates.sort_unstable_by(&order);
}

/// Drops candidates whose probability is below `min_p` times the most likely candidate's.
/// `min_p <= 0` disables; the most likely candidate always survives (`min_p <= 1`).
pub(crate) fn min_p(probs: &[f32], candidates: &mut Vec<u32>, min_p: f32) {
    if min_p <= 0.0 {
        return;
    }
    let max = candidates.iter().map(|&i| probs[i as usize]).fold(0.0f32, f32::max);
    let threshold = min_p * max;
    candidates.retain(|&i| probs[i as usize] >= threshold);
}

/// The `n` highest scores as `(id, score)`, highest first, ties to the lower id, in one pass.
pub(crate) fn top_n(scores: &[f32], n: usize) -> Vec<(u32, f32)> {
    let mut out: Vec<(u32, f32)> = Vec::with_capacity(n + 1);
    if n == 0 {
        return out;
    }
    for (i, &s) in scores.iter().enumerate() {
        // Strictly greater: an equal score seen later has a higher id and loses the tie. (Plain
        // `>` is enough: the sampler has mapped NaN to -inf.)
        if out.len() == n && s <= out[n - 1].1 {
            continue;
        }
        let at = out.partition_point(|&(_, v)| v.total_cmp(&s) != Ordering::Less);
        out.insert(at, (i as u32, s));
        out.truncate(n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(n: usize) -> Vec<u32> {
        (0..n as u32).collect()
    }

    #[test]
    fn top_k_keeps_k_best_sorted_with_id_ties() {
        let scores = [0.0, 3.0, 1.0, 3.0, 2.0];
        let mut c = all(5);
        top_k(&scores, &mut c, 3);
        assert_eq!(c, vec![1, 3, 4]);
        let mut c = all(5);
        top_k(&scores, &mut c, 0);
        assert_eq!(c, all(5));
        top_k(&scores, &mut c, 9);
        assert_eq!(c, all(5));
    }

    #[test]
    fn top_k_of_row_scan_and_select_agree() {
        let scores: Vec<f32> = (0..5000u32)
            .map(
                |i| if i % 97 == 0 { f32::NEG_INFINITY } else { ((i * 7919) % 613) as f32 * -0.01 },
            )
            .collect();
        for k in [1, 7, 256, 257, 1000, 6000] {
            let mut got = Vec::new();
            top_k_of_row(&scores, k, &mut got);
            let mut want: Vec<u32> =
                (0..5000).filter(|&i| scores[i as usize] != f32::NEG_INFINITY).collect();
            want.sort_by(most_likely_first(&scores));
            want.truncate(k);
            assert_eq!(got, want, "k = {k}");
        }
    }

    #[test]
    fn min_p_is_relative_to_the_top_token() {
        let probs = [0.5f32, 0.05, 0.1, 0.3, 0.049];
        let mut c = all(5);
        min_p(&probs, &mut c, 0.1); // threshold 0.05, inclusive
        assert_eq!(c, vec![0, 1, 2, 3]);
        let mut c = all(5);
        min_p(&probs, &mut c, 1.0);
        assert_eq!(c, vec![0]);
    }

    #[test]
    fn top_n_orders_and_breaks_ties_by_id() {
        let scores = [1.0, 5.0, f32::NEG_INFINITY, 5.0, 3.0, 3.0];
        assert_eq!(top_n(&scores, 3), vec![(1, 5.0), (3, 5.0), (4, 3.0)]);
        assert_eq!(top_n(&scores, 0), vec![]);
        assert_eq!(top_n(&scores, 6).last(), Some(&(2, f32::NEG_INFINITY)));
        assert_eq!(top_n(&scores, 10).len(), 6);
    }
}
