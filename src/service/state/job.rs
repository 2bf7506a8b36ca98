//! The state itself: a job's parameters, the time spent on it and its finished chunks with
//! their partial sums; what it has done so far and what estimate of pi that makes. A chunk's
//! sum is taken only if it is the series' own.

use std::collections::BTreeMap;

use super::error::StateError;
use crate::plan::{MAX_CHUNKS, combine, expected_sum, plausible_sum};

/// Refuses a job of more than [`MAX_CHUNKS`] chunks (or an empty chunk), before anything is
/// allocated for it.
pub fn check_job(terms: u64, chunk: u64) -> Result<(), StateError> {
    if chunk == 0 || terms.div_ceil(chunk) > MAX_CHUNKS {
        return Err(StateError::TooManyChunks { terms, chunk });
    }
    Ok(())
}

/// Progress of one long computation.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// N.
    pub terms: u64,
    /// Terms per chunk.
    pub chunk: u64,
    /// Seconds spent computing, over all runs.
    pub elapsed: f64,
    /// Finished chunks: index -> partial sum.
    pub done: BTreeMap<u64, f64>,
}

impl State {
    /// A fresh state for N terms in chunks of `chunk`.
    pub fn new(terms: u64, chunk: u64) -> State {
        State { terms, chunk, elapsed: 0.0, done: BTreeMap::new() }
    }

    /// Number of chunks.
    pub fn chunks(&self) -> u64 {
        self.terms.div_ceil(self.chunk)
    }

    /// Terms `(first, last)` of chunk `index`.
    pub fn bounds(&self, index: u64) -> (u64, u64) {
        let first = index * self.chunk + 1;
        (first, self.terms.min(first + self.chunk - 1))
    }

    /// Terms in finished chunks.
    pub fn terms_done(&self) -> u64 {
        self.done
            .keys()
            .map(|&i| {
                let (a, b) = self.bounds(i);
                b - a + 1
            })
            .sum()
    }

    /// True once every chunk is finished.
    pub fn complete(&self) -> bool {
        self.done.len() as u64 == self.chunks()
    }

    /// 4 * the sum of the finished chunks that form an unbroken run from the first: the
    /// estimate so far (None before chunk 0 is done). Once complete, the final result, the same
    /// bits however the work was interrupted and resumed.
    pub fn estimate(&self) -> Option<f64> {
        let prefix: Vec<f64> = (0..).map_while(|i| self.done.get(&i).copied()).collect();
        (!prefix.is_empty()).then(|| 4.0 * combine(&prefix))
    }

    /// Terms covered by [`State::estimate`].
    pub fn prefix_terms(&self) -> u64 {
        let k = (0..).take_while(|i| self.done.contains_key(i)).count() as u64;
        if k == 0 { 0 } else { self.bounds(k - 1).1 }
    }

    /// Records chunk `index`'s partial sum, if it is the series' own (see [`plausible_sum`]).
    pub fn record(&mut self, index: u64, sum: f64) -> Result<(), StateError> {
        let (first, last) = self.bounds(index);
        if index >= self.chunks() || !plausible_sum(first, last, sum) {
            let expected = if index < self.chunks() { expected_sum(first, last) } else { f64::NAN };
            return Err(StateError::Implausible { chunk: index, sum, expected });
        }
        self.done.insert(index, sum);
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::pi::{self, MAX_TERMS};

    /// The state of 10 terms in chunks of 4 with chunks 0 and 2 done.
    pub(in super::super) fn sample() -> State {
        let mut s = State::new(10, 4);
        s.elapsed = 1.5;
        s.done.insert(0, pi::partial_sum(1, 4));
        s.done.insert(2, pi::partial_sum(9, 10));
        s
    }

    #[test]
    fn chunks_and_estimates() {
        let s = sample();
        assert_eq!((s.chunks(), s.bounds(2), s.terms_done()), (3, (9, 10), 6));
        assert_eq!(s.prefix_terms(), 4);
        assert_eq!(s.estimate(), Some(4.0 * pi::partial_sum(1, 4)));
        assert_eq!(State::new(10, 4).estimate(), None);
    }

    #[test]
    fn record_takes_only_the_series_sums() {
        let mut s = State::new(10, 4);
        assert!(matches!(s.record(1, pi::partial_sum(5, 8)), Ok(())));
        for (chunk, sum) in [(0, f64::NAN), (0, 0.0), (0, pi::partial_sum(5, 8)), (3, 1.0)] {
            assert!(matches!(s.record(chunk, sum), Err(StateError::Implausible { .. })));
        }
        assert_eq!(s.done.len(), 1);
        let text = StateError::Implausible { chunk: 0, sum: 0.0, expected: 0.72 }.to_string();
        assert!(text.contains("not the series'") && text.contains("not recorded"), "{text}");
    }

    #[test]
    fn too_many_chunks_are_refused_with_a_chunk_that_fits() {
        assert!(matches!(check_job(1_000_000, 1), Ok(())));
        let e = check_job(1_000_000_000_000, 1).unwrap_err();
        assert!(
            matches!(e, StateError::TooManyChunks { terms: 1_000_000_000_000, chunk: 1 }),
            "{e:?}"
        );
        assert!(e.to_string().contains("use --chunk 1000000 or more"), "{e}");
        assert!(check_job(MAX_TERMS, 1 << 30).is_err() && check_job(MAX_TERMS, 1 << 31).is_ok());
        assert!(check_job(5, 0).is_err());
    }
}
