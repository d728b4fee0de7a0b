//! The sampling metrics of R1's evaluation: pass@1 as the mean correctness over k samples,
//! pass@k with the unbiased estimator of Chen et al. 2021 (HumanEval), and cons@k (majority
//! vote over the extracted answers).

/// Unbiased pass@k from `n` samples of which `c` are correct: `1 - C(n-c, k) / C(n, k)`,
/// computed as a product to stay exact for large n.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    assert!(k >= 1 && k <= n && c <= n, "pass@k needs 1 <= k <= n and c <= n (n={n}, c={c}, k={k})");
    if n - c < k {
        return 1.0;
    }
    1.0 - ((n - c + 1)..=n).map(|i| 1.0 - k as f64 / i as f64).product::<f64>()
}

/// The majority answer among `answers` (`None`s are abstentions); ties go to the answer seen
/// first. Returns its index of first occurrence.
pub fn majority(answers: &[Option<String>]) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None; // (count, first index)
    for (i, a) in answers.iter().enumerate() {
        let Some(a) = a else { continue };
        if answers[..i].iter().any(|b| b.as_ref() == Some(a)) {
            continue; // counted at its first occurrence
        }
        let count = answers.iter().filter(|b| b.as_ref() == Some(a)).count();
        if best.is_none_or(|(c, _)| count > c) {
            best = Some((count, i));
        }
    }
    best.map(|(_, i)| i)
}

/// Mean and the half-width of a 95% normal-approximation confidence interval.
pub fn mean_ci95(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, 1.96 * (var / n).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binom(n: u64, k: u64) -> f64 {
        (0..k).map(|i| (n - i) as f64 / (i + 1) as f64).product()
    }

    #[test]
    fn pass_at_k_matches_the_combinatorial_definition() {
        for n in 1..=12usize {
            for c in 0..=n {
                for k in 1..=n {
                    let want = if n - c < k { 1.0 } else { 1.0 - binom((n - c) as u64, k as u64) / binom(n as u64, k as u64) };
                    assert!((pass_at_k(n, c, k) - want).abs() < 1e-12, "n={n} c={c} k={k}");
                }
            }
        }
        assert_eq!(pass_at_k(4, 1, 1), 0.25, "pass@1 is the fraction correct");
        assert_eq!(pass_at_k(4, 0, 4), 0.0);
    }

    #[test]
    fn majority_vote() {
        let s = |v: &[Option<&str>]| v.iter().map(|x| x.map(String::from)).collect::<Vec<_>>();
        assert_eq!(majority(&s(&[Some("1"), Some("2"), Some("2"), None])), Some(1));
        assert_eq!(majority(&s(&[Some("1"), Some("2")])), Some(0), "ties go to the first seen");
        assert_eq!(majority(&s(&[None, None])), None);
        let (m, h) = mean_ci95(&[1.0, 0.0, 1.0, 0.0]);
        assert_eq!(m, 0.5);
        assert!((h - 1.96 * (1.0f64 / 3.0 / 4.0).sqrt()).abs() < 1e-12);
    }
}
