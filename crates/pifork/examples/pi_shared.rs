//! Pi by the Leibniz series in shared memory: each worker process writes its chunk's partial
//! sum into its own slot of a shared `Array<f64>` (no lock needed: no two workers share a
//! slot) and also adds it to a shared `Value<f64>` total under the value's lock (a
//! read-modify-write that would lose updates without it). The workers run a registered entry
//! and claim both objects from inherited descriptors, so every start method works.
//!
//! `cargo run -p pifork --example pi_shared [-- fork|spawn|forkserver]`

use std::os::fd::AsRawFd;

use pifork::{Array, Process, StartMethod, Value};

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

/// A worker: sums chunk `i` into slot `i` of the array and into the total.
fn worker((slots_fd, total_fd, i): (i32, i32, u32)) {
    let slots = Array::<f64>::from_inherited(slots_fd).expect("the array was handed down");
    let total = Value::<f64>::from_inherited(total_fd).expect("the value was handed down");
    let (start, end) = chunk(i);
    let part = partial_sum(start, end);
    slots.set(i as usize, part).expect("a slot per chunk");
    let _held = total.get_lock().lock();
    total.set(total.get() + part);
}

/// The start method named by the first argument, or the default one.
fn start_method() -> StartMethod {
    match std::env::args().nth(1) {
        None => pifork::get_start_method(),
        Some(name) => name.parse().unwrap_or_else(|e| {
            eprintln!("pi_shared: {e}");
            std::process::exit(2)
        }),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    pifork::register("pi_shared_worker", worker);
    pifork::main_guard();
    let method = start_method();
    let slots = Array::<f64>::zeroed(CHUNKS as usize)?;
    let total = Value::new(0.0f64)?;
    let fds = [slots.as_raw_fd(), total.as_raw_fd()];
    let mut workers: Vec<Process<()>> = (0..CHUNKS)
        .map(|i| {
            Process::entry("pi_shared_worker", &(fds[0], fds[1], i))
                .inherit_fds(fds)
                .start_method(method)
        })
        .collect();
    for w in &mut workers {
        w.start()?;
    }
    for w in &mut workers {
        w.join()?;
        assert_eq!(w.exitcode()?.map(|c| c.code()), Some(0));
    }

    // Every slot holds exactly its chunk's sum.
    let partials = slots.to_vec();
    for (i, part) in (0..CHUNKS).zip(&partials) {
        println!("slot {i} {:?}: {part:+.12}", chunk(i));
        assert_eq!(part.to_bits(), partial_sum(chunk(i).0, chunk(i).1).to_bits());
    }
    let pi_slots = 4.0 * partials.iter().sum::<f64>();
    // The total was added up in the order the workers took the lock: the same up to rounding.
    let pi_total = 4.0 * total.get();
    println!("array: pi ~ {pi_slots:.10} (error {:.1e})", (pi_slots - std::f64::consts::PI).abs());
    println!("value: pi ~ {pi_total:.10} ({method})");
    assert!((pi_slots - pi_total).abs() < 1e-12, "every worker added its part once");
    assert!((pi_slots - std::f64::consts::PI).abs() < 1e-5, "{pi_slots} is not pi");
    Ok(())
}
