//! Pi by the Leibniz series over a process pool: the terms are split into chunks, each chunk
//! summed by a plain `fn` in a worker, the partial sums added up in the parent. The same
//! chunks go through `Pool::map`, `Pool::map_async` and `Pool::starmap` (with a closure that
//! captures nothing, unpacking its tuple), and all three must agree to the bit.
//!
//! `cargo run -p pifork --example pi_pool [-- fork|spawn|forkserver]`

use pifork::StartMethod;
use pifork::pool::{Func, Pool, PoolError};

/// Terms of the series: the error of the partial sum is about 1 / TERMS.
const TERMS: u64 = 2_000_000;
/// Chunks the terms are split into.
const CHUNKS: u64 = 8;
/// Worker processes.
const WORKERS: usize = 2;

/// The Leibniz terms `start..end`: the sum of (-1)^k / (2k + 1).
fn partial_sum((start, end): (u64, u64)) -> f64 {
    (start..end).map(|k| if k % 2 == 0 { 1.0 } else { -1.0 } / (2 * k + 1) as f64).sum()
}

/// The terms `start..end` as one function of two arguments, for `starmap`.
fn leibniz_between(start: u64, end: u64) -> f64 {
    partial_sum((start, end))
}

/// `0..TERMS` in `CHUNKS` contiguous ranges.
fn chunks() -> Vec<(u64, u64)> {
    (0..CHUNKS).map(|i| (i * TERMS / CHUNKS, (i + 1) * TERMS / CHUNKS)).collect()
}

/// The start method named by the first argument, or the default one.
fn start_method() -> StartMethod {
    match std::env::args().nth(1) {
        None => pifork::get_start_method(),
        Some(name) => name.parse().unwrap_or_else(|e| {
            eprintln!("pi_pool: {e}");
            std::process::exit(2)
        }),
    }
}

fn report(how: &str, partials: &[f64]) -> f64 {
    let pi = 4.0 * partials.iter().sum::<f64>();
    println!("{how:<9} pi ~ {pi:.10} (error {:.1e})", (pi - std::f64::consts::PI).abs());
    assert!((pi - std::f64::consts::PI).abs() < 1e-5, "{how}: {pi} is not pi");
    pi
}

fn main() -> Result<(), PoolError> {
    pifork::main_guard();
    let method = start_method();
    let pool = Pool::builder().processes(WORKERS).start_method(method).build()?;
    println!("{TERMS} terms in {CHUNKS} chunks on {WORKERS} workers ({method})");

    // In order, one partial sum per chunk; chunk size 1 hands each worker one chunk at a time.
    let by_map = report("map", &pool.map_chunked(partial_sum, chunks(), Some(1))?);

    // Started at once; the parent could do other work before asking for the results.
    let pending = pool.map_async(Func::new(partial_sum), chunks(), Some(1))?;
    let by_async = report("map_async", &pending.get(None)?);

    // The tuple is the function's arguments.
    let by_star = report("starmap", &pool.starmap(|(a, b)| leibniz_between(a, b), chunks())?);

    // The same chunks summed in the same order: the same bits, however they were scheduled.
    assert_eq!(by_map.to_bits(), by_async.to_bits());
    assert_eq!(by_map.to_bits(), by_star.to_bits());
    let here: Vec<f64> = chunks().into_iter().map(partial_sum).collect();
    assert_eq!(by_map.to_bits(), (4.0 * here.iter().sum::<f64>()).to_bits());

    pool.close()?;
    pool.join()?;
    Ok(())
}
