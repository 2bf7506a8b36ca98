//! How many workers a pool may have: the cap beyond which more only slow it down, and the
//! descriptor and process limits its workers need, raised or reported before any starts.

use crate::error::{Error, Result};
use pifork::available_cpus;

/// Workers per available CPU beyond which more only slow the pool down: the parent, one
/// process among them all, gets its share of the CPUs to notice a signal and stop them (on
/// 2 CPUs: stopped in 0.01 s with 8 workers, 0.5 s with 128, 3.8 s with 1000).
pub const WORKERS_PER_CPU: usize = 64;

/// The most workers worth starting here: [`WORKERS_PER_CPU`] per available CPU.
pub fn worker_bound() -> usize {
    WORKERS_PER_CPU * available_cpus().len().max(1)
}

/// Descriptors the parent holds per worker (two channel ends, the sentinel, the result pipe),
/// with room for those in transit while one starts.
const FDS_PER_WORKER: u64 = 6;

/// Descriptors kept for everything else (standard streams, signal pipe, state, fork server).
const FDS_BESIDES: u64 = 64;

/// Makes room for `workers` worker processes: raises the soft `RLIMIT_NOFILE` toward the hard
/// limit if their descriptors need it (waits use `poll`, so high numbers are fine), and checks
/// `RLIMIT_NPROC`. Errors with what is missing and how to raise it.
pub fn make_room(workers: usize) -> Result<()> {
    use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};
    let need = FDS_BESIDES + FDS_PER_WORKER * workers as u64;
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < need
    {
        if hard >= need && setrlimit(Resource::RLIMIT_NOFILE, need, hard).is_ok() {
            log::debug!("raised RLIMIT_NOFILE from {soft} to {need} for {workers} workers");
            // A fork server started before kept the old limit, and its children could not
            // place descriptors numbered above it: start a new one, which inherits the new.
            if pifork::forkserver::pid().is_some() {
                pifork::forkserver::stop();
                pifork::forkserver::start()?;
            }
        } else {
            return Err(Error::TooManyWorkers {
                workers,
                limit: "RLIMIT_NOFILE",
                need,
                have: hard,
            });
        }
    }
    // Root is not held to RLIMIT_NPROC; anyone else counts every process of the user.
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NPROC)
        && soft != RLIM_INFINITY
        && !nix::unistd::geteuid().is_root()
        && soft < workers as u64 + 16
    {
        let need = workers as u64 + 16;
        return Err(Error::TooManyWorkers { workers, limit: "RLIMIT_NPROC", need, have: soft });
    }
    Ok(())
}
