//! Which kernels decode rows take. Whale's kernels stream large weights faster at one to a
//! few rows (memory-bound decoding); candle's repacked Q4_K/Q8_0 are faster for the many rows
//! of a prompt. A row's result must not depend on what else is in its batch, so the choice
//! cannot follow the row count of a matmul; it follows the kind of forward instead: a forward
//! in which every new token is a decode (and every output head over one last token per
//! sequence) runs inside [`decode_kernels`], and the engine never puts prompt rows and decode
//! rows in one forward.

use std::cell::Cell;

thread_local! {
    static DECODING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the decode-row kernel choice ([`crate::Backend::for_decode`]) for every
/// `QMatrix::matmul` called on this thread.
pub fn decode_kernels<R>(f: impl FnOnce() -> R) -> R {
    let before = DECODING.with(|d| d.replace(true));
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            DECODING.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(before);
    f()
}

/// Whether this thread is inside [`decode_kernels`], and the decode-row choice is on.
///
/// `WHALE_DECODE_KERNELS=0` turns the choice off, so decode rows take the prompt rows'
/// kernels: on Q4_K models candle's repacked kernel is faster from about 8 rows on, so a
/// server decoding many streams at once gets more throughput that way, and one stream less
/// (docs/benchmarks.md).
pub fn decoding() -> bool {
    use std::sync::OnceLock;
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("WHALE_DECODE_KERNELS").map_or(true, |v| v != "0")) && DECODING.with(Cell::get)
}
