//! `pifork bench` from start to end: the start+join round trips, the kernel on one core, the
//! scaling over worker counts, in that order. On a terminal a line of stderr names the phase
//! that runs, and the scaling runs show their progress.

use std::io::IsTerminal;

use pifork::StartMethod;

use super::bench::{self, RoundTrips};
use super::engine::Cancel;
use super::error::Result;
use super::progress::{self, TerminalLine};
use super::report::BenchReport;

/// Start+join round trips per start method in one measurement.
const ROUND_TRIPS: usize = 200;

/// What `pifork bench` measures, and how.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Terms per scaling run.
    pub terms: u64,
    /// The largest worker count of the scaling.
    pub max_workers: usize,
    /// Runs per figure (medians are reported).
    pub repeat: usize,
    /// Start method of the scaling runs' workers.
    pub start: StartMethod,
    /// No line on stderr (the output is JSON).
    pub quiet: bool,
}

impl Suite {
    /// Runs every phase; `cancel` stops the round trips and the scaling runs.
    pub fn run(&self, cancel: Option<Cancel<'_>>) -> Result<BenchReport> {
        let mut phase = Phase::new(self.quiet);
        let round_trips = phase.round_trips(cancel)?;
        let kernel_terms = (self.terms / 10).clamp(1 << 20, 100_000_000);
        phase.show("bench: the kernel on one core");
        let kernel = bench::kernel_figures(kernel_terms, self.repeat);
        drop(phase);
        let line = progress::show("bench: scaling", self.quiet);
        let rows = bench::scaling(self.terms, self.max_workers, self.repeat, self.start, cancel);
        drop(line);
        Ok(BenchReport {
            terms: self.terms,
            repeat: self.repeat,
            kernel,
            round_trips,
            start: self.start,
            rows: rows?,
        })
    }
}

/// Only the round trips of the three start methods (`pifork bench --start-methods`).
pub fn round_trips(quiet: bool, cancel: Option<Cancel<'_>>) -> Result<RoundTrips> {
    Phase::new(quiet).round_trips(cancel)
}

/// The line naming the phase that runs; erased when dropped.
struct Phase(Option<TerminalLine>);

impl Phase {
    /// A line on stderr if it is a terminal and not `quiet`; none otherwise.
    fn new(quiet: bool) -> Phase {
        Phase((!quiet && std::io::stderr().is_terminal()).then(|| TerminalLine::new("bench")))
    }

    fn show(&mut self, text: &str) {
        if let Some(line) = &mut self.0 {
            line.show(text);
        }
    }

    fn round_trips(&mut self, cancel: Option<Cancel<'_>>) -> Result<RoundTrips> {
        self.show("bench: start+join round trips");
        bench::round_trips(ROUND_TRIPS, cancel)
    }
}
