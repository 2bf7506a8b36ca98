//! Pool benchmark: tiny tasks (x*x over 100,000 items) at chunk size 1 and auto, µs per task,
//! pifork's `Pool::map` against CPython's `Pool.map` (run side by side when python3 is here)
//! and against the same map on `std::thread::scope` threads (the floor); the `apply_async`
//! round trip; `imap_unordered` on tasks of random length; and what one worker's death costs a
//! map. Medians of a few runs.
//!
//! `cargo run --release -p pifork --example pool_bench [-- processes]`

use std::time::{Duration, Instant};

use pifork::pool::{Func, Pool};

const N: u64 = 100_000;
const RUNS: usize = 5;

fn sqr(x: u64) -> u64 {
    x * x
}

fn spin_us(us: u64) -> u64 {
    let end = Instant::now() + Duration::from_micros(us);
    let mut n = 0u64;
    while Instant::now() < end {
        n = n.wrapping_add(1);
    }
    us
}

/// Dies (SIGKILL) on the item 10,000 the first time only: a marker file says it happened.
fn dies_once(x: u64) -> u64 {
    if x == 10_000 {
        let marker = std::env::temp_dir()
            .join(format!("pifork-bench-died-{}", std::os::unix::process::parent_id()));
        if std::fs::create_dir(&marker).is_ok() {
            let _ =
                nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
        }
    }
    x * x
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time_us(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1e6
}

fn threads_map(workers: usize, items: &[u64]) -> Vec<u64> {
    let per = items.len().div_ceil(workers);
    let mut out = vec![0u64; items.len()];
    std::thread::scope(|s| {
        for (src, dst) in items.chunks(per).zip(out.chunks_mut(per)) {
            s.spawn(move || {
                for (a, b) in src.iter().zip(dst.iter_mut()) {
                    *b = std::hint::black_box(sqr(*a));
                }
            });
        }
    });
    out
}

const PY: &str = r#"
import multiprocessing as mp, statistics, sys, time
def sqr(x): return x * x
if __name__ == "__main__":
    n, procs = int(sys.argv[1]), int(sys.argv[2])
    with mp.get_context("fork").Pool(procs) as p:
        p.map(sqr, range(100))
        for label, cs in (("chunksize 1", 1), ("auto", None)):
            ts = []
            for _ in range(3):
                t = time.perf_counter(); p.map(sqr, range(n), chunksize=cs); ts.append(time.perf_counter() - t)
            print(f"{label} {statistics.median(ts) * 1e6 / n:.3f}")
        ts = []
        for _ in range(3):
            t = time.perf_counter()
            for i in range(2000): p.apply_async(sqr, (i,)).get()
            ts.append((time.perf_counter() - t) / 2000)
        print(f"apply {statistics.median(ts) * 1e6:.3f}")
"#;

fn cpython(procs: usize) -> Option<Vec<(String, f64)>> {
    let out = std::process::Command::new("python3")
        .args(["-c", PY, &N.to_string(), &procs.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect(),
    )
}

fn main() {
    pifork::main_guard();
    let procs: usize =
        std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or_else(pifork::cpu_count);
    let items: Vec<u64> = (0..N).collect();
    let want: Vec<u64> = items.iter().map(|&x| sqr(x)).collect();
    let pool = Pool::new(procs).expect("pool");
    println!("pool_bench: {N} tasks of x*x, {procs} worker processes, medians of {RUNS} runs");

    let per = |us: f64| us / N as f64;
    let c1 = median(
        (0..RUNS)
            .map(|_| {
                time_us(|| {
                    assert_eq!(pool.map_chunked(sqr, items.iter().copied(), Some(1)).unwrap(), want)
                })
            })
            .collect(),
    );
    let auto = median(
        (0..RUNS)
            .map(|_| time_us(|| assert_eq!(pool.map(sqr, items.iter().copied()).unwrap(), want)))
            .collect(),
    );
    let thr = median(
        (0..RUNS).map(|_| time_us(|| assert_eq!(threads_map(procs, &items), want))).collect(),
    );
    let apply = median(
        (0..RUNS)
            .map(|_| {
                time_us(|| {
                    for i in 0..2000u64 {
                        assert_eq!(pool.apply_async(sqr, i).unwrap().get(None).unwrap(), i * i);
                    }
                }) / 2000.0
            })
            .collect(),
    );
    let py = cpython(procs);
    let pyv = |k: &str| py.as_ref().and_then(|v| v.iter().find(|(l, _)| l == k).map(|(_, x)| *x));
    let show = |label: &str, ours: f64, theirs: Option<f64>| match theirs {
        Some(t) => println!(
            "  {label:<28} pifork {ours:>9.4} µs   CPython {t:>9.4} µs   ({:.1}x)",
            t / ours
        ),
        None => println!("  {label:<28} pifork {ours:>9.4} µs   CPython (python3 not found)"),
    };
    show("map, chunksize 1, per task", per(c1), pyv("chunksize 1"));
    show("map, auto chunksize, per task", per(auto), pyv("auto"));
    println!(
        "  {:<28} threads {:>8.4} µs   (pifork auto / threads: {:.1}x)",
        "same map on scoped threads",
        per(thr),
        auto / thr
    );
    show("apply_async round trip", apply, pyv("apply"));

    // imap_unordered over tasks of random length (0-200 µs), against the ideal (total / procs).
    let mut seed = 0x2545F4914F6CDD1Du64;
    let lens: Vec<u64> = (0..4000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % 200
        })
        .collect();
    let ideal = lens.iter().sum::<u64>() as f64 / procs as f64;
    let unordered = median(
        (0..RUNS)
            .map(|_| {
                time_us(|| {
                    assert_eq!(
                        pool.imap_unordered(spin_us, lens.clone()).unwrap().count(),
                        lens.len()
                    )
                })
            })
            .collect(),
    );
    println!(
        "  imap_unordered, 4000 random 0-200 µs tasks: {:.0} µs (ideal {ideal:.0} µs, {:.2}x)",
        unordered,
        unordered / ideal
    );

    // One worker's death in a map at chunksize 1: the cost against the same map without it,
    // and against a pool's start and first task, taking turns; then the same on a pool that
    // keeps a standby worker.
    let start = || {
        time_us(|| {
            let _ = Pool::new(1).unwrap().apply(sqr, 1).unwrap();
        })
    };
    let standby = Pool::builder().processes(procs).standby(true).build().expect("pool");
    // 20,000 items; run with and without a death in turn, 11 times each.
    let small: Vec<u64> = (0..20_000).collect();
    let small_want: Vec<u64> = small.iter().map(|&x| sqr(x)).collect();
    let marker = std::env::temp_dir().join(format!("pifork-bench-died-{}", std::process::id()));
    let run = |pool: &Pool, dies: bool| {
        if dies {
            let _ = std::fs::remove_dir(&marker);
        } else {
            let _ = std::fs::create_dir(&marker); // present: nobody dies
        }
        time_us(|| {
            let r = pool.map_async(Func::new(dies_once), small.clone(), Some(1)).unwrap();
            assert_eq!(r.get(None).unwrap(), small_want);
        })
    };
    let mut t: [Vec<f64>; 5] = Default::default();
    for _ in 0..11 {
        t[0].push(run(&pool, false));
        t[1].push(run(&pool, true));
        t[2].push(run(&standby, false));
        t[3].push(run(&standby, true));
        t[4].push(start());
    }
    let _ = std::fs::remove_dir(&marker);
    let [clean, died, clean_s, died_s, start_cost] = t.map(median);
    println!(
        "  one worker SIGKILLed mid-map: +{:.0} µs (one pool start + first task: {:.0} µs; one task: {:.3} µs)",
        died - clean,
        start_cost,
        per(c1)
    );
    println!(
        "  the same with a standby worker: +{:.0} µs ({:.2}x one start)",
        died_s - clean_s,
        (died_s - clean_s) / start_cost
    );
}
