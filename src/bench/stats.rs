//! The statistics of a benchmark: medians of repeated runs and how far the repeats spread.

use std::time::{Duration, Instant};

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
    fn timing_spread() {
        let ms = Duration::from_millis;
        let t = Timing::of(&mut [ms(12), ms(10), ms(11)]);
        assert_eq!(t.median, ms(11));
        assert!((t.spread - 2.0 / 11.0).abs() < 1e-12);
    }
}
