//! Processes that wait for an `Event` to start, then work in rounds: each round every party
//! adds to a shared counter under a `Lock`, meets the others at a `Barrier`, checks that the
//! counter holds every party's additions so far, and meets them again before the next round.
//! The barrier's arrival indices of each round must be `0..PARTIES`, each once, and no
//! increment may be lost. The parties run a registered entry on inherited descriptors, so
//! every start method works.
//!
//! `cargo run -p pifork --example barrier_lock [-- fork|spawn|forkserver]`

use std::os::fd::AsRawFd;
use std::time::Duration;

use pifork::sync::{Barrier, Event, Lock};
use pifork::{Process, RawValue, StartMethod};

/// Processes taking part.
const PARTIES: u32 = 4;
/// Rounds each party works.
const ROUNDS: u64 = 5;
/// Increments per party per round.
const STEPS: u64 = 1_000;
/// How long a party waits at the barrier before it gives up (breaking it for all).
const PATIENCE: Duration = Duration::from_secs(120);

/// The descriptors a party claims: event, barrier, lock, counter.
type Handed = (i32, i32, i32, i32);

/// A party: its arrival index at the first barrier of each round.
fn party((event_fd, barrier_fd, lock_fd, counter_fd): Handed) -> Vec<u32> {
    let start = Event::from_inherited(event_fd).expect("the event was handed down");
    let barrier = Barrier::from_inherited(barrier_fd).expect("the barrier was handed down");
    let lock = Lock::from_inherited(lock_fd).expect("the lock was handed down");
    let counter = RawValue::<u64>::from_inherited(counter_fd).expect("the counter was handed down");
    assert!(start.wait(Some(PATIENCE)), "the start signal came");
    let mut arrivals = Vec::new();
    for round in 1..=ROUNDS {
        for _ in 0..STEPS {
            // A read and a write: without the lock, two parties could both read the same value.
            let _held = lock.lock();
            counter.set(counter.get() + 1);
        }
        arrivals.push(barrier.wait(Some(PATIENCE)).expect("every party arrives"));
        // Everyone has finished this round's increments and nobody has begun the next.
        assert_eq!(counter.get(), round * STEPS * u64::from(PARTIES));
        barrier.wait(Some(PATIENCE)).expect("every party has checked");
    }
    arrivals
}

/// The start method named by the first argument, or the default one.
fn start_method() -> StartMethod {
    match std::env::args().nth(1) {
        None => pifork::get_start_method(),
        Some(name) => name.parse().unwrap_or_else(|e| {
            eprintln!("barrier_lock: {e}");
            std::process::exit(2)
        }),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    pifork::register("party", party);
    pifork::main_guard();
    let method = start_method();
    let start = Event::new()?;
    let barrier = Barrier::new(PARTIES)?;
    let lock = Lock::new()?;
    let counter = RawValue::new(0u64)?;
    let fds: Handed =
        (start.as_raw_fd(), barrier.as_raw_fd(), lock.as_raw_fd(), counter.as_raw_fd());
    let mut parties: Vec<Process<Vec<u32>>> = (0..PARTIES)
        .map(|_| {
            Process::entry("party", &fds)
                .inherit_fds([fds.0, fds.1, fds.2, fds.3])
                .start_method(method)
        })
        .collect();
    for p in &mut parties {
        p.start()?;
    }
    // All started, none at work: they wait for the event.
    assert_eq!(counter.get(), 0);
    start.set();

    let mut arrivals = Vec::new();
    for p in &mut parties {
        arrivals.push(p.result()?);
    }
    let total = counter.get();
    println!("{PARTIES} parties, {ROUNDS} rounds of {STEPS}: counter {total} ({method})");
    for round in 0..ROUNDS as usize {
        let mut order: Vec<u32> = arrivals.iter().map(|a| a[round]).collect();
        println!("round {}: arrival indices {order:?}", round + 1);
        order.sort_unstable();
        assert_eq!(order, (0..PARTIES).collect::<Vec<_>>(), "one party per index");
    }
    assert_eq!(total, ROUNDS * STEPS * u64::from(PARTIES));
    assert!(!barrier.broken());
    Ok(())
}
