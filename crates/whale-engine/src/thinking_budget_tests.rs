//! Tests of the thinking budget, driven like a generation loop.

use super::*;

const OPEN: u32 = 900;
const CLOSE: u32 = 901;
const NL2: u32 = 902;

/// Runs a generation loop for `steps` steps: forced ids when the budget says so, otherwise
/// the next id the "model" would sample. Returns the emitted ids.
fn drive(budget: &mut ThinkingBudget, model: &[u32], steps: usize) -> Vec<u32> {
    let mut model = model.iter().copied();
    let mut out = Vec::new();
    for _ in 0..steps {
        let id = match budget.forced_token() {
            Some(id) => id,
            None => match model.next() {
                Some(id) => id,
                None => break,
            },
        };
        budget.observe(id);
        out.push(id);
    }
    out
}

#[test]
fn forces_close_and_suffix_after_budget() {
    let mut b = ThinkingBudget::new(3, vec![CLOSE]).unwrap().with_suffix(&[NL2]);
    assert_eq!(b.remaining(), Some(3));
    let out = drive(&mut b, &[1, 2, 3, 4, 5, 6], 8);
    // Three reasoning tokens, then `</think>` `\n\n`, then the model resumes (its 4th token
    // onward, since the forced steps did not consume model tokens).
    assert_eq!(out, vec![1, 2, 3, CLOSE, NL2, 4, 5, 6]);
    assert_eq!(b.phase(), ThinkingPhase::Answering);
    assert_eq!(b.reasoning_tokens(), 3);
    assert!(b.was_forced());
    assert_eq!(b.forced_token(), None);
    assert_eq!(b.remaining(), None);
}

#[test]
fn phase_and_remaining_step_by_step() {
    let mut b = ThinkingBudget::new(2, vec![CLOSE]).unwrap().with_suffix(&[NL2]);
    assert_eq!(b.forced_token(), None);
    b.observe(7);
    assert_eq!((b.remaining(), b.reasoning_tokens()), (Some(1), 1));
    b.observe(8);
    assert_eq!(b.forced_token(), Some(CLOSE));
    b.observe(CLOSE);
    assert_eq!((b.phase(), b.forced_token()), (ThinkingPhase::Closing, Some(NL2)));
    b.observe(NL2);
    assert_eq!((b.phase(), b.forced_token()), (ThinkingPhase::Answering, None));
}

#[test]
fn natural_close_within_budget_forces_nothing() {
    let mut b = ThinkingBudget::new(10, vec![CLOSE]).unwrap().with_suffix(&[NL2]);
    let out = drive(&mut b, &[1, 2, CLOSE, 5, 6], 20);
    assert_eq!(out, vec![1, 2, CLOSE, 5, 6]);
    assert_eq!(b.phase(), ThinkingPhase::Answering);
    assert_eq!(b.reasoning_tokens(), 2);
    assert!(!b.was_forced());
}

#[test]
fn zero_budget_closes_immediately() {
    let mut b = ThinkingBudget::new(0, vec![CLOSE]).unwrap().with_suffix(&[NL2]);
    assert_eq!(b.forced_token(), Some(CLOSE));
    let out = drive(&mut b, &[1, 2], 10);
    assert_eq!(out, vec![CLOSE, NL2, 1, 2]);
    assert_eq!(b.reasoning_tokens(), 0);
}

#[test]
fn awaiting_open_tag_counts_only_inside_the_block() {
    let mut b = ThinkingBudget::new(2, vec![CLOSE]).unwrap().awaiting_open_tag(vec![OPEN]).unwrap();
    assert_eq!(b.phase(), ThinkingPhase::AwaitingOpen);
    let out = drive(&mut b, &[OPEN, 1, 2, 3], 10);
    assert_eq!(out, vec![OPEN, 1, 2, CLOSE, 3]);
    assert_eq!(b.reasoning_tokens(), 2);
}

#[test]
fn model_that_does_not_think_is_never_forced() {
    let mut b = ThinkingBudget::new(0, vec![CLOSE]).unwrap().awaiting_open_tag(vec![OPEN]).unwrap();
    assert_eq!(b.forced_token(), None);
    let out = drive(&mut b, &[1, 2, OPEN, 3], 10);
    assert_eq!(out, vec![1, 2, OPEN, 3]);
    assert_eq!(b.phase(), ThinkingPhase::Answering);
    assert_eq!(b.reasoning_tokens(), 0);
}

#[test]
fn multi_token_open_tag_must_match_in_order() {
    let open = vec![50, 51];
    let mut b =
        ThinkingBudget::new(1, vec![CLOSE]).unwrap().awaiting_open_tag(open.clone()).unwrap();
    assert_eq!(drive(&mut b, &[50, 51, 1, 2], 10), vec![50, 51, 1, CLOSE, 2]);
    let mut b = ThinkingBudget::new(1, vec![CLOSE]).unwrap().awaiting_open_tag(open).unwrap();
    assert_eq!(drive(&mut b, &[50, 9, 1, 2], 10), vec![50, 9, 1, 2]);
}

#[test]
fn multi_token_close_tag_matched_across_tokens_with_overlap() {
    // Closing tag [A, B]; the model writes x A A B: the first A was reasoning.
    let (a, bb) = (60, 61);
    let mut b = ThinkingBudget::new(10, vec![a, bb]).unwrap();
    let out = drive(&mut b, &[1, a, a, bb, 2], 10);
    assert_eq!(out, vec![1, a, a, bb, 2]);
    assert_eq!(b.reasoning_tokens(), 2);
    assert!(!b.was_forced());
}

#[test]
fn budget_running_out_mid_tag_forces_only_the_rest() {
    // Closing tag [A, B, C] plus suffix; the model has written A when the budget runs out.
    let (a, bb, c) = (60, 61, 62);
    let mut b = ThinkingBudget::new(3, vec![a, bb, c]).unwrap().with_suffix(&[NL2]);
    let out = drive(&mut b, &[1, 2, a, 7, 8], 10);
    assert_eq!(out, vec![1, 2, a, bb, c, NL2, 7, 8]);
    assert_eq!(b.reasoning_tokens(), 2);
    assert!(b.was_forced());
}

#[test]
fn with_suffix_replaces_an_earlier_suffix() {
    let mut b =
        ThinkingBudget::new(0, vec![CLOSE]).unwrap().with_suffix(&[1, 2]).with_suffix(&[NL2]);
    assert_eq!(drive(&mut b, &[], 10), vec![CLOSE, NL2]);
}

#[test]
fn empty_tags_are_errors() {
    let err = ThinkingBudget::new(5, vec![]).unwrap_err();
    assert!(err.to_string().contains("closing tag has no token ids"), "{err}");
    let err = ThinkingBudget::new(5, vec![CLOSE]).unwrap().awaiting_open_tag(vec![]).unwrap_err();
    assert!(err.to_string().contains("opening tag"), "{err}");
}

#[test]
fn longest_prefix_suffix_cases() {
    assert_eq!(longest_prefix_suffix(&[1, 2, 3], &[2, 3, 4]), 2);
    assert_eq!(longest_prefix_suffix(&[1, 1], &[1, 2]), 1);
    assert_eq!(longest_prefix_suffix(&[5], &[1, 2]), 0);
    assert_eq!(longest_prefix_suffix(&[], &[1]), 0);
}
