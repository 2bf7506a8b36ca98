//! `pifork bench --sharing`: the same pi job run each way `pifork pi --via` knows, the median
//! wall time of each beside the default engine's.

use std::time::Duration;

use super::stats::median;
use crate::engine::PiJob;
use crate::error::Result;
use crate::via::{self, Via};

/// One way's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct SharingRow {
    /// The way.
    pub via: Via,
    /// The median wall time of its runs.
    pub wall: Duration,
    /// The estimate's bits, the same each way.
    pub bits: u64,
}

/// Runs `job` `repeat` times each way, the ways in turn each round (so a slow spell of the
/// machine falls on all of them), and the median of each.
pub fn sharing(job: &PiJob, repeat: usize) -> Result<Vec<SharingRow>> {
    let mut walls: Vec<Vec<Duration>> = vec![Vec::with_capacity(repeat); Via::ALL.len()];
    let mut bits = [0u64; Via::ALL.len()];
    for _ in 0..repeat.max(1) {
        for (i, way) in Via::ALL.into_iter().enumerate() {
            let report = via::run(job, way, None)?;
            walls[i].push(report.wall);
            bits[i] = report.estimate.to_bits();
        }
    }
    Ok(Via::ALL
        .into_iter()
        .zip(walls.iter_mut())
        .zip(bits)
        .map(|((via, w), bits)| SharingRow { via, wall: median(w), bits })
        .collect())
}
