//! The pi computation shared among the ranks of a cluster job (`pifork-mpi`), without the
//! transport: each rank's fixed share of the chunk plan, the flat records its results travel
//! in, and the warning of a rank with too few CPUs. The reports rank 0 prints are in
//! [`crate::report`], re-exported here. The message passing itself lives in the program.

use std::ops::Range;
use std::time::Duration;

use super::pool::WorkerReport;

pub use super::report::{RankReport, cluster_json, cluster_text};

/// Rank `rank`'s share of a plan of `chunks` chunks among `ranks` ranks: a contiguous run of
/// chunk indices, the runs in rank order and covering the plan once. Ranks past the number of
/// chunks get none.
pub fn share(chunks: usize, rank: usize, ranks: usize) -> Range<usize> {
    let ranks = ranks.max(1);
    let start = |r: usize| chunks * r.min(ranks) / ranks;
    start(rank)..start(rank + 1)
}

/// Numbers per worker record ([`worker_record`]).
pub const WORKER_FIELDS: usize = 7;

/// A worker's report as numbers, for a gather: index, pid, pinned + 1 (0: none), cpu + 1
/// (0: unknown), chunks, terms, busy ns.
pub fn worker_record(w: &WorkerReport) -> [u64; WORKER_FIELDS] {
    let opt = |v: Option<usize>| v.map_or(0, |c| c as u64 + 1);
    [
        w.index as u64,
        w.pid as u64,
        opt(w.pinned),
        opt(w.cpu),
        w.chunks,
        w.terms,
        w.busy.as_nanos() as u64,
    ]
}

/// The worker report of a record made by [`worker_record`], renumbered `index`.
pub fn worker_from_record(r: &[u64; WORKER_FIELDS], index: usize) -> WorkerReport {
    let opt = |v: u64| v.checked_sub(1).map(|c| c as usize);
    WorkerReport {
        index,
        pid: r[1] as i32,
        pinned: opt(r[2]),
        cpu: opt(r[3]),
        chunks: r[4],
        terms: r[5],
        busy: Duration::from_nanos(r[6]),
    }
}

/// The warning a rank gives when its affinity mask has fewer CPUs than the workers asked for,
/// or `None` when it has enough.
pub fn affinity_warning(rank: usize, host: &str, cpus: usize, workers: usize) -> Option<String> {
    (cpus < workers).then(|| {
        format!(
            "warning: rank {rank} on {host} may use {cpus} CPU{} but {workers} workers were asked \
             for; start mpirun with --bind-to none to let a rank's workers spread",
            if cpus == 1 { "" } else { "s" }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::chunk_plan;

    #[test]
    fn shares_cover_the_plan_once_in_rank_order() {
        for chunks in [0usize, 1, 5, 48] {
            for ranks in 1..=60 {
                let shares: Vec<_> = (0..ranks).map(|r| share(chunks, r, ranks)).collect();
                assert_eq!(shares[0].start, 0);
                assert_eq!(shares[ranks - 1].end, chunks);
                assert!(shares.windows(2).all(|w| w[0].end == w[1].start));
                let lens: Vec<usize> = shares.iter().map(|s| s.end - s.start).collect();
                let (min, max) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
                assert!(max - min <= 1, "{chunks} chunks over {ranks} ranks: {shares:?}");
            }
        }
        assert_eq!(share(chunk_plan(10_000_000_000).len(), 1, 4), 12..24);
    }

    #[test]
    fn worker_records_round_trip() {
        let w = WorkerReport {
            index: 3,
            pid: 4242,
            pinned: Some(0),
            cpu: None,
            chunks: 5,
            terms: 1 << 33,
            busy: Duration::from_nanos(123_456_789),
        };
        let back = worker_from_record(&worker_record(&w), 7);
        assert_eq!(back, WorkerReport { index: 7, ..w });
    }

    #[test]
    fn warns_only_when_workers_outnumber_cpus() {
        assert_eq!(affinity_warning(0, "pi1", 4, 4), None);
        let w = affinity_warning(2, "pi3", 1, 4).unwrap();
        assert!(w.contains("rank 2 on pi3 may use 1 CPU but 4 workers"), "{w}");
        assert!(w.contains("--bind-to none"), "{w}");
    }
}
