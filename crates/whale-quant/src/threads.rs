//! The worker threads the matmul kernels split rows over.
//!
//! By default the kernels run on rayon's global pool, the one candle's CPU ops (GEMMs,
//! element-wise maps) use: a model forward then has one set of worker threads, not one per
//! library contending for the same cores and waking each other up at every matmul.
//! `set_num_threads(n)` with an `n` other than the global pool's size builds a dedicated pool
//! (the global pool's size is fixed at its first use; `whale` sets `RAYON_NUM_THREADS` first).

use std::sync::{Arc, Mutex};

use rayon::{ThreadPool, ThreadPoolBuilder};

/// `None`: the global pool; `Some`: a dedicated one of that size.
static POOL: Mutex<Option<Arc<ThreadPool>>> = Mutex::new(None);

/// Sets the number of threads later matmuls use (at least 1).
pub fn set_num_threads(n: usize) {
    let n = n.max(1);
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let current = guard.as_ref().map_or_else(rayon::current_num_threads, |p| p.current_num_threads());
    if current == n {
        return;
    }
    *guard = if n == rayon::current_num_threads() {
        None
    } else {
        // A pool that cannot be built (the OS refused threads) leaves the global one in use.
        ThreadPoolBuilder::new().num_threads(n).thread_name(|i| format!("whale-quant-{i}")).build().ok().map(Arc::new)
    };
}

/// The number of threads matmuls use.
pub fn num_threads() -> usize {
    pool().map_or_else(rayon::current_num_threads, |p| p.current_num_threads())
}

/// The dedicated pool, if `set_num_threads` asked for one; `None` means rayon's global pool.
pub(crate) fn pool() -> Option<Arc<ThreadPool>> {
    POOL.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Runs `f` on the matmul threads: the dedicated pool if there is one, else the global pool
/// (where rayon's parallel iterators inside `f` run anyway). For kernels outside this crate
/// that split work the same way (e.g. decode attention).
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    install_on(pool(), f)
}

/// [`install`] on a pool the caller already looked up.
pub(crate) fn install_on<R: Send>(pool: Option<Arc<ThreadPool>>, f: impl FnOnce() -> R + Send) -> R {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}
