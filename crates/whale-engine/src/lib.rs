//! Token ids in, tokens out: sampling now; the scheduler and caches come later.

pub mod sampling;
