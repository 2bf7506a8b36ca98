//! A parent with threads: fork refuses it (unless `allow_threads`), but not for threads that
//! were just joined; spawn serves it, and so does a fork server started before the threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use pifork::{Error, Process, StartMethod, forkserver};

use crate::common::{Test, eventually, rounds};

const DOUBLE: &str = "threads.double";

/// Registers this module's entry points (before `main_guard`).
pub fn register_entries() {
    pifork::register(DOUBLE, |x: u64| x * 2);
}

pub const TESTS: &[Test] = &[
    Test::Once("refuses_to_fork_a_multithreaded_parent", refuses_to_fork_a_multithreaded_parent),
    Test::Once("starts_right_after_threads_are_joined", starts_right_after_threads_are_joined),
    Test::Once("spawn_serves_a_parent_with_busy_threads", spawn_serves_a_parent_with_busy_threads),
    Test::Once(
        "forkserver_started_before_threads_serves_them_and_fork_refuses",
        forkserver_started_before_threads_serves_them_and_fork_refuses,
    ),
];

/// Threads that spin until stopped.
struct BusyThreads {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<u64>>,
}

impl BusyThreads {
    fn start(n: usize) -> BusyThreads {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut spins = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        spins += 1;
                        std::hint::spin_loop();
                    }
                    spins
                })
            })
            .collect();
        BusyThreads { stop, threads }
    }

    /// Stops and joins the threads, then waits until a plain fork is allowed again (a joined
    /// thread can linger in /proc/self/task for a moment, under qemu-user especially).
    fn stop(mut self) {
        self.join();
        let mut p = Process::new(|| ());
        assert!(eventually(Duration::from_secs(5), || p.start().is_ok()));
        p.join().unwrap();
    }

    fn join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            assert!(t.join().unwrap() > 0, "the thread ran");
        }
    }
}

impl Drop for BusyThreads {
    fn drop(&mut self) {
        // After a failed assertion: the next tests need the threads gone.
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn refuses_to_fork_a_multithreaded_parent() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || rx.recv().ok());
    let mut p = Process::new(|| 5u8);
    match p.start() {
        Err(Error::MultiThreaded { threads }) => assert!(threads >= 2),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(Error::MultiThreaded { threads: 2 }.to_string().contains("allow_threads"));
    let mut q = Process::new(|| 5u8).allow_threads(true);
    q.start().unwrap();
    assert_eq!(q.result().unwrap(), 5);
    tx.send(()).unwrap();
    thread.join().unwrap();
    // Single-threaded again: the plain start works (a joined thread can linger in
    // /proc/self/task for a moment, under qemu-user especially; a refused start can be retried).
    assert!(eventually(Duration::from_secs(5), || p.start().is_ok()));
    assert_eq!(p.result().unwrap(), 5);
}

fn starts_right_after_threads_are_joined() {
    // A joined thread is reaped a moment after it wakes its joiner, and may still be counted
    // then: a start right after the join must not be refused for it.
    for round in 0..50 {
        std::thread::scope(|s| {
            s.spawn(|| ());
            s.spawn(|| ());
        });
        let mut p = Process::new(move || round);
        p.start().unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(p.result().unwrap(), round);
    }
}

fn spawn_serves_a_parent_with_busy_threads() {
    // 1000 starts (100 under an emulator, where each is a new emulator), 8 at a time.
    let starts = rounds(1000);
    const BATCH: u64 = 8;
    let busy = BusyThreads::start(2);
    assert!(std::fs::read_dir("/proc/self/task").unwrap().count() >= 3, "the threads run");
    for first in (0..starts).step_by(BATCH as usize) {
        let mut batch: Vec<Process<u64>> = (first..(first + BATCH).min(starts))
            .map(|x| Process::entry(DOUBLE, &x).start_method(StartMethod::Spawn))
            .collect();
        for p in &mut batch {
            p.start().unwrap();
        }
        for (x, p) in (first..).zip(&mut batch) {
            assert_eq!(p.result().unwrap(), x * 2, "start {x}");
        }
    }
    busy.stop();
}

fn forkserver_started_before_threads_serves_them_and_fork_refuses() {
    // A server of its own, started while this process is single-threaded.
    forkserver::stop();
    forkserver::start().unwrap();
    let server = forkserver::pid();
    let busy = BusyThreads::start(2);
    for x in [1u64, 20, 300] {
        let mut p: Process<u64> = Process::entry(DOUBLE, &x).start_method(StartMethod::Forkserver);
        p.start().unwrap();
        assert_eq!(p.result().unwrap(), x * 2);
    }
    assert_eq!(forkserver::pid(), server, "the same server served every start");
    let mut p: Process<u64> = Process::entry(DOUBLE, &4u64).start_method(StartMethod::Fork);
    match p.start() {
        Err(Error::MultiThreaded { threads }) => assert!(threads >= 3, "{threads} threads"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut q: Process<u64> =
        Process::entry(DOUBLE, &4u64).start_method(StartMethod::Fork).allow_threads(true);
    q.start().unwrap();
    assert_eq!(q.result().unwrap(), 8);
    busy.stop();
    p.start().unwrap();
    assert_eq!(p.result().unwrap(), 8, "single-threaded again, the refused process starts");
}
