//! Benchmarks: the kernel against the plain loop, the previous (division) kernel, the core's
//! division limit and the floating-point floor of the kernel's own operation mix; scaling over
//! worker counts against the machine's measured capacity; and the start+join round trip.
//! Everything is measured in the same run and reported as medians, with the repeats' spread.
//! A measurement whose process failed is an error, never a number; a `Cancel` (Ctrl-C) is
//! checked between measurements and wins over a failure it caused.

use std::hint::black_box;
use std::time::{Duration, Instant};

use super::engine::{self, Cancel, PiJob};
use super::error::{Error, Result};
use super::kernel::{self, Path};
use super::pi;
use super::plan::{chunk_plan, combine};
use pifork::{NOOP_ENTRY, Process, StartMethod, Supervisor, available_cpus};

/// Ends the benchmark if `cancel` says so (a signal arrived).
fn check(cancel: Option<Cancel<'_>>) -> Result<()> {
    match cancel.and_then(|(_, on_cancel)| on_cancel()) {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// The error a failed measurement ends the benchmark with: the interruption if a signal
/// arrived meanwhile (Ctrl-C also reaches the children), else `err`.
fn failed(cancel: Option<Cancel<'_>>, err: impl Into<Error>) -> Error {
    check(cancel).err().unwrap_or_else(|| err.into())
}

/// The median of `samples` (sorted in place); zero for none.
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    match samples.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => samples[n / 2],
        n => (samples[n / 2 - 1] + samples[n / 2]) / 2,
    }
}

/// Runs `f` `repeat` times and returns the median duration.
pub fn time_median(repeat: usize, f: impl FnMut()) -> Duration {
    Timing::measure(repeat, f).median
}

/// The median of repeated runs and their spread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// The median duration.
    pub median: Duration,
    /// (slowest - fastest) / median: how noisy the repeats were.
    pub spread: f64,
}

impl Timing {
    /// Runs `f` `repeat` times.
    pub fn measure(repeat: usize, mut f: impl FnMut()) -> Timing {
        let mut samples: Vec<Duration> = (0..repeat.max(1))
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect();
        Timing::of(&mut samples)
    }

    /// The timing of `samples` (sorted in place).
    pub fn of(samples: &mut [Duration]) -> Timing {
        let median = median(samples);
        let (first, last) = (samples.first().copied(), samples.last().copied());
        let spread = match (first, last) {
            (Some(a), Some(b)) if !median.is_zero() => (b - a).as_secs_f64() / median.as_secs_f64(),
            _ => 0.0,
        };
        Timing { median, spread }
    }
}

/// Repeats whose spread is above this make a figure noisy.
pub const NOISY_SPREAD: f64 = 0.10;

/// Lanes of the division-limit loop: the same as the kernel's.
const LANES: usize = 8;

/// `count` independent f64 divisions in the kernel's shape (lanes, no dependency between
/// divisions): the division throughput the core offers to this instruction set.
pub fn division_loop(count: u64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let mut x = [0.0f64; LANES];
    for (i, xi) in x.iter_mut().enumerate() {
        *xi = 3.0 + i as f64;
    }
    for _ in 0..count / LANES as u64 {
        for i in 0..LANES {
            acc[i] += 1.0 / x[i];
            x[i] += LANES as f64;
        }
    }
    acc.iter().sum()
}

