//! Pi by the Leibniz series with worker processes and a `Queue`: each worker sums its chunk of
//! the terms and puts `(chunk, partial sum)` on the queue; the parent gets one item per chunk
//! and adds them up. The workers run a registered entry and claim the queue from an inherited
//! descriptor, so every start method works.
//!
//! `cargo run -p pifork --example pi_queue [-- fork|spawn|forkserver]`

use std::os::fd::AsRawFd;
use std::time::Duration;

use pifork::{Process, Queue, StartMethod};

/// Terms of the series: the error of the partial sum is about 1 / TERMS.
const TERMS: u64 = 2_000_000;
/// Chunks the terms are split into, one worker process each.
const CHUNKS: u32 = 4;

/// The Leibniz terms `start..end`: the sum of (-1)^k / (2k + 1).
fn partial_sum(start: u64, end: u64) -> f64 {
    (start..end).map(|k| if k % 2 == 0 { 1.0 } else { -1.0 } / (2 * k + 1) as f64).sum()
}

/// Chunk `i` of `0..TERMS`.
fn chunk(i: u32) -> (u64, u64) {
    let n = u64::from(CHUNKS);
    (u64::from(i) * TERMS / n, (u64::from(i) + 1) * TERMS / n)
}

/// A worker: sums chunk `i` and puts it on the queue handed down as `fd`.
fn worker((fd, i): (i32, u32)) {
    let q = Queue::<(u32, f64)>::from_inherited(fd).expect("the queue was handed down");
    let (start, end) = chunk(i);
    q.put(&(i, partial_sum(start, end))).expect("room on the queue");
}

/// The start method named by the first argument, or the default one.
fn start_method() -> StartMethod {
    match std::env::args().nth(1) {
        None => pifork::get_start_method(),
        Some(name) => name.parse().unwrap_or_else(|e| {
            eprintln!("pi_queue: {e}");
            std::process::exit(2)
        }),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    pifork::register("pi_queue_worker", worker);
    pifork::main_guard();
    let method = start_method();
    let q = Queue::<(u32, f64)>::new()?;
    let fd = q.as_raw_fd();
    let mut workers: Vec<Process<()>> = (0..CHUNKS)
        .map(|i| Process::entry("pi_queue_worker", &(fd, i)).inherit_fds([fd]).start_method(method))
        .collect();
    for w in &mut workers {
        w.start()?;
    }

    // One item per worker, in whatever order they finish.
    let mut partials = vec![None; CHUNKS as usize];
    for _ in 0..CHUNKS {
        let (i, part) = q.get_timeout(Duration::from_secs(60))?;
        println!("chunk {i} {:?}: {part:+.12}", chunk(i));
        assert!(partials[i as usize].replace(part).is_none(), "chunk {i} came twice");
    }
    for w in &mut workers {
        w.join()?;
        assert_eq!(w.exitcode()?.map(|c| c.code()), Some(0));
    }
    assert!(q.empty(), "nothing more than one item per worker");

    // Summed in chunk order, the same bits as the same sums computed here.
    let partials: Vec<f64> = partials.into_iter().map(|p| p.expect("every chunk")).collect();
    let here: f64 = (0..CHUNKS).map(|i| partial_sum(chunk(i).0, chunk(i).1)).sum();
    let pi = 4.0 * partials.iter().sum::<f64>();
    assert_eq!(pi.to_bits(), (4.0 * here).to_bits());
    println!("pi ~ {pi:.10} (error {:.1e}, {method})", (pi - std::f64::consts::PI).abs());
    assert!((pi - std::f64::consts::PI).abs() < 1e-5, "{pi} is not pi");
    Ok(())
}
