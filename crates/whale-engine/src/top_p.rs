//! Top-p (nucleus) truncation in linear time: the smallest most-likely-first prefix of the
//! candidates whose probability reaches `p` of the total.
//!
//! Why not sort: top-p alone is DeepSeek-R1's default, so it runs on every token, and the
//! textbook method sorts the vocabulary (~150k entries, milliseconds). Two steps avoid that:
//! - [`top_p_floor`] bounds from below the probability of any nucleus token; for LM rows it
//!   removes nearly the whole vocabulary before anything else happens.
//! - If many candidates remain (a flat, high-entropy row), their probability mass is binned by
//!   score into a histogram (bins are monotone in score), the bin where the cumulative mass
//!   crosses `p` is found by walking the bins, and only that bin's tokens are sorted. Bins are
//!   filled in candidate order, so the sums, and the result, are reproducible.
//!
//! Small candidate sets are simply sorted. Ties are broken towards the lower id, as everywhere.

use std::cmp::Ordering;

use crate::truncation::most_likely_first;

/// Up to this many candidates a sort is cheaper than building the histogram.
const SORT_MAX: usize = 2048;
/// Histogram resolution over the score range [-87.34, 0] (≈ 0.02 nats per bin).
const BINS: usize = 4096;
/// Scores below this have probability 0 (see `whale_nn::fast_exp`), so they are never candidates.
const SCORE_RANGE: f32 = 87.336_55;

/// Reusable buffers of the histogram path.
#[derive(Debug, Clone, Default)]
pub(crate) struct TopPScratch {
    bins: Vec<f64>,
    crossing: Vec<u32>,
}

/// The least probability a token can have and still be in the top-`p` nucleus of a set of `n`
/// tokens with total probability `mass`, with a small safety margin for rounding.
///
/// Why it is safe: every token below it has probability < (1 - p) · mass / n, so all of them
/// together have less than (1 - p) · mass; the tokens above it then hold more than p · mass,
/// so the nucleus (a most-likely-first prefix) ends before reaching any of them. Dropping them
/// first changes nothing but the cost. [`top_p`] must still be given the full `mass`.
pub(crate) fn top_p_floor(p: f32, mass: f64, n: usize) -> f32 {
    if p >= 1.0 || n == 0 {
        return 0.0;
    }
    ((1.0 - f64::from(p)) * mass / n as f64 * 0.999) as f32
}

/// Keeps the smallest most-likely-first prefix whose probability reaches `p` of `mass` (the
/// total of the set top-p applies to; the token that crosses the threshold is kept). `p >= 1`
/// disables. `candidates` may lack tokens below [`top_p_floor`] of that set; the result is the
/// same. Small sets are left sorted most likely first; large ones keep their order.
pub(crate) fn top_p(
    scores: &[f32],
    probs: &[f32],
    candidates: &mut Vec<u32>,
    p: f32,
    mass: f64,
    scratch: &mut TopPScratch,
) {
    if p >= 1.0 {
        return;
    }
    let target = f64::from(p) * mass;
    if candidates.len() <= SORT_MAX {
        candidates.sort_unstable_by(most_likely_first(scores));
        if let Some(at) = crossing_index(candidates, probs, 0.0, target) {
            candidates.truncate(at + 1);
        }
        return;
    }

    let bin_of = |id: u32| -> usize {
        // Monotone: a higher score never lands in a later bin. `as` saturates, and scores are
        // ≤ 0 and not NaN here, so the index is in range after `min`.
        ((-scores[id as usize] * (BINS as f32 / SCORE_RANGE)) as usize).min(BINS - 1)
    };
    scratch.bins.clear();
    scratch.bins.resize(BINS, 0.0);
    for &id in candidates.iter() {
        scratch.bins[bin_of(id)] += f64::from(probs[id as usize]);
    }
    let mut before = 0.0f64;
    let Some(cut_bin) = scratch.bins.iter().position(|&m| {
        let reached = before + m >= target;
        if !reached {
            before += m;
        }
        reached
    }) else {
        return; // rounding kept the total just below the target: keep everything
    };
    scratch.crossing.clear();
    scratch.crossing.extend(candidates.iter().copied().filter(|&id| bin_of(id) == cut_bin));
    scratch.crossing.sort_unstable_by(most_likely_first(scores));
    let at = crossing_index(&scratch.crossing, probs, before, target)
        .unwrap_or(scratch.crossing.len() - 1);
    let last = scratch.crossing[at];
    let order = most_likely_first(scores);
    candidates.retain(|&id| {
        let bin = bin_of(id);
        bin < cut_bin || (bin == cut_bin && order(&id, &last) != Ordering::Greater)
    });
}

