//! Incremental stop-string detection across token boundaries.
//!
//! Why: generated text arrives one decoded token at a time, and a stop string such as
//! `"\nUser:"` usually spans several tokens. Emitting each piece as it comes would leak the
//! first half of a stop string to the client before the second half shows it was one.
//! [`StopMatcher`] holds back the longest suffix of the unemitted text that could still grow
//! into a stop string, and releases it once it cannot.
//!
//! Semantics, chosen so the result depends only on the concatenated text and never on how it
//! was split into pieces (feeding one character at a time gives the same output as feeding
//! everything at once):
//! - The stream stops at the earliest position where some stop string has been *completed*
//!   (the earliest end), because that is the point where a streaming engine learns it must
//!   stop; it cannot wait to see whether a longer stop string that began earlier would also
//!   complete later.
//! - Among stop strings completed at that same position, the longest (earliest start) wins, so
//!   no part of any completed stop string is emitted; equal strings resolve to the lower index.
//! - Everything before the winning stop string's start is emitted; the stop string and anything
//!   after it are dropped, and later pushes return nothing.

/// A stop string that was found in the generated text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopMatch {
    /// Index of the stop string in the list given to [`StopMatcher::new`].
    pub index: usize,
    /// The stop string itself.
    pub stop: String,
}

/// What one [`StopMatcher::push`] releases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopDelta {
    /// Text that is safe to emit now (on a match: the rest of the text before the stop string).
    pub text: String,
    /// Set on the push that completes a stop string; generation should end.
    pub stopped: Option<StopMatch>,
}

/// A stop-string list that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StopError {
    /// An empty stop string would match before any text; it is almost certainly a caller bug.
    #[error("stop string at index {index} is empty; expected a non-empty string")]
    EmptyStop { index: usize },
}

/// Feeds generated text pieces and releases the text that can no longer be part of a stop
/// string.
#[derive(Debug, Clone)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Text received but not yet released: always a (possibly empty) proper prefix of some
    /// stop string, never a complete one.
    held: String,
    stopped: Option<StopMatch>,
}

impl StopMatcher {
    /// Builds a matcher for `stops` (may be empty: then every piece passes straight through).
    pub fn new<I, S>(stops: I) -> Result<Self, StopError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let stops: Vec<String> = stops.into_iter().map(Into::into).collect();
        if let Some(index) = stops.iter().position(String::is_empty) {
            return Err(StopError::EmptyStop { index });
        }
        Ok(StopMatcher { stops, held: String::new(), stopped: None })
    }

    /// The stop strings, in the order given.
    pub fn stops(&self) -> &[String] {
        &self.stops
    }

    /// Adds one piece of generated text; returns what is safe to emit and, if a stop string
    /// was completed, which one. After a match every push returns an empty delta.
    pub fn push(&mut self, piece: &str) -> StopDelta {
        if self.stopped.is_some() {
            return StopDelta::default();
        }
        self.held.push_str(piece);
        if let Some((start, index)) = self.earliest_match() {
            let text = self.held[..start].to_string();
            self.held.clear();
            let found = StopMatch { index, stop: self.stops[index].clone() };
            self.stopped = Some(found.clone());
            return StopDelta { text, stopped: Some(found) };
        }
        let stops: Vec<&str> = self.stops.iter().map(String::as_str).collect();
        let keep = partial_match_len(&self.held, &stops);
        let release = self.held.len() - keep;
        let text: String = self.held.drain(..release).collect();
        StopDelta { text, stopped: None }
    }

    /// Ends the stream: returns the held-back text (a stop-string prefix that never
    /// completed), or nothing if a stop string already matched.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// The stop string that ended the stream, if any.
    pub fn stopped(&self) -> Option<&StopMatch> {
        self.stopped.as_ref()
    }

    /// Length in bytes of the text currently held back.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    /// `(start, index)` of the match with the earliest end, ties to the earliest start, then
    /// the lowest index. `held` never contains a complete stop string from an earlier push, so
    /// any match found now ends inside the newest piece.
    fn earliest_match(&self) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize, usize)> = None; // (end, start, index)
        for (index, stop) in self.stops.iter().enumerate() {
            if let Some(start) = self.held.find(stop.as_str()) {
                let key = (start + stop.len(), start, index);
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
            }
        }
        best.map(|(_, start, index)| (start, index))
    }
}

