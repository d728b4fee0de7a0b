//! GRPO's outcome advantages (DeepSeekMath §4.1.2): each output's reward normalized within
//! its group of G outputs for the same prompt, `A_i = (r_i − mean(r)) / std(r)`, used for
//! every token of output i. No value model.

/// Group-normalized advantages. A group whose rewards are all equal carries no signal and
/// gets zeros (instead of dividing by a zero std). The std is the population std, as in the
/// paper's definition; `eps` guards tiny spreads.
pub fn group_advantages(rewards: &[f64], eps: f64) -> Vec<f64> {
    let n = rewards.len() as f64;
    if rewards.is_empty() {
        return vec![];
    }
    let mean = rewards.iter().sum::<f64>() / n;
    let std = (rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
    if std < 1e-12 {
        return vec![0.0; rewards.len()];
    }
    rewards.iter().map(|r| (r - mean) / (std + eps)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_within_the_group() {
        let a = group_advantages(&[1.0, 0.0, 0.0, 1.0], 0.0);
        assert_eq!(a, vec![1.0, -1.0, -1.0, 1.0]);
        let a = group_advantages(&[2.0, 0.0, 0.0, 0.0], 0.0);
        let s: f64 = a.iter().sum();
        assert!(s.abs() < 1e-12);
        assert!((a[0] - 3f64.sqrt()).abs() < 1e-12);
        assert_eq!(group_advantages(&[1.0, 1.0, 1.0], 1e-4), vec![0.0; 3]);
    }
}