/// Single-core kernel figures, in ns.
#[derive(Debug, Clone)]
pub struct KernelFigures {
    /// Terms per measurement of the slow loops (plain, division kernel, division limit).
    pub terms: u64,
    /// Terms per measurement of the fast ones (the kernel, its floor, the other vector paths):
    /// [`FAST_FACTOR`] times as many, so that they run as long.
    pub fast_terms: u64,
    /// The kernel path measured.
    pub path: Path,
    /// pifork's kernel, ns per term.
    pub kernel_ns_per_term: f64,
    /// The plain one-accumulator loop, ns per term.
    pub plain_ns_per_term: f64,
    /// The previous kernel (one division per two terms), ns per term.
    pub division_kernel_ns_per_term: f64,
    /// Independent divisions, ns per division.
    pub division_ns: f64,
    /// The kernel's operation mix on independent accumulators, ns per term: the floor of the
    /// core's floating-point pipes for this kernel on this path.
    pub floor_ns_per_term: f64,
    /// The kernel on every other path this CPU runs, ns per term.
    pub other_paths: Vec<(Path, f64)>,
    /// The largest spread of the repeats of any figure above, and that figure's name.
    pub spread: (f64, &'static str),
}

impl KernelFigures {
    /// Kernel speed over the plain loop's.
    pub fn speedup(&self) -> f64 {
        self.plain_ns_per_term / self.kernel_ns_per_term
    }

    /// Kernel speed over the previous (division) kernel's.
    pub fn over_division_kernel(&self) -> f64 {
        self.division_kernel_ns_per_term / self.kernel_ns_per_term
    }

    /// The division kernel does one division per two terms: the fraction of the division
    /// limit it reaches.
    pub fn of_division_limit(&self) -> f64 {
        self.division_ns / (2.0 * self.division_kernel_ns_per_term)
    }

    /// The fraction of the floating-point floor of its own operation mix the kernel reaches.
    pub fn of_floor(&self) -> f64 {
        self.floor_ns_per_term / self.kernel_ns_per_term
    }

    /// Why these figures may not be trusted: repeats that spread by more than
    /// [`NOISY_SPREAD`], or a kernel faster than a limit it cannot beat.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let (spread, what) = self.spread;
        if spread > NOISY_SPREAD {
            out.push(format!(
                "noisy run: the {what} repeats spread by {:.0}% (above {:.0}%); rerun on an idle machine",
                100.0 * spread,
                100.0 * NOISY_SPREAD
            ));
        }
        for (name, share) in
            [("division limit", self.of_division_limit()), ("FP floor", self.of_floor())]
        {
            if share > 1.0 {
                out.push(format!(
                    "noisy run: {:.1}% of the {name}, above the 100% a core can deliver",
                    100.0 * share
                ));
            }
        }
        out
    }
}

/// Why a scaling table may not be trusted: a row above 100% of the capacity measured in the
/// same run.
pub fn scaling_warnings(rows: &[ScalingRow]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.of_capacity() > 1.0)
        .map(|r| {
            format!(
                "noisy run: {} workers at {:.1}% of capacity, above the 100% the machine can \
                 deliver",
                r.workers,
                100.0 * r.of_capacity()
            )
        })
        .collect()
}

/// Lanes of the operation-mix floor loop per iteration: one group's operations on each lane
/// of one vector of `path`.
fn floor_terms_per_iteration(path: Path) -> u64 {
    kernel::GROUP_TERMS * path.width() as u64
}

/// How many more terms the fast figures take than the slow ones.
pub const FAST_FACTOR: u64 = 10;

