//! The round trip: the start+join of a process that does nothing, per start method, beside a
//! bare `fork` + `_exit` + `waitpid`, the least a process can cost here.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::waitpid;

use super::stats::median;
use super::{bare_fork, check, failed};
use crate::engine::Cancel;
use crate::error::{Error, Result};
use pifork::{ExitCode, NOOP_ENTRY, Process, StartMethod};

/// Median start+join round trip of a process that does nothing, started with `method`.
pub fn round_trip(
    method: StartMethod,
    repeat: usize,
    cancel: Option<Cancel<'_>>,
) -> Result<Duration> {
    let samples = (0..repeat.max(1)).map(|_| one_round_trip(method, cancel));
    Ok(median(&mut samples.collect::<Result<Vec<_>>>()?))
}

/// One start+join of a process that does nothing; the process is dropped (its descriptors
/// closed) after the clock stops. A process that did not exit with 0 (it could not start
/// its entry, or was killed) is an error: its time measures nothing.
fn one_round_trip(method: StartMethod, cancel: Option<Cancel<'_>>) -> Result<Duration> {
    check(cancel)?;
    let start = Instant::now();
    let mut p = match method {
        StartMethod::Fork => Process::new(|| ()),
        other => Process::entry(NOOP_ENTRY, &()).start_method(other),
    };
    p.start().map_err(|e| failed(cancel, e))?;
    p.join().map_err(|e| failed(cancel, e))?;
    let elapsed = start.elapsed();
    match p.exitcode()? {
        Some(code) if code.success() => Ok(elapsed),
        code => Err(failed(
            cancel,
            Error::MeasurementFailed {
                what: format!("a {method} start+join round trip"),
                exitcode: code.unwrap_or(ExitCode::Signaled(9)),
            },
        )),
    }
}

/// The round trips of every start method, and a bare fork to compare them with.
#[derive(Debug, Clone)]
pub struct RoundTrips {
    /// Median start+join round trip per start method.
    pub methods: Vec<(StartMethod, Duration)>,
    /// Median of a bare `fork` + `_exit` + `waitpid`.
    pub bare_fork: Duration,
}

/// Round trips per turn when the bare fork and the fork method alternate.
const BLOCK: usize = 25;

/// Round trips measured per start method (`runs` each, a quarter of that for spawn), and a
/// bare fork (no pipe, no pidfd, a blocking `waitpid`). The bare fork and the fork method
/// take turns in blocks of `BLOCK`, so that both see the machine in the same states while
/// neither runs right after the other's children.
pub fn round_trips(runs: usize, cancel: Option<Cancel<'_>>) -> Result<RoundTrips> {
    let runs = runs.max(1);
    let (mut bare, mut fork) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    while fork.len() < runs {
        let n = BLOCK.min(runs - fork.len());
        for _ in 0..n {
            let start = Instant::now();
            bare_fork_round_trip().map_err(|e| failed(cancel, e))?;
            bare.push(start.elapsed());
        }
        for _ in 0..n {
            fork.push(one_round_trip(StartMethod::Fork, cancel)?);
        }
    }
    let mut methods = vec![(StartMethod::Fork, median(&mut fork))];
    for method in [StartMethod::Spawn, StartMethod::Forkserver] {
        let n = if method == StartMethod::Spawn { runs.div_ceil(4) } else { runs };
        methods.push((method, round_trip(method, n, cancel)?));
    }
    Ok(RoundTrips { methods, bare_fork: median(&mut bare) })
}

/// One bare round trip: `fork`, `_exit(0)` in the child at once, `waitpid` in the parent —
/// what a fork costs with nothing around it.
fn bare_fork_round_trip() -> Result<()> {
    let os = |op| move |e: Errno| Error::Os { op, source: e.into() };
    let child = bare_fork::fork_and_exit().map_err(os("fork"))?;
    loop {
        match waitpid(child, None) {
            Err(Errno::EINTR) => continue,
            reaped => return reaped.map(drop).map_err(os("waitpid")),
        }
    }
}
