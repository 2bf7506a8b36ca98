//! What the shared locks cost on this machine: an uncontended `Lock` (and `RLock`) acquire +
//! release, in ns, and a shared `Value<u64>` incremented under its lock by two processes at
//! once, in ns per increment, with the exact total checked; a `Condition` round trip between
//! two processes (each waits for its turn and notifies the other), and a `Barrier` pass of two
//! processes, in µs. `--python` runs the same measurements with CPython's `multiprocessing`
//! (`python3` on the PATH) and prints the ratios.
//!
//! `cargo run --release -p pifork --example sync_bench -- [--python]`

use std::process::ExitCode;
use std::time::Instant;

use pifork::sync::{Barrier, Condition, Lock, RLock};
use pifork::{Process, Value};

/// Uncontended acquire + release pairs timed.
const PAIRS: u32 = 5_000_000;
/// Increments per process in the two-process count.
const INCREMENTS: u64 = 1_000_000;
/// Condition round trips, and barrier passes, between two processes.
const ROUNDS: u64 = 20_000;

const PY_LOCK: &str = "
import multiprocessing as mp, time
l = mp.Lock(); n = 1_000_000
t = time.perf_counter()
for _ in range(n):
    l.acquire(); l.release()
print((time.perf_counter() - t) / n * 1e9)
";

const PY_VALUE: &str = "
import multiprocessing as mp, time
def work(v, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1
if __name__ == '__main__':
    mp.set_start_method('fork')
    n = 200_000
    v = mp.Value('q', 0)
    p = mp.Process(target=work, args=(v, n))
    t = time.perf_counter()
    p.start(); work(v, n); p.join()
    dt = time.perf_counter() - t
    assert v.value == 2 * n, v.value
    print(dt / (2 * n) * 1e9)
";

const PY_CONDITION: &str = "
import multiprocessing as mp, time
def pong(c, turn, n):
    with c:
        for _ in range(n):
            c.wait_for(lambda: turn.value == 1)
            turn.value = 0
            c.notify()
if __name__ == '__main__':
    mp.set_start_method('fork')
    n = 5_000
    c = mp.Condition(); turn = mp.RawValue('i', 0)
    p = mp.Process(target=pong, args=(c, turn, n)); p.start()
    t = time.perf_counter()
    with c:
        for _ in range(n):
            turn.value = 1
            c.notify()
            c.wait_for(lambda: turn.value == 0)
    dt = time.perf_counter() - t
    p.join()
    print(dt / n * 1e9)
";

const PY_BARRIER: &str = "
import multiprocessing as mp, time
def work(b, n):
    for _ in range(n):
        b.wait()
if __name__ == '__main__':
    mp.set_start_method('fork')
    n = 5_000
    b = mp.Barrier(2)
    p = mp.Process(target=work, args=(b, n)); p.start()
    b.wait()
    t = time.perf_counter()
    work(b, n - 1)
    dt = time.perf_counter() - t
    p.join()
    print(dt / (n - 1) * 1e9)
";

fn main() -> ExitCode {
    pifork::main_guard();
    let mut python = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--python" => python = true,
            other => {
                eprintln!("sync_bench: unknown argument {other:?} (usage: sync_bench [--python])");
                return ExitCode::from(2);
            }
        }
    }
    match run(python) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sync_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(python: bool) -> Result<(), Box<dyn std::error::Error>> {
    let lock = Lock::new()?;
    let ns_lock = per_op(PAIRS, || {
        let _ = lock.acquire();
        lock.release().expect("held");
    });
    let rlock = RLock::new()?;
    let ns_rlock = per_op(PAIRS, || {
        let _ = rlock.acquire();
        rlock.release().expect("held");
    });
    println!("Lock acquire+release, uncontended:  {ns_lock:8.1} ns");
    println!("RLock acquire+release, uncontended: {ns_rlock:8.1} ns");

    let v = Value::new(0u64)?;
    let count = |v: &Value<u64>| {
        for _ in 0..INCREMENTS {
            let _held = v.get_lock().lock();
            v.set(v.get() + 1);
        }
    };
    let start = Instant::now();
    let theirs = v.clone();
    let mut child = Process::new(move || count(&theirs));
    child.start()?;
    count(&v);
    child.join()?;
    let ns_value = start.elapsed().as_nanos() as f64 / (2 * INCREMENTS) as f64;
    let total = v.get();
    if total != 2 * INCREMENTS {
        return Err(format!("the shared count is {total}, not {}", 2 * INCREMENTS).into());
    }
    println!(
        "Value += 1 under its lock, 2 processes: {ns_value:8.1} ns per increment (total {total}, exact)"
    );

    let ns_condition = condition_round_trip()?;
    println!("Condition round trip, 2 processes:  {:8.1} µs", ns_condition / 1e3);
    let ns_barrier = barrier_pass()?;
    println!("Barrier pass, 2 processes:          {:8.1} µs", ns_barrier / 1e3);

    if python {
        let py_lock = python_ns(PY_LOCK)?;
        let py_value = python_ns(PY_VALUE)?;
        println!(
            "CPython mp.Lock acquire+release:     {py_lock:8.1} ns ({:.1}x)",
            py_lock / ns_lock
        );
        println!(
            "CPython Value += 1, 2 processes:     {py_value:8.1} ns per increment ({:.1}x)",
            py_value / ns_value
        );
        let py_condition = python_ns(PY_CONDITION)?;
        let py_barrier = python_ns(PY_BARRIER)?;
        println!(
            "CPython Condition round trip:        {:8.1} µs ({:.1}x)",
            py_condition / 1e3,
            py_condition / ns_condition
        );
        println!(
            "CPython Barrier pass:                {:8.1} µs ({:.1}x)",
            py_barrier / 1e3,
            py_barrier / ns_barrier
        );
    }
    Ok(())
}