/// Measures [`KernelFigures`] on the calling thread, for the kernel path in use. Each figure is
/// run once untimed first (page faults, clock ramp-up), then `repeat` times.
pub fn kernel_figures(terms: u64, repeat: usize) -> KernelFigures {
    let path = kernel::selected().unwrap_or_else(|_| kernel::best());
    let fast = terms.saturating_mul(FAST_FACTOR).min(pi::MAX_TERMS);
    let mut spread = (0.0, "kernel");
    let mut figure = |what: &'static str, terms: u64, f: &mut dyn FnMut()| -> f64 {
        f();
        let t = Timing::measure(repeat, f);
        if t.spread > spread.0 {
            spread = (t.spread, what);
        }
        t.median.as_secs_f64() * 1e9 / terms as f64
    };
    let kernel = figure("kernel", fast, &mut || {
        black_box(pi::partial_sum_on(path, black_box(1), black_box(fast)));
    });
    let plain = figure("plain loop", terms, &mut || {
        black_box(pi::plain_sum(black_box(1), black_box(terms)));
    });
    let division_kernel = figure("division kernel", terms, &mut || {
        black_box(pi::division_kernel(black_box(1), black_box(terms)));
    });
    let division = figure("division limit", terms, &mut || {
        black_box(division_loop(black_box(terms)));
    });
    let per = floor_terms_per_iteration(path);
    let floor = figure("FP floor", fast / per * per, &mut || {
        black_box(kernel::mix(path, black_box(fast / per)));
    });
    let mut other_paths = Vec::new();
    for other in kernel::supported().into_iter().rev().filter(|&p| p != path) {
        // The baseline may call the C library for every FMA: fewer terms keep it short.
        let n = if other == Path::Baseline { (terms / 16).max(1 << 16) } else { fast };
        let what = other.as_str();
        let ns = figure(what, n, &mut || {
            black_box(pi::partial_sum_on(other, black_box(1), black_box(n)));
        });
        other_paths.push((other, ns));
    }
    KernelFigures {
        terms,
        fast_terms: fast,
        path,
        kernel_ns_per_term: kernel,
        plain_ns_per_term: plain,
        division_kernel_ns_per_term: division_kernel,
        division_ns: division,
        floor_ns_per_term: floor,
        other_paths,
        spread,
    }
}

/// One row of the scaling table.
#[derive(Debug, Clone)]
pub struct ScalingRow {
    /// Worker processes.
    pub workers: usize,
    /// Median wall time of `pifork pi` with that many workers.
    pub wall: Duration,
    /// Speedup against one worker.
    pub speedup: f64,
    /// Speedup / workers.
    pub efficiency: f64,
    /// How many single-core kernels the machine runs at full speed when this many run at once.
    pub capacity: f64,
    /// Median wall time of the same split on threads of one process, for comparison.
    pub threads: Duration,
}

impl ScalingRow {
    /// Speedup / capacity: how much of what the machine can deliver the engine gets.
    pub fn of_capacity(&self) -> f64 {
        self.speedup / self.capacity
    }
}

/// The same job on `workers` threads of this process (`std::thread::scope`): the same chunks,
/// kernel and combination, so the result has the same bits; only processes are replaced by
/// threads. Returns the estimate.
pub fn threads_pi(terms: u64, workers: usize) -> f64 {
    let plan = chunk_plan(terms);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut partials = vec![0.0f64; plan.len()];
    let results = std::sync::Mutex::new(&mut partials);
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, plan.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&(m, n)) = plan.get(i) else { break };
                    let sum = pi::partial_sum(m, n);
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = sum;
                }
            });
        }
    });
    4.0 * combine(&partials)
}

/// Runs `copies` pinned processes at once, each summing `terms` terms and timing itself;
/// returns each one's time.
fn concurrent_kernels(copies: usize, terms: u64) -> Result<Vec<Duration>> {
    let cpus = available_cpus();
    let mut sup: Supervisor<u64> = Supervisor::new();
    for i in 0..copies {
        sup.start(
            Process::new(move || {
                let start = Instant::now();
                black_box(pi::partial_sum(1, black_box(terms)));
                start.elapsed().as_nanos() as u64
            })
            .name(format!("capacity-{i}"))
            .daemon(true)
            .cpus([cpus[i % cpus.len()]]),
        )?;
    }
    Ok(sup
        .processes_mut()
        .iter_mut()
        .map(|p| p.result().map(Duration::from_nanos))
        .collect::<pifork::Result<_>>()?)
}

