//! The race: workers with different amounts of work; the first to finish is found through the
//! sentinels (no polling), then the rest are terminated — or, on request, all are joined.

use std::time::{Duration, Instant};

use super::engine::Cancel;
use super::error::{Error, Result};
use super::pi;
use pifork::{ExitCode, Process, StartMethod, Supervisor, available_cpus, wait};

/// One runner's outcome.
#[derive(Debug, Clone)]
pub struct Runner {
    /// Index 0..W.
    pub index: usize,
    /// Its pid.
    pub pid: i32,
    /// Terms it had to sum.
    pub terms: u64,
    /// How it ended.
    pub exitcode: ExitCode,
    /// When it ended, from the start of the race (None if it was terminated).
    pub finished: Option<Duration>,
}

/// The race's outcome.
#[derive(Debug, Clone)]
pub struct RaceReport {
    /// The seed of the work sizes.
    pub seed: u64,
    /// Index of the winner.
    pub winner: usize,
    /// Every runner, by index.
    pub runners: Vec<Runner>,
}

/// The runners' entry point: the partial sum of terms m..=n.
pub const PARTIAL_SUM_ENTRY: &str = "pifork.partial-sum";

/// Registers the race's entry point (from `main`, before `main_guard`).
pub fn register_entries() {
    pifork::register(PARTIAL_SUM_ENTRY, |(m, n): (u64, u64)| pi::partial_sum(m, n));
}

/// splitmix64: a small, well-mixed generator; plenty for picking work sizes.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Work sizes for `workers` runners: distinct, between `max_terms / 4` and `max_terms`.
pub fn work_sizes(workers: usize, seed: u64, max_terms: u64) -> Vec<u64> {
    let mut state = seed;
    let low = (max_terms / 4).max(1);
    let mut sizes: Vec<u64> = Vec::with_capacity(workers);
    while sizes.len() < workers {
        let size = low + next_random(&mut state) % (max_terms - low + 1);
        if !sizes.contains(&size) || max_terms - low + 1 < workers as u64 {
            sizes.push(size);
        }
    }
    sizes
}

/// Runs the race. `cancel` as in [`super::engine::run`].
pub fn race(
    method: StartMethod,
    workers: usize,
    seed: u64,
    max_terms: u64,
    join_all: bool,
    cancel: Option<Cancel<'_>>,
) -> Result<RaceReport> {
    let sizes = work_sizes(workers, seed, max_terms);
    let mut race = Race::start(method, &sizes, cancel)?;
    while !race.over(join_all) {
        let ready = race.wait()?;
        let now = race.start.elapsed();
        for source in ready {
            race.on_ready(source, now)?;
        }
    }
    race.finish(seed, &sizes)
}

/// Which descriptor of the race a wait was on.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The sentinel of runner i: it ended.
    Runner(usize),
    /// The cancel descriptor: a signal arrived.
    Cancel,
}

/// A race in progress: the runners, when each finished, and the first to.
struct Race<'a> {
    sup: Supervisor<f64>,
    start: Instant,
    finished: Vec<Option<Duration>>,
    winner: Option<usize>,
    cancel: Option<Cancel<'a>>,
}

impl<'a> Race<'a> {
    /// Starts one runner per work size, started with `method`, each pinned to a CPU in turn.
    fn start(method: StartMethod, sizes: &[u64], cancel: Option<Cancel<'a>>) -> Result<Race<'a>> {
        let cpus = available_cpus();
        let mut sup: Supervisor<f64> = Supervisor::new();
        let start = Instant::now();
        for (i, &terms) in sizes.iter().enumerate() {
            let p = Process::entry(PARTIAL_SUM_ENTRY, &(1u64, terms))
                .start_method(method)
                .name(format!("runner-{i}"))
                .daemon(true)
                .cpus([cpus[i % cpus.len()]]);
            sup.start(p)?;
        }
        Ok(Race { sup, start, finished: vec![None; sizes.len()], winner: None, cancel })
    }

    /// True once every runner finished, or one did and the rest need not be waited for.
    fn over(&self, join_all: bool) -> bool {
        self.finished.iter().all(Option::is_some) || (self.winner.is_some() && !join_all)
    }

    /// Waits until a runner still running ends or the cancel descriptor is ready.
    fn wait(&self) -> Result<Vec<Source>> {
        let procs = self.sup.processes();
        let mut watched: Vec<(Source, pifork::Sentinel<'_>)> = Vec::new();
        for i in (0..self.finished.len()).filter(|&i| self.finished[i].is_none()) {
            watched.push((Source::Runner(i), procs[i].sentinel()?));
        }
        if let Some((fd, _)) = &self.cancel {
            watched.push((Source::Cancel, *fd));
        }
        let fds: Vec<_> = watched.iter().map(|&(_, fd)| fd).collect();
        Ok(wait(&fds, None)?.into_iter().map(|k| watched[k].0).collect())
    }

    /// Answers a ready `source`, `now` into the race: a runner that ended is joined and, if it
    /// succeeded, finished (the first one wins); one that failed ends the race, as does a
    /// signal.
    fn on_ready(&mut self, source: Source, now: Duration) -> Result<()> {
        let Source::Runner(i) = source else {
            return check(self.cancel);
        };
        let p = &mut self.sup.processes_mut()[i];
        p.join()?;
        let exitcode = p.exitcode()?.unwrap_or(ExitCode::Signaled(9));
        if !exitcode.success() {
            // Ctrl-C reaches the runners too: then the race was interrupted.
            check(self.cancel)?;
            let pid = p.pid()?;
            return Err(Error::WorkerDied { worker: i, pid, exitcode, panic: None });
        }
        self.finished[i] = Some(now);
        self.winner.get_or_insert(i);
        log::debug!("runner-{i} finished after {now:?}");
        Ok(())
    }

    /// Ends the race: the losers are terminated (not joined) unless all were joined, then
    /// every runner is reaped and reported.
    fn finish(mut self, seed: u64, sizes: &[u64]) -> Result<RaceReport> {
        self.sup.terminate_all()?;
        let mut runners = Vec::with_capacity(sizes.len());
        for (i, p) in self.sup.processes_mut().iter_mut().enumerate() {
            p.join()?;
            runners.push(Runner {
                index: i,
                pid: p.pid()?.map_or(0, |pid| pid.as_raw()),
                terms: sizes[i],
                exitcode: p.exitcode()?.expect("joined"),
                finished: self.finished[i],
            });
        }
        Ok(RaceReport { seed, winner: self.winner.expect("at least one runner finished"), runners })
    }
}

/// Ends the race if `cancel` says so (a signal arrived).
fn check(cancel: Option<Cancel<'_>>) -> Result<()> {
    match cancel.and_then(|(_, on_cancel)| on_cancel()) {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_seeded_distinct_and_in_range() {
        let a = work_sizes(8, 7, 1000);
        assert_eq!(a, work_sizes(8, 7, 1000));
        assert_ne!(a, work_sizes(8, 8, 1000));
        assert!(a.iter().all(|&s| (250..=1000).contains(&s)));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 8);
        assert_eq!(work_sizes(3, 1, 1).len(), 3);
    }
}