/// Index in `sorted` of the first token whose cumulative probability, starting from `start`,
/// reaches `target`.
fn crossing_index(sorted: &[u32], probs: &[f32], start: f64, target: f64) -> Option<usize> {
    let mut cumulative = start;
    sorted.iter().position(|&id| {
        cumulative += f64::from(probs[id as usize]);
        cumulative >= target
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::truncation::top_k;

    fn all(n: usize) -> Vec<u32> {
        (0..n as u32).collect()
    }

    /// Probabilities that are exact in binary, so the boundaries are exact too.
    const PROBS: [f32; 5] = [0.0625, 0.5, 0.0625, 0.25, 0.125];

    fn log(probs: &[f32]) -> Vec<f32> {
        probs.iter().map(|p| p.ln()).collect()
    }

    fn run(scores: &[f32], probs: &[f32], c: &mut Vec<u32>, p: f32, mass: f64) {
        top_p(scores, probs, c, p, mass, &mut TopPScratch::default());
    }

    /// Reference: full sort, then the smallest prefix reaching the target.
    fn reference(scores: &[f32], probs: &[f32], p: f32) -> Vec<u32> {
        let mut ids = all(probs.len());
        ids.retain(|&i| probs[i as usize] > 0.0);
        let mass: f64 = ids.iter().map(|&i| f64::from(probs[i as usize])).sum();
        ids.sort_by(most_likely_first(scores));
        let at = crossing_index(&ids, probs, 0.0, f64::from(p) * mass).unwrap_or(ids.len() - 1);
        ids.truncate(at + 1);
        ids.sort();
        ids
    }

    #[test]
    fn keeps_smallest_prefix_reaching_mass() {
        // Most likely first: 1 (0.5), 3 (0.25), 4 (0.125), 0 (0.0625), 2 (0.0625, higher id).
        let scores = log(&PROBS);
        let cases: [(f32, &[u32]); 6] = [
            (0.5, &[1]),          // 0.5 reaches 0.5 exactly
            (0.6, &[1, 3]),       // 0.75
            (0.75, &[1, 3]),      // 0.75 exactly
            (0.8, &[1, 3, 4]),    // 0.875
            (0.9, &[1, 3, 4, 0]), // 0.9375
            (0.99, &[1, 3, 4, 0, 2]),
        ];
        for (p, want) in cases {
            let mut c = all(5);
            run(&scores, &PROBS, &mut c, p, 1.0);
            assert_eq!(c, want, "top_p {p}");
        }
        let mut c = all(5);
        run(&scores, &PROBS, &mut c, 1.0, 1.0);
        assert_eq!(c, all(5), "p = 1 disables");
    }

    #[test]
    fn is_relative_to_the_remaining_candidates() {
        // After top-k = 2 the mass is 0.75; 0.5 / 0.75 = 0.67 reaches p = 0.6 alone.
        let scores = log(&PROBS);
        let mut c = all(5);
        top_k(&scores, &mut c, 2);
        run(&scores, &PROBS, &mut c, 0.6, 0.75);
        assert_eq!(c, vec![1]);
    }

    #[test]
    fn histogram_path_matches_full_sort() {
        // 20k tokens: a flat row (large nucleus), ties on purpose, and a peaked row.
        let n = 20_000u32;
        let flat: Vec<f32> = (0..n).map(|i| -(((i * 7919) % 1000) as f32) * 0.004).collect();
        let peaked: Vec<f32> = (0..n)
            .map(|i| {
                if i % 4000 == 3 {
                    -0.1 * (i / 4000) as f32
                } else {
                    -8.0 - (i % 97) as f32 * 0.05
                }
            })
            .collect();
        for scores in [flat, peaked] {
            let probs: Vec<f32> = scores.iter().map(|s| s.exp()).collect();
            let mass: f64 = probs.iter().map(|&p| f64::from(p)).sum();
            for p in [0.1f32, 0.5, 0.9, 0.95, 0.999] {
                let mut c = all(n as usize);
                run(&scores, &probs, &mut c, p, mass);
                assert!(c.windows(2).all(|w| w[0] < w[1]), "large sets keep id order");
                assert_eq!(c, reference(&scores, &probs, p), "p = {p}");
            }
        }
    }

    #[test]
    fn ties_go_to_the_lower_id() {
        // 3000 equal tokens (histogram path): p = 0.5 keeps the 1500 lowest ids.
        let probs = vec![1.0f32; 3000];
        let scores = vec![0.0f32; 3000];
        let mut c: Vec<u32> = all(3000);
        run(&scores, &probs, &mut c, 0.5, 3000.0);
        assert_eq!(c, all(1500));
        // Same through the sort path.
        let mut c: Vec<u32> = all(1000).into_iter().rev().collect();
        run(&scores[..1000], &probs[..1000], &mut c, 0.5, 1000.0);
        assert_eq!(c, all(500));
    }

    #[test]
    fn floor_never_changes_the_nucleus() {
        // A peaked head and a long flat tail: the floor drops most of the tail, and the nucleus
        // computed on what is left is the one computed on everything.
        let mut probs = vec![0.4f32, 0.3, 0.2];
        probs.extend(std::iter::repeat_n(1e-5f32, 20_000));
        let scores: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
        let mass: f64 = probs.iter().map(|&p| f64::from(p)).sum();
        for p in [0.5f32, 0.9, 0.95, 0.99] {
            let mut full = all(probs.len());
            run(&scores, &probs, &mut full, p, mass);
            let floor = top_p_floor(p, mass, probs.len());
            let mut kept: Vec<u32> =
                all(probs.len()).into_iter().filter(|&i| probs[i as usize] >= floor).collect();
            run(&scores, &probs, &mut kept, p, mass);
            full.sort();
            kept.sort();
            assert_eq!(kept, full, "p = {p}");
        }
        assert_eq!(top_p_floor(1.0, 2.0, 10), 0.0);
    }
}