/// Nanoseconds per round trip: this process gives the turn to a child (under the condition,
/// notifying it) and waits for it back.
fn condition_round_trip() -> Result<f64, Box<dyn std::error::Error>> {
    let cond = Condition::new()?;
    let turn = pifork::RawValue::new(0u32)?;
    let (c, t) = (cond.clone(), turn.clone());
    let mut child = Process::new(move || {
        let _held = c.lock();
        for _ in 0..ROUNDS {
            c.wait_for(|| t.get() == 1, None).expect("held");
            t.set(0);
            c.notify(1).expect("held");
        }
    });
    child.start()?;
    let start = Instant::now();
    {
        let _held = cond.lock();
        for _ in 0..ROUNDS {
            turn.set(1);
            cond.notify(1)?;
            cond.wait_for(|| turn.get() == 0, None)?;
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / ROUNDS as f64;
    child.join()?;
    Ok(ns)
}

/// Nanoseconds per pass of a two-party barrier, this process and a child.
fn barrier_pass() -> Result<f64, Box<dyn std::error::Error>> {
    let barrier = Barrier::new(2)?;
    let theirs = barrier.clone();
    let mut child = Process::new(move || {
        for _ in 0..ROUNDS {
            theirs.wait(None).expect("not broken");
        }
    });
    child.start()?;
    barrier.wait(None)?;
    let start = Instant::now();
    for _ in 1..ROUNDS {
        barrier.wait(None)?;
    }
    let ns = start.elapsed().as_nanos() as f64 / (ROUNDS - 1) as f64;
    child.join()?;
    Ok(ns)
}

/// Nanoseconds per call of `op`, over `n` calls.
fn per_op(n: u32, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        op();
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

/// Runs `code` under `python3 -c` and reads the number it prints.
fn python_ns(code: &str) -> Result<f64, Box<dyn std::error::Error>> {
    let out = std::process::Command::new("python3").arg("-c").arg(code).output()?;
    if !out.status.success() {
        return Err(format!("python3 failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}
