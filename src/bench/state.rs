//! What saving a finished chunk costs the service: its own save path ([`Store::record`], then
//! [`Store::sync_if_due`], as `pifork serve` calls them) timed chunk by chunk in a fresh
//! state directory, for jobs of 10^3, 10^4 and 10^5 chunks, with the bytes it wrote per
//! chunk. Flat from 10^3 to 10^5 is the point: a chunk costs one appended record, and the
//! compactions, which grow with the state, are rare enough to cost a bounded amount per chunk.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::stats::median;
use crate::error::Result;
use crate::plan::expected_sum;
use crate::service::state::{Lock, StateError, Store};

/// The job sizes measured, in chunks.
pub const SAVING_CHUNKS: [u64; 3] = [1_000, 10_000, 100_000];

/// Terms per chunk of the measured jobs (the sums are the series' own, not computed).
const TERMS_PER_CHUNK: u64 = 1_000;

/// A median cost this many times the smallest job's makes the figures noisy (or not flat).
pub const FLAT_WITHIN: f64 = 2.0;

/// The cost of saving, for one job size.
#[derive(Debug, Clone, PartialEq)]
pub struct SavingRow {
    /// Chunks of the job, all recorded.
    pub chunks: u64,
    /// The median time of one chunk's save.
    pub median: Duration,
    /// The time of all the saves over the chunks: compactions and syncs included.
    pub mean: Duration,
    /// Bytes written to the state directory per chunk.
    pub bytes_per_chunk: f64,
    /// Snapshots written on the way (the last one when the job completed).
    pub compactions: u64,
    /// Syncs of the journal on the way.
    pub syncs: u64,
}

/// What saving costs, job size by job size.
#[derive(Debug, Clone, PartialEq)]
pub struct StateSaving {
    /// Where the state directories were made.
    pub dir: PathBuf,
    /// One row per job size, smallest first.
    pub rows: Vec<SavingRow>,
}

impl StateSaving {
    /// The warnings of a run whose median cost is not flat (within [`FLAT_WITHIN`]).
    pub fn warnings(&self) -> Vec<String> {
        let Some(first) = self.rows.first() else {
            return Vec::new();
        };
        self.rows
            .iter()
            .skip(1)
            .filter(|r| r.median.as_secs_f64() > FLAT_WITHIN * first.median.as_secs_f64())
            .map(|r| {
                format!(
                    "saving a chunk of a job of {} chunks took {:.1}x what it took at {}: not \
                     flat, or a noisy run (rerun on an idle machine)",
                    r.chunks,
                    r.median.as_secs_f64() / first.median.as_secs_f64(),
                    first.chunks
                )
            })
            .collect()
    }
}

/// Measures saving for each job size of `counts` (in chunks), each in a fresh directory
/// under `dir`, removed afterwards.
pub fn state_saving(dir: &Path, counts: &[u64]) -> Result<StateSaving> {
    let rows = counts.iter().map(|&n| saving_row(dir, n)).collect::<Result<_>>()?;
    Ok(StateSaving { dir: dir.to_path_buf(), rows })
}

/// Records every chunk of a job of `chunks` chunks in a fresh state directory under `dir`.
fn saving_row(dir: &Path, chunks: u64) -> Result<SavingRow> {
    let at = dir.join(format!("pifork-bench-state-{}-{chunks}", std::process::id()));
    let io = |op, source| StateError::Io { path: at.clone(), op, source };
    if at.exists() {
        std::fs::remove_dir_all(&at).map_err(|e| io("remove", e))?;
    }
    std::fs::create_dir_all(&at).map_err(|e| io("create", e))?;
    let measured = measure(&at, chunks);
    let removed = std::fs::remove_dir_all(&at).map_err(|e| io("remove", e));
    let row = measured?;
    removed?;
    Ok(row)
}

/// The measurement of [`saving_row`] in the directory `at`.
fn measure(at: &Path, chunks: u64) -> Result<SavingRow> {
    let lock = Lock::acquire(at)?;
    let (mut store, mut state) = Store::open(at, &lock, chunks * TERMS_PER_CHUNK, TERMS_PER_CHUNK)?;
    let sums: Vec<f64> = (0..chunks)
        .map(|i| {
            let (first, last) = state.bounds(i);
            expected_sum(first, last)
        })
        .collect();
    let opened = store.written();
    let mut times = Vec::with_capacity(sums.len());
    let start = Instant::now();
    for (i, &sum) in (0..).zip(&sums) {
        let t = Instant::now();
        state.elapsed = start.elapsed().as_secs_f64();
        store.record(&mut state, i, sum)?;
        store.sync_if_due()?;
        times.push(t.elapsed());
    }
    let total: Duration = times.iter().sum();
    let written = store.written();
    let n = chunks.max(1);
    Ok(SavingRow {
        chunks,
        median: median(&mut times),
        mean: total / n as u32,
        bytes_per_chunk: (written.bytes - opened.bytes) as f64 / n as f64,
        compactions: written.compactions - opened.compactions,
        syncs: written.syncs - opened.syncs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saving_is_measured_on_the_real_path_and_cleaned_up() {
        let dir = std::env::temp_dir().join(format!("pifork-unit-saving-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = state_saving(&dir, &[50, 3000]).unwrap();
        assert_eq!(r.rows.iter().map(|r| r.chunks).collect::<Vec<_>>(), [50, 3000]);
        for row in &r.rows {
            // A record each, and the snapshot written once the job is complete.
            assert!(row.compactions >= 1 && row.median > Duration::ZERO, "{row:?}");
            assert!((40.0..400.0).contains(&row.bytes_per_chunk), "{row:?}");
        }
        // 3000 chunks pass the journal's floor: compacted on the way too.
        assert!(r.rows[1].compactions >= 2, "{:?}", r.rows[1]);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "a directory was left");
        std::fs::remove_dir(&dir).unwrap();
    }
}
