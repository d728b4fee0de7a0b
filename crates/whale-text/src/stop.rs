//! Incremental stop-string detection (filled in by the text work).
