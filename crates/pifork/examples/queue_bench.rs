//! What a `Queue` costs on this machine, beside CPython's `multiprocessing.Queue` measured the
//! same way in the same run: one producer process puts N items, the parent gets them, and a
//! round is timed from the producer's start signal to the last `get`. Small items (an 8-byte
//! `u64`): microseconds per item; large ones (64 KiB, a `String`, whose codec is one copy):
//! MB/s. Each figure is the median of several rounds. Without `python3` on the PATH it says so
//! and prints pifork's figures alone.
//!
//! `cargo run --release -p pifork --example queue_bench -- [ROUNDS]`

use std::process::ExitCode;
use std::time::Instant;

use pifork::sync::Event;
use pifork::{Message, Process, Queue};

/// Small items per round.
const SMALL: u64 = 200_000;
/// Large items per round.
const LARGE: u64 = 5_000;
/// Bytes per large item.
const LARGE_BYTES: usize = 64 << 10;

const PY: &str = r#"
import multiprocessing as mp, statistics, sys, time

def produce(q, n, size, start):
    item = b"x" * size
    start.wait()
    for _ in range(n):
        q.put(item)

def one_round(n, size):
    q = mp.Queue()
    start = mp.Event()
    p = mp.Process(target=produce, args=(q, n, size, start))
    p.start()
    t0 = time.perf_counter()
    start.set()
    for _ in range(n):
        q.get()
    took = time.perf_counter() - t0
    p.join()
    return took

if __name__ == "__main__":
    small, large, size, rounds = (int(a) for a in sys.argv[1:5])
    mp.set_start_method("fork")
    us = [one_round(small, 8) / small * 1e6 for _ in range(rounds)]
    mbs = [large * size / one_round(large, size) / 1e6 for _ in range(rounds)]
    print(statistics.median(us), statistics.median(mbs))
"#;

/// Seconds for one round: a forked producer puts `n` copies of `item`, this process gets them.
fn one_round<T: Message + Clone + Send + 'static>(n: u64, item: T) -> f64 {
    let q = Queue::<T>::new().expect("queue");
    let start = Event::new().expect("event");
    let (tx, go) = (q.clone(), start.clone());
    let mut p = Process::new(move || {
        go.wait(None);
        for _ in 0..n {
            tx.put(&item).expect("put");
        }
    });
    p.start().expect("start the producer");
    let t = Instant::now();
    start.set();
    for _ in 0..n {
        q.get().expect("get");
    }
    let took = t.elapsed().as_secs_f64();
    p.join().expect("join the producer");
    took
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn python(rounds: u32) -> Option<(f64, f64)> {
    let args = [SMALL.to_string(), LARGE.to_string(), LARGE_BYTES.to_string(), rounds.to_string()];
    let out = std::process::Command::new("python3").arg("-c").arg(PY).args(args).output().ok()?;
    if !out.status.success() {
        eprintln!("python3 failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|w| w.parse::<f64>().ok());
    Some((it.next()??, it.next()??))
}

fn main() -> ExitCode {
    let rounds = match std::env::args().nth(1).map(|a| a.parse::<u32>()) {
        None => 5,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: queue_bench [ROUNDS] (a positive number)");
            return ExitCode::from(2);
        }
    };
    let small = median((0..rounds).map(|_| one_round(SMALL, 0u64) / SMALL as f64 * 1e6).collect());
    let big = "x".repeat(LARGE_BYTES);
    let large = median(
        (0..rounds)
            .map(|_| (LARGE as f64 * LARGE_BYTES as f64) / one_round(LARGE, big.clone()) / 1e6)
            .collect(),
    );
    println!("medians of {rounds} rounds, one producer process, one consumer process");
    match python(rounds) {
        Some((py_small, py_large)) => {
            println!(
                "8-byte items:  pifork {small:8.3} us/item   CPython {py_small:8.3} us/item   \
                 {:6.1}x faster",
                py_small / small
            );
            println!(
                "64 KiB items:  pifork {large:8.0} MB/s      CPython {py_large:8.0} MB/s      \
                 {:6.1}x faster",
                large / py_large
            );
        }
        None => {
            println!("python3 not found (or failed): pifork alone");
            println!("8-byte items:  pifork {small:8.3} us/item");
            println!("64 KiB items:  pifork {large:8.0} MB/s");
        }
    }
    ExitCode::SUCCESS
}
