//! Pi by the Leibniz series over `concurrent.futures`-style futures: one `Executor::submit`
//! per chunk, the partial sums taken with `as_completed` in the order the chunks finish.
//!
//! `cargo run -p pifork --example pi_futures [-- fork|spawn|forkserver]`

use pifork::StartMethod;
use pifork::pool::{Executor, PoolError, as_completed};

/// Terms of the series: the error of the partial sum is about 1 / TERMS.
const TERMS: u64 = 2_000_000;
/// Chunks the terms are split into, one future each.
const CHUNKS: u64 = 8;

/// The Leibniz terms `start..end`: the sum of (-1)^k / (2k + 1).
fn partial_sum((start, end): (u64, u64)) -> f64 {
    (start..end).map(|k| if k % 2 == 0 { 1.0 } else { -1.0 } / (2 * k + 1) as f64).sum()
}

/// The start method named by the first argument, or the default one.
fn start_method() -> StartMethod {
    match std::env::args().nth(1) {
        None => pifork::get_start_method(),
        Some(name) => name.parse().unwrap_or_else(|e| {
            eprintln!("pi_futures: {e}");
            std::process::exit(2)
        }),
    }
}

fn main() -> Result<(), PoolError> {
    pifork::main_guard();
    let method = start_method();
    let mut ex = Executor::builder().max_workers(2).pool(|p| p.start_method(method)).build()?;
    let ranges: Vec<(u64, u64)> =
        (0..CHUNKS).map(|i| (i * TERMS / CHUNKS, (i + 1) * TERMS / CHUNKS)).collect();
    let futures =
        ranges.iter().map(|&r| ex.submit(partial_sum, r)).collect::<Result<Vec<_>, _>>()?;

    let mut seen = vec![false; futures.len()];
    let mut total = 0.0;
    for done in as_completed(&futures, None) {
        let i = done?;
        assert!(!seen[i], "chunk {i} reported twice");
        seen[i] = true;
        let part = futures[i].result(None)?;
        println!("chunk {i} {:?}: {part:+.12}", ranges[i]);
        total += part;
    }
    assert!(seen.iter().all(|&s| s), "every chunk completes once");
    assert!(futures.iter().all(|f| f.done()));

    let pi = 4.0 * total;
    println!("pi ~ {pi:.10} (error {:.1e}, {method})", (pi - std::f64::consts::PI).abs());
    assert!((pi - std::f64::consts::PI).abs() < 1e-5, "{pi} is not pi");
    ex.shutdown(true, false)?;
    Ok(())
}
