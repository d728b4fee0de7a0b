//! The worker threads the matmul kernels split rows over.
//!
//! A dedicated rayon pool (not the global one) so `set_num_threads` takes effect for later
//! calls and the kernels do not compete with other rayon users (candle's own ops) for workers.
//! Default: `std::thread::available_parallelism()`.

use std::sync::{Arc, Mutex};

use rayon::{ThreadPool, ThreadPoolBuilder};

static POOL: Mutex<Option<(usize, Arc<ThreadPool>)>> = Mutex::new(None);

fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Sets the number of threads later matmuls use (at least 1).
pub fn set_num_threads(n: usize) {
    let n = n.max(1);
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if guard.as_ref().map(|(k, _)| *k) != Some(n) {
        *guard = build(n).map(|p| (n, Arc::new(p)));
    }
}

/// The number of threads matmuls use.
pub fn num_threads() -> usize {
    pool().map(|p| p.current_num_threads()).unwrap_or(1)
}

fn build(n: usize) -> Option<ThreadPool> {
    ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("whale-quant-{i}"))
        .build()
        .ok()
}

/// The pool, created on first use; `None` only if the OS refused to start threads, in which
/// case the kernels run on the calling thread.
pub(crate) fn pool() -> Option<Arc<ThreadPool>> {
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        let n = default_threads();
        *guard = build(n).map(|p| (n, Arc::new(p)));
    }
    guard.as_ref().map(|(_, p)| p.clone())
}
