//! Both cores on one training step: a helper thread that runs one half of each large kernel
//! while the calling thread runs the other. Between jobs it spins for a while (a step issues
//! dozens of kernels back to back, and waking a parked thread costs more than many of them
//! take); when no job comes it parks, so an idle process does not burn a core.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::Duration;

const IDLE: u32 = 0;
const POSTED: u32 = 1;
const DONE: u32 = 2;
/// Spins before parking: about a tenth of a millisecond.
const SPINS: u32 = 100_000;

struct Shared {
    state: AtomicU32,
    /// The posted job: a closure borrowed from `join`'s caller, who waits for it to finish.
    job: UnsafeCell<Option<*const (dyn Fn() + Sync)>>,
    panicked: AtomicBool,
}

// SAFETY: `job` is written only by the thread in `join` while the state is IDLE, and read
// only by the helper after it sees POSTED (release/acquire on `state` orders the accesses).
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

pub struct Helper {
    shared: Arc<Shared>,
    thread: Thread,
    /// One `join` at a time.
    lock: Mutex<()>,
}

/// The process's helper thread (started on first use).
pub fn helper() -> &'static Helper {
    static HELPER: OnceLock<Helper> = OnceLock::new();
    HELPER.get_or_init(|| {
        let shared = Arc::new(Shared {
            state: AtomicU32::new(IDLE),
            job: UnsafeCell::new(None),
            panicked: AtomicBool::new(false),
        });
        let worker = shared.clone();
        let handle = std::thread::Builder::new()
            .name("hoyer-helper".into())
            .spawn(move || work(&worker))
            .expect("the helper thread starts");
        Helper { shared, thread: handle.thread().clone(), lock: Mutex::new(()) }
    })
}

fn work(s: &Shared) {
    loop {
        let mut spins = 0;
        while s.state.load(Ordering::Acquire) != POSTED {
            if spins < SPINS {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::park_timeout(Duration::from_millis(50));
            }
        }
        // SAFETY: the poster wrote `job` before publishing POSTED and keeps the closure alive
        // until it sees DONE.
        let job = unsafe { (*s.job.get()).take() };
        if let Some(job) = job {
            if catch_unwind(AssertUnwindSafe(|| unsafe { (*job)() })).is_err() {
                s.panicked.store(true, Ordering::Relaxed);
            }
        }
        s.state.store(DONE, Ordering::Release);
    }
}

impl Helper {
    /// Runs `there` on the helper thread and `here` on this one; returns when both are done.
    pub fn join<A: Fn() + Sync, B: FnOnce()>(&self, there: &A, here: B) {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let job: &(dyn Fn() + Sync) = there;
        // SAFETY: the lifetime is erased only for the helper's use; `Wait` below blocks until
        // the helper reports DONE, also if `here` panics, so `there` outlives every use.
        let job: *const (dyn Fn() + Sync) = unsafe { std::mem::transmute(job) };
        unsafe { *self.shared.job.get() = Some(job) };
        self.shared.state.store(POSTED, Ordering::Release);
        self.thread.unpark();
        struct Wait<'a>(&'a Shared);
        impl Drop for Wait<'_> {
            fn drop(&mut self) {
                while self.0.state.load(Ordering::Acquire) != DONE {
                    std::hint::spin_loop();
                }
                self.0.state.store(IDLE, Ordering::Release);
            }
        }
        let wait = Wait(&self.shared);
        here();
        drop(wait);
        if self.shared.panicked.swap(false, Ordering::Relaxed) {
            panic!("a kernel panicked on the helper thread");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn both_sides_run_every_time() {
        let count = AtomicUsize::new(0);
        for _ in 0..1000 {
            helper().join(
                &|| {
                    count.fetch_add(1, Ordering::Relaxed);
                },
                || {
                    count.fetch_add(10, Ordering::Relaxed);
                },
            );
        }
        assert_eq!(count.load(Ordering::Relaxed), 11_000);
    }
}
