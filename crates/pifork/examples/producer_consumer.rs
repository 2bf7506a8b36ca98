//! Producers and consumers on a `JoinableQueue`: two producer processes put numbered tasks,
//! two consumer processes square them, put each answer on a result `Queue` and call
//! `task_done`; the parent's `join` returns once every task put so far is done, then one stop
//! marker per consumer ends them. Every task must be answered exactly once. The processes run
//! registered entries on inherited descriptors, so every start method works.
//!
//! `cargo run -p pifork --example producer_consumer [-- fork|spawn|forkserver]`

use std::os::fd::AsRawFd;
use std::time::Duration;

use pifork::{JoinableQueue, Process, Queue, StartMethod};

/// Producer processes.
const PRODUCERS: u64 = 2;
/// Consumer processes.
const CONSUMERS: usize = 2;
/// Tasks each producer puts.
const TASKS_EACH: u64 = 500;

/// A task: `Some(n)` to square, `None` to stop.
type Task = Option<u64>;

/// A producer: puts the tasks `first..first + TASKS_EACH`.
fn produce((tasks_fd, first): (i32, u64)) {
    let tasks = JoinableQueue::<Task>::from_inherited(tasks_fd).expect("tasks handed down");
    for n in first..first + TASKS_EACH {
        tasks.put(&Some(n)).expect("room for a task");
    }
}

/// A consumer: answers tasks until it takes a stop marker; how many it answered.
fn consume((tasks_fd, results_fd): (i32, i32)) -> u64 {
    let tasks = JoinableQueue::<Task>::from_inherited(tasks_fd).expect("tasks handed down");
    let results = Queue::<(u64, u64)>::from_inherited(results_fd).expect("results handed down");
    let mut answered = 0;
    loop {
        let task = tasks.get().expect("a task");
        if let Some(n) = task {
            // The answer is queued before the task is marked done: once `join` returns in the
            // parent, every answer is on the result queue.
            results.put(&(n, n * n)).expect("room for a result");
            answered += 1;
        }
        tasks.task_done().expect("one task_done per task taken");
        if task.is_none() {
            return answered;
        }
    }
}

/// The start method named by the first argument, or the default one.
fn start_method() -> StartMethod {
    match std::env::args().nth(1) {
        None => pifork::get_start_method(),
        Some(name) => name.parse().unwrap_or_else(|e| {
            eprintln!("producer_consumer: {e}");
            std::process::exit(2)
        }),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    pifork::register("produce", produce);
    pifork::register("consume", consume);
    pifork::main_guard();
    let method = start_method();
    let tasks = JoinableQueue::<Task>::new()?;
    let results = Queue::<(u64, u64)>::new()?;
    let (tfd, rfd) = (tasks.as_raw_fd(), results.as_raw_fd());

    let mut consumers: Vec<Process<u64>> = (0..CONSUMERS)
        .map(|_| {
            Process::entry("consume", &(tfd, rfd)).inherit_fds([tfd, rfd]).start_method(method)
        })
        .collect();
    let mut producers: Vec<Process<()>> = (0..PRODUCERS)
        .map(|p| {
            Process::entry("produce", &(tfd, p * TASKS_EACH))
                .inherit_fds([tfd])
                .start_method(method)
        })
        .collect();
    for c in &mut consumers {
        c.start()?;
    }
    for p in &mut producers {
        p.start()?;
    }
    // Once the producers are done every task is queued; `join` then waits for the consumers to
    // finish them all.
    for p in &mut producers {
        p.join()?;
        assert_eq!(p.exitcode()?.map(|c| c.code()), Some(0));
    }
    tasks.join();
    assert_eq!(tasks.unfinished_tasks(), 0);

    let total = PRODUCERS * TASKS_EACH;
    let mut answered = vec![false; total as usize];
    for _ in 0..total {
        let (n, square) = results.get_timeout(Duration::from_secs(60))?;
        assert_eq!(square, n * n);
        assert!(!std::mem::replace(&mut answered[n as usize], true), "task {n} answered twice");
    }
    assert!(results.empty(), "one answer per task");

    // Stop the consumers: one marker each; they take it, mark it done and return.
    for _ in 0..CONSUMERS {
        tasks.put(&None)?;
    }
    tasks.join();
    let mut counts = Vec::new();
    for c in &mut consumers {
        counts.push(c.result()?);
    }
    println!("{total} tasks from {PRODUCERS} producers, answered {counts:?} ({method})");
    assert_eq!(counts.iter().sum::<u64>(), total);
    Ok(())
}
