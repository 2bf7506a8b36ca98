//! Scaling: `pifork pi` over 1..=W workers against one worker, against the machine's capacity
//! measured in the same run (as many kernels at once on pinned processes), and against the
//! same split on threads of one process.

use std::hint::black_box;
use std::time::{Duration, Instant};

use super::stats::{median, time_median};
use super::{check, failed};
use crate::engine::{self, Cancel, PiJob};
use crate::error::Result;
use crate::pi;
use crate::plan::{chunk_plan, combine};
use pifork::{Process, StartMethod, Supervisor, available_cpus};

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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_row_above_capacity_warns() {
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
}
