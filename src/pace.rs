//! How long a chunk should take, from the chunks measured so far: past a generous multiple of
//! that a worker is late (warn, once per chunk), past a larger one it is stuck (stopped, hung:
//! the pool ends it and its chunks are redone). Until some chunk has been measured nothing is
//! late: a first chunk's time is unknown.

use std::collections::VecDeque;
use std::time::Duration;

/// A chunk is late after this many times its expected time...
pub const LATE_FACTOR: u32 = 10;
/// ...and never sooner than this.
pub const LATE_FLOOR: Duration = Duration::from_secs(2);
/// A chunk is stuck after this many times its expected time...
pub const STUCK_FACTOR: u32 = 60;
/// ...and never sooner than this.
pub const STUCK_FLOOR: Duration = Duration::from_secs(10);

/// Recent measurements kept: the slowest of them sets the expectation.
const KEPT: usize = 16;

/// How far past its expected time a chunk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lateness {
    /// Within the late bound, or nothing measured yet.
    OnTime,
    /// Past the late bound.
    Late,
    /// Past the stuck bound.
    Stuck,
}

/// The pace of the recent chunks, in nanoseconds per term.
#[derive(Debug, Clone, Default)]
pub struct Pace {
    recent: VecDeque<f64>,
}

impl Pace {
    /// No chunk measured yet.
    pub fn new() -> Pace {
        Pace::default()
    }

    /// A chunk of `terms` terms took `ns` nanoseconds in its worker.
    pub fn record(&mut self, terms: u64, ns: u64) {
        if terms == 0 {
            return;
        }
        if self.recent.len() == KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(ns as f64 / terms as f64);
    }

    /// What a chunk of `terms` terms should take: at the slowest recent pace (a generous
    /// estimate), or `None` before any measurement.
    pub fn expected(&self, terms: u64) -> Option<Duration> {
        let slowest = self.recent.iter().copied().fold(f64::NAN, f64::max);
        (!slowest.is_nan()).then(|| {
            Duration::try_from_secs_f64(slowest * terms as f64 * 1e-9).unwrap_or(Duration::MAX)
        })
    }

    /// When a chunk of `terms` terms becomes late and when stuck, counted from its start.
    pub fn bounds(&self, terms: u64) -> Option<(Duration, Duration)> {
        let expected = self.expected(terms)?;
        Some((
            expected.saturating_mul(LATE_FACTOR).max(LATE_FLOOR),
            expected.saturating_mul(STUCK_FACTOR).max(STUCK_FLOOR),
        ))
    }

    /// How late a chunk of `terms` terms is after `waited`.
    pub fn lateness(&self, terms: u64, waited: Duration) -> Lateness {
        match self.bounds(terms) {
            Some((_, stuck)) if waited >= stuck => Lateness::Stuck,
            Some((late, _)) if waited >= late => Lateness::Late,
            _ => Lateness::OnTime,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_late_before_a_measurement() {
        let pace = Pace::new();
        assert_eq!(pace.expected(1000), None);
        assert_eq!(pace.lateness(1000, Duration::from_secs(3600)), Lateness::OnTime);
    }

    #[test]
    fn bounds_follow_the_slowest_recent_chunk_with_floors() {
        let mut pace = Pace::new();
        pace.record(1_000_000, 1_000_000); // 1 ns/term
        pace.record(1_000_000, 2_000_000); // 2 ns/term: the slowest sets the pace
        assert_eq!(pace.expected(1_000_000_000), Some(Duration::from_secs(2)));
        let (late, stuck) = pace.bounds(1_000_000_000).unwrap();
        assert_eq!((late, stuck), (Duration::from_secs(20), Duration::from_secs(120)));
        // Short chunks: the floors.
        assert_eq!(pace.bounds(1000).unwrap(), (LATE_FLOOR, STUCK_FLOOR));
        assert_eq!(pace.lateness(1000, Duration::from_secs(1)), Lateness::OnTime);
        assert_eq!(pace.lateness(1000, Duration::from_secs(3)), Lateness::Late);
        assert_eq!(pace.lateness(1000, Duration::from_secs(10)), Lateness::Stuck);
    }

    #[test]
    fn old_measurements_age_out() {
        let mut pace = Pace::new();
        pace.record(1000, 1_000_000); // 1000 ns/term, then KEPT faster chunks
        for _ in 0..KEPT {
            pace.record(1000, 1000);
        }
        assert_eq!(pace.expected(1_000_000), Some(Duration::from_millis(1)));
    }
}
