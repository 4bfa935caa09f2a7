//! The worker pool that runs a kernel's tasks.
//!
//! The calling thread publishes a job (a task function and a count), runs tasks itself, and
//! waits only for tasks a worker has already started; it never waits for a worker to wake
//! up. Tasks are claimed from a shared counter, so whoever is running takes the next one: on
//! a busy machine a descheduled worker costs nothing but its own share.
//!
//! An idle worker keeps looking for the next job for a short while (a training step issues
//! its kernels tens of microseconds apart, and waking a sleeping thread costs about as much,
//! more in a virtual machine), yielding its core to any other runnable thread as it looks,
//! and then sleeps on a condition variable until the next job. Nothing spins for long:
//! between steps, evaluations and epochs the workers sleep.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker looks for the next job before it sleeps.
const LOOK: Duration = Duration::from_micros(200);

/// One job: task function and count, shared by everyone working on it.
struct Job {
    /// A task function borrowed from `Pool::run`'s caller, which does not return before every
    /// started task has finished.
    task: *const (dyn Fn(usize) + Sync),
    tasks: usize,
    next: AtomicUsize,
    done: AtomicUsize,
}

// SAFETY: `task` is only called for claimed task numbers below `tasks`, all of which finish
// before `run` returns (see above); the closure itself is Sync.
unsafe impl Send for Job {}
unsafe impl Sync for Job {}

impl Job {
    /// Claims and runs tasks until none are left.
    fn work(&self) -> bool {
        let mut panicked = false;
        loop {
            let t = self.next.fetch_add(1, Ordering::Relaxed);
            if t >= self.tasks {
                return panicked;
            }
            // SAFETY: t < tasks, so the caller is still inside `run` (it waits for `done`).
            let f = unsafe { &*self.task };
            panicked |= catch_unwind(AssertUnwindSafe(|| f(t))).is_err();
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

struct Shared {
    /// Bumped for every job; workers watch it.
    epoch: AtomicU64,
    job: Mutex<Option<Arc<Job>>>,
    sleeping: AtomicUsize,
    wake: Condvar,
    sleep_lock: Mutex<()>,
    stop: AtomicBool,
    panicked: AtomicBool,
}

pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// One job at a time.
    running: Mutex<()>,
}

impl Pool {
    /// A pool of `threads` threads in all: the caller of `run` and `threads - 1` workers.
    pub fn new(threads: usize) -> std::io::Result<Pool> {
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: Mutex::new(None),
            sleeping: AtomicUsize::new(0),
            wake: Condvar::new(),
            sleep_lock: Mutex::new(()),
            stop: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
        });
        let mut workers = Vec::new();
        for i in 1..threads.max(1) {
            let s = shared.clone();
            workers.push(std::thread::Builder::new().name(format!("hoyer-worker-{i}")).spawn(move || worker(&s))?);
        }
        Ok(Pool { shared, workers, running: Mutex::new(()) })
    }

    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `task(0)`, …, `task(tasks - 1)`, spread over the pool; returns when all are done.
    pub fn run(&self, tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        if tasks <= 1 || self.workers.is_empty() {
            (0..tasks).for_each(task);
            return;
        }
        let _one = self.running.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the lifetime is erased for the workers' use only; this function does not
        // return before `done == tasks`, after which no worker calls `task` again.
        let task: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(task) };
        let job = Arc::new(Job { task, tasks, next: AtomicUsize::new(0), done: AtomicUsize::new(0) });
        *self.shared.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job.clone());
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        if self.shared.sleeping.load(Ordering::SeqCst) > 0 {
            let _g = self.shared.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        let mut panicked = job.work();
        // Wait for the tasks workers have started (short: one task each at most).
        let mut waits = 0u32;
        while job.done.load(Ordering::Acquire) < tasks {
            waits += 1;
            if waits.is_multiple_of(64) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        panicked |= self.shared.panicked.swap(false, Ordering::Relaxed);
        if panicked {
            panic!("a kernel task panicked");
        }
    }
}

fn worker(s: &Shared) {
    let mut seen = 0u64;
    loop {
        // Look for the next job for a while, yielding the core as we look; then sleep.
        let started = Instant::now();
        let mut looks = 0u32;
        loop {
            if s.stop.load(Ordering::Acquire) {
                return;
            }
            let e = s.epoch.load(Ordering::Acquire);
            if e != seen {
                seen = e;
                break;
            }
            looks += 1;
            if !looks.is_multiple_of(16) {
                std::hint::spin_loop();
                continue;
            }
            if started.elapsed() < LOOK {
                std::thread::yield_now();
                continue;
            }
            let guard = s.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
            s.sleeping.fetch_add(1, Ordering::SeqCst);
            let guard = s
                .wake
                .wait_while(guard, |_| s.epoch.load(Ordering::SeqCst) == seen && !s.stop.load(Ordering::Acquire))
                .unwrap_or_else(|e| e.into_inner());
            s.sleeping.fetch_sub(1, Ordering::AcqRel);
            drop(guard);
        }
        let job = s.job.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(job) = job {
            if job.work() {
                s.panicked.store(true, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        {
            let _g = self.shared.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_on_any_pool() {
        for threads in [1, 2, 4] {
            let pool = Pool::new(threads).unwrap();
            for tasks in [0, 1, 2, 7, 100] {
                let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
                for _ in 0..50 {
                    pool.run(tasks, &|t| {
                        hits[t].fetch_add(1, Ordering::Relaxed);
                    });
                }
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 50), "{threads} threads, {tasks} tasks");
            }
        }
    }

    #[test]
    fn sleeping_workers_wake_for_the_next_job() {
        let pool = Pool::new(3).unwrap();
        std::thread::sleep(LOOK * 5);
        let count = AtomicUsize::new(0);
        pool.run(64, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 64);
    }
}
