//! `pifork-mpi pi`: `pifork pi`'s report, then each rank's part of the job.

use std::fmt::Write;
use std::time::Duration;

use super::json::{Array, Fixed, Object};
use super::millis;
use super::pi::{pi_object, pi_text};
use crate::engine::PiReport;

/// One rank's part of a cluster run.
#[derive(Debug, Clone, PartialEq)]
pub struct RankReport {
    /// Its rank in the job.
    pub rank: usize,
    /// The host it ran on.
    pub host: String,
    /// Its worker processes.
    pub workers: usize,
    /// The CPUs its affinity mask allowed.
    pub cpus: usize,
    /// The chunks of the plan it computed.
    pub chunks: usize,
    /// Wall time of its share, from its workers' start to its last partial sum.
    pub busy: Duration,
    /// How long its MPI initialisation took.
    pub init: Duration,
}

/// The report of `pifork-mpi pi`: `pifork pi`'s, then one line per rank.
pub fn cluster_text(report: &PiReport, correct: bool, ranks: &[RankReport]) -> String {
    let mut out = pi_text(report, correct);
    for r in ranks {
        let _ = writeln!(
            out,
            "rank {}: host {} workers {} cpus {} chunks {} busy {:.1} ms (mpi init {:.1} ms)",
            r.rank,
            r.host,
            r.workers,
            r.cpus,
            r.chunks,
            millis(r.busy),
            millis(r.init)
        );
    }
    out
}

/// The JSON report of `pifork-mpi pi --json`: `pifork pi --json`'s object with a `per_rank`
/// array.
pub fn cluster_json(report: &PiReport, correct: bool, ranks: &[RankReport]) -> String {
    pi_object(report, correct)
        .field("ranks", ranks.len())
        .field("per_rank", ranks.iter().map(rank_object).collect::<Array>())
        .finish()
}

/// One rank's part of [`cluster_json`].
fn rank_object(r: &RankReport) -> Object {
    Object::new()
        .field("rank", r.rank)
        .field("host", &r.host)
        .field("workers", r.workers)
        .field("cpus", r.cpus)
        .field("chunks", r.chunks)
        .field("ms", Fixed(millis(r.busy), 3))
        .field("init_ms", Fixed(millis(r.init), 3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::pi_json;

    #[test]
    fn reports_add_one_line_per_rank() {
        let report = PiReport {
            terms: 1000,
            estimate: 3.25,
            wall: Duration::from_millis(5),
            workers: Vec::new(),
            backend: pifork::Backend::Pipe,
            kernel: crate::kernel::Path::Baseline,
        };
        let ranks: Vec<RankReport> = (0..2)
            .map(|rank| RankReport {
                rank,
                host: format!("pi\"{rank}"),
                workers: 4,
                cpus: 4,
                chunks: 24,
                busy: Duration::from_millis(1500),
                init: Duration::from_millis(20),
            })
            .collect();
        let text = cluster_text(&report, false, &ranks);
        assert!(text.starts_with(&pi_text(&report, false)));
        assert!(text.ends_with(
            "rank 1: host pi\"1 workers 4 cpus 4 chunks 24 busy 1500.0 ms (mpi init 20.0 ms)\n"
        ));
        let json = cluster_json(&report, true, &ranks);
        let plain = pi_json(&report, true);
        assert!(json.starts_with(&plain[..plain.len() - 1]), "{json}");
        assert!(json.ends_with(
            ",\"ranks\":2,\"per_rank\":[{\"rank\":0,\"host\":\"pi\\\"0\",\"workers\":4,\"cpus\":4,\
             \"chunks\":24,\"ms\":1500.000,\"init_ms\":20.000},{\"rank\":1,\"host\":\"pi\\\"1\",\
             \"workers\":4,\"cpus\":4,\"chunks\":24,\"ms\":1500.000,\"init_ms\":20.000}]}"
        ));
    }
}