/// Capacity with `copies` at once: the sum over copies of (time alone / time together).
pub fn capacity(
    copies: usize,
    terms: u64,
    repeat: usize,
    cancel: Option<Cancel<'_>>,
) -> Result<f64> {
    let mut alone = Vec::new();
    let mut together = vec![Vec::new(); copies];
    for _ in 0..repeat.max(1) {
        check(cancel)?;
        alone.push(concurrent_kernels(1, terms).map_err(|e| failed(cancel, e))?[0]);
        let times = concurrent_kernels(copies, terms).map_err(|e| failed(cancel, e))?;
        for (i, t) in times.into_iter().enumerate() {
            together[i].push(t);
        }
    }
    let alone = median(&mut alone).as_secs_f64();
    Ok(together.iter_mut().map(|t| alone / median(t).as_secs_f64()).sum())
}

/// The scaling table for 1..=max_workers.
pub fn scaling(
    terms: u64,
    max_workers: usize,
    repeat: usize,
    method: StartMethod,
    cancel: Option<Cancel<'_>>,
) -> Result<Vec<ScalingRow>> {
    let mut rows: Vec<ScalingRow> = Vec::new();
    for workers in 1..=max_workers {
        let mut samples = Vec::new();
        let mut job = PiJob::new(terms, workers);
        job.start = method;
        for _ in 0..repeat.max(1) {
            check(cancel)?;
            samples.push(engine::run(&job, cancel)?.wall);
        }
        let wall = median(&mut samples);
        let base = rows.first().map_or(wall, |r| r.wall);
        let speedup = base.as_secs_f64() / wall.as_secs_f64();
        // Each copy does one worker's share, so copies run as long as a worker does.
        let capacity = if workers == 1 {
            1.0
        } else {
            capacity(workers, terms / workers as u64, repeat, cancel)?
        };
        check(cancel)?;
        let threads = time_median(repeat, || {
            black_box(threads_pi(terms, workers));
        });
        rows.push(ScalingRow {
            workers,
            wall,
            speedup,
            efficiency: speedup / workers as f64,
            capacity,
            threads,
        });
    }
    Ok(rows)
}

/// Median start+join round trip of a process that does nothing, started with `method`.
pub fn round_trip(
    method: StartMethod,
    repeat: usize,
    cancel: Option<Cancel<'_>>,
) -> Result<Duration> {
    let samples = (0..repeat.max(1)).map(|_| one_round_trip(method, cancel));
    Ok(median(&mut samples.collect::<Result<Vec<_>>>()?))
}

/// One start+join of a process that does nothing; the process is dropped (its descriptors
/// closed) after the clock stops. A process that did not exit with 0 (it could not start
/// its entry, or was killed) is an error: its time measures nothing.
fn one_round_trip(method: StartMethod, cancel: Option<Cancel<'_>>) -> Result<Duration> {
    check(cancel)?;
    let start = Instant::now();
    let mut p = match method {
        StartMethod::Fork => Process::new(|| ()),
        other => Process::entry(NOOP_ENTRY, &()).start_method(other),
    };
    p.start().map_err(|e| failed(cancel, e))?;
    p.join().map_err(|e| failed(cancel, e))?;
    let elapsed = start.elapsed();
    match p.exitcode()? {
        Some(code) if code.success() => Ok(elapsed),
        code => Err(failed(
            cancel,
            Error::MeasurementFailed {
                what: format!("a {method} start+join round trip"),
                exitcode: code.unwrap_or(pifork::ExitCode::Signaled(9)),
            },
        )),
    }
}

/// The round trips of every start method, and a bare fork to compare them with.
#[derive(Debug, Clone)]
pub struct RoundTrips {
    /// Median start+join round trip per start method.
    pub methods: Vec<(StartMethod, Duration)>,
    /// Median of a bare `fork` + `_exit` + `waitpid`.
    pub bare_fork: Duration,
}

/// Round trips per turn when the bare fork and the fork method alternate.
const BLOCK: usize = 25;