/// Length in bytes of the longest suffix of `text` that is a proper, non-empty prefix of one of
/// `patterns` (0 if none). Such a suffix could still grow into a pattern, so callers hold it.
///
/// The returned suffix always starts on a char boundary: its first byte equals the first byte
/// of a pattern, which is never a UTF-8 continuation byte.
pub(crate) fn partial_match_len(text: &str, patterns: &[&str]) -> usize {
    let longest = patterns.iter().map(|p| p.len()).max().unwrap_or(0);
    let upper = text.len().min(longest.saturating_sub(1));
    (1..=upper)
        .rev()
        .find(|&k| {
            let start = text.len() - k;
            text.is_char_boundary(start)
                && patterns
                    .iter()
                    .any(|p| p.len() > k && p.as_bytes().starts_with(&text.as_bytes()[start..]))
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` and returns (emitted text, match).
    fn run(stops: &[&str], pieces: &[&str]) -> (String, Option<StopMatch>) {
        let mut m = StopMatcher::new(stops.iter().copied()).unwrap();
        let mut out = String::new();
        let mut found = None;
        for p in pieces {
            let d = m.push(p);
            out.push_str(&d.text);
            if d.stopped.is_some() {
                assert!(found.is_none(), "a second match was reported");
                found = d.stopped;
            }
        }
        out.push_str(&m.finish());
        assert_eq!(found.as_ref(), m.stopped());
        (out, found)
    }

    fn chars(s: &str) -> Vec<String> {
        s.chars().map(String::from).collect()
    }

    /// Whole, char-at-a-time and two-way splits at every boundary all agree.
    fn assert_split_invariant(stops: &[&str], text: &str) -> (String, Option<StopMatch>) {
        let whole = run(stops, &[text]);
        let by_char: Vec<String> = chars(text);
        let by_char: Vec<&str> = by_char.iter().map(String::as_str).collect();
        assert_eq!(run(stops, &by_char), whole, "char-at-a-time differs for {text:?}");
        for (i, _) in text.char_indices() {
            assert_eq!(run(stops, &[&text[..i], &text[i..]]), whole, "split at {i} of {text:?}");
        }
        whole
    }

    #[test]
    fn no_stops_passes_everything_through() {
        let mut m = StopMatcher::new(Vec::<String>::new()).unwrap();
        assert_eq!(m.push("abc").text, "abc");
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn holds_back_a_possible_prefix_and_releases_it() {
        let mut m = StopMatcher::new(["STOP"]).unwrap();
        assert_eq!(m.push("hello ST").text, "hello ");
        assert_eq!(m.held_len(), 2);
        // "STA" cannot start "STOP" any more: released.
        assert_eq!(m.push("A").text, "STA");
        assert_eq!(m.push("rt S").text, "rt ");
        assert_eq!(m.finish(), "S");
    }

    #[test]
    fn match_spanning_three_pieces_reports_text_before() {
        let mut m = StopMatcher::new(["<|end|>"]).unwrap();
        assert_eq!(m.push("answer <|").text, "answer ");
        assert_eq!(m.push("en").text, "");
        let d = m.push("d|> trailing");
        assert_eq!(d.text, "");
        assert_eq!(d.stopped, Some(StopMatch { index: 0, stop: "<|end|>".into() }));
        assert_eq!(m.push("more").text, "");
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn match_inside_one_piece() {
        let (out, found) = assert_split_invariant(&["\nUser:"], "Sure.\nUser: hi");
        assert_eq!(out, "Sure.");
        assert_eq!(found.unwrap().index, 0);
    }

    #[test]
    fn multiple_stops_earliest_end_wins() {
        // "bc" completes (at byte 3) before "abcd" could (at byte 4).
        let (out, found) = assert_split_invariant(&["abcd", "bc"], "xabcd");
        assert_eq!(out, "xa");
        assert_eq!(found.unwrap().stop, "bc");
    }

    #[test]
    fn same_end_prefers_the_longest() {
        let (out, found) = assert_split_invariant(&["bc", "abc"], "xxabc!");
        assert_eq!(out, "xx");
        assert_eq!(found.unwrap().index, 1);
    }

    #[test]
    fn overlapping_prefixes() {
        // "ab" is a prefix of "abc": "ab" completes first.
        let (out, found) = assert_split_invariant(&["abc", "ab"], "zzabc");
        assert_eq!(out, "zz");
        assert_eq!(found.unwrap().stop, "ab");
        // Self-overlapping stop string: "aab" inside "aaab".
        let (out, found) = assert_split_invariant(&["aab"], "xaaab");
        assert_eq!(out, "xa");
        assert!(found.is_some());
        // A near miss that must be fully released.
        let (out, found) = assert_split_invariant(&["aab", "abc"], "aaxabxab");
        assert_eq!(out, "aaxabxab");
        assert!(found.is_none());
    }

    #[test]
    fn duplicate_stops_resolve_to_lower_index() {
        let (_, found) = assert_split_invariant(&["end", "end"], "the end");
        assert_eq!(found.unwrap().index, 0);
    }

    #[test]
    fn unicode_stop_strings_and_text() {
        let (out, found) = assert_split_invariant(&["。\n", "🐳!"], "鲸鱼很大🐳🐳!尾");
        assert_eq!(out, "鲸鱼很大🐳");
        assert_eq!(found.unwrap().index, 1);
        let (out, found) = assert_split_invariant(&["ñé"], "año ñ ñe ñé");
        assert_eq!(out, "año ñ ñe ");
        assert!(found.is_some());
    }

    #[test]
    fn unfinished_prefix_is_flushed_by_finish() {
        let (out, found) = assert_split_invariant(&["</answer>"], "42</ans");
        assert_eq!(out, "42</ans");
        assert!(found.is_none());
    }

    #[test]
    fn byte_level_split_inside_a_character_of_a_stop_string() {
        // "é" and "ê" share their first UTF-8 byte: the held suffix must stay on char
        // boundaries and the near miss must be released whole.
        let (out, found) = assert_split_invariant(&["ê"], "café");
        assert_eq!(out, "café");
        assert!(found.is_none());
    }

    #[test]
    fn empty_stop_is_an_error() {
        let err = StopMatcher::new(["a", ""]).unwrap_err();
        assert_eq!(err, StopError::EmptyStop { index: 1 });
        assert!(err.to_string().contains("index 1"));
    }

    #[test]
    fn partial_match_len_cases() {
        assert_eq!(partial_match_len("abc", &["cd"]), 1);
        assert_eq!(partial_match_len("abc", &["bcd", "cx"]), 2);
        assert_eq!(partial_match_len("abc", &["abc"]), 0, "a complete match is not partial");
        assert_eq!(partial_match_len("", &["a"]), 0);
        assert_eq!(partial_match_len("x", &[]), 0);
    }
}
