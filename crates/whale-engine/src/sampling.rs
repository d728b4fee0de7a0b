//! Sampling (filled in).