/// Round trips measured per start method (`runs` each, a quarter of that for spawn), and a
/// bare fork (no pipe, no pidfd, a blocking `waitpid`). The bare fork and the fork method
/// take turns in blocks of `BLOCK`, so that both see the machine in the same states while
/// neither runs right after the other's children.
pub fn round_trips(runs: usize, cancel: Option<Cancel<'_>>) -> Result<RoundTrips> {
    let runs = runs.max(1);
    let (mut bare, mut fork) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    while fork.len() < runs {
        let n = BLOCK.min(runs - fork.len());
        for _ in 0..n {
            let start = Instant::now();
            pifork::bare_fork_round_trip().map_err(|e| failed(cancel, e))?;
            bare.push(start.elapsed());
        }
        for _ in 0..n {
            fork.push(one_round_trip(StartMethod::Fork, cancel)?);
        }
    }
    let mut methods = vec![(StartMethod::Fork, median(&mut fork))];
    for method in [StartMethod::Spawn, StartMethod::Forkserver] {
        let n = if method == StartMethod::Spawn { runs.div_ceil(4) } else { runs };
        methods.push((method, round_trip(method, n, cancel)?));
    }
    Ok(RoundTrips { methods, bare_fork: median(&mut bare) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_none() {
        let ms = Duration::from_millis;
        assert_eq!(median(&mut [ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(median(&mut [ms(4), ms(1), ms(2), ms(3)]), Duration::from_micros(2500));
        assert_eq!(median(&mut []), Duration::ZERO);
    }

    #[test]
    fn division_loop_computes_the_harmonic_tail() {
        let want: f64 = (3..3 + 64).map(|k| 1.0 / k as f64).sum();
        assert!((division_loop(64) - want).abs() < 1e-12);
    }

    #[test]
    fn threads_give_the_processes_bits() {
        let n = 3_000_001;
        let processes = 4.0
            * combine(
                &chunk_plan(n).iter().map(|&(m, k)| pi::partial_sum(m, k)).collect::<Vec<_>>(),
            );
        for w in [1, 2, 3] {
            assert_eq!(threads_pi(n, w).to_bits(), processes.to_bits());
        }
    }

    fn figures() -> KernelFigures {
        KernelFigures {
            terms: 1,
            fast_terms: 10,
            path: Path::Baseline,
            kernel_ns_per_term: 0.05,
            plain_ns_per_term: 2.0,
            division_kernel_ns_per_term: 0.5,
            division_ns: 0.8,
            floor_ns_per_term: 0.04,
            other_paths: vec![],
            spread: (0.02, "kernel"),
        }
    }

    #[test]
    fn figures_ratios() {
        let f = figures();
        assert_eq!(f.speedup(), 40.0);
        assert_eq!(f.over_division_kernel(), 10.0);
        assert_eq!(f.of_division_limit(), 0.8);
        assert!((f.of_floor() - 0.8).abs() < 1e-12);
        assert!(f.warnings().is_empty());
    }

    #[test]
    fn noisy_figures_warn() {
        let mut f = figures();
        f.spread = (0.25, "plain loop");
        f.floor_ns_per_term = 0.06;
        let w = f.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("plain loop repeats spread by 25%"), "{}", w[0]);
        assert!(w[1].contains("120.0% of the FP floor"), "{}", w[1]);
        let row = |workers, capacity| ScalingRow {
            workers,
            wall: Duration::from_millis(10),
            speedup: 2.0,
            efficiency: 1.0,
            capacity,
            threads: Duration::from_millis(10),
        };
        let w = scaling_warnings(&[row(2, 2.0), row(3, 1.6)]);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("3 workers at 125.0% of capacity"), "{}", w[0]);
    }

    #[test]
    fn timing_spread() {
        let ms = Duration::from_millis;
        let t = Timing::of(&mut [ms(12), ms(10), ms(11)]);
        assert_eq!(t.median, ms(11));
        assert!((t.spread - 2.0 / 11.0).abs() < 1e-12);
    }

    #[test]
    fn floor_loop_runs_on_every_path() {
        for path in kernel::supported() {
            assert!(kernel::mix(path, 1000).is_finite(), "{path}");
        }
    }
}
