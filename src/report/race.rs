//! `pifork race`: the runners, which finished first, and how each ended.

use std::fmt::Write;

use super::json::{Array, Fixed, Object};
use super::millis;
use crate::race::{RaceReport, Runner};

/// The plain-text report of `pifork race`.
pub fn race_text(report: &RaceReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "race: {} runners, seed {}", report.runners.len(), report.seed);
    let w = &report.runners[report.winner];
    let _ = writeln!(
        out,
        "first: runner {} (pid {}, {} terms) after {:.1} ms",
        w.index,
        w.pid,
        w.terms,
        millis(w.finished.unwrap_or_default())
    );
    for r in &report.runners {
        let when = r
            .finished
            .map_or(String::from("terminated"), |d| format!("finished after {:.1} ms", millis(d)));
        let _ = writeln!(
            out,
            "runner {}: pid {} terms {} exitcode {} ({when})",
            r.index, r.pid, r.terms, r.exitcode
        );
    }
    out
}

/// The one-object JSON report of `pifork race --json`: `finished_ms` is null for a runner
/// that was terminated; `exitcode` is CPython's integer (minus the signal number).
pub fn race_json(report: &RaceReport) -> String {
    Object::new()
        .field("seed", report.seed)
        .field("runners", report.runners.len())
        .field("winner", report.winner)
        .field("per_runner", report.runners.iter().map(runner_object).collect::<Array>())
        .finish()
}

/// One runner's part of [`race_json`].
fn runner_object(r: &Runner) -> Object {
    Object::new()
        .field("index", r.index)
        .field("pid", r.pid)
        .field("terms", r.terms)
        .field("exitcode", r.exitcode.code())
        .field("finished_ms", r.finished.map(|d| Fixed(millis(d), 3)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn race_reports_are_exact() {
        let report = RaceReport {
            seed: 7,
            winner: 1,
            runners: vec![
                Runner {
                    index: 0,
                    pid: 201,
                    terms: 20_984_301,
                    exitcode: pifork::ExitCode::Signaled(15),
                    finished: None,
                },
                Runner {
                    index: 1,
                    pid: 202,
                    terms: 13_406_430,
                    exitcode: pifork::ExitCode::Exited(0),
                    finished: Some(Duration::from_nanos(526_501)),
                },
            ],
        };
        assert_eq!(
            race_json(&report),
            "{\"seed\":7,\"runners\":2,\"winner\":1,\"per_runner\":[{\"index\":0,\"pid\":201,\
            \"terms\":20984301,\"exitcode\":-15,\"finished_ms\":null},{\"index\":1,\"pid\":202,\
            \"terms\":13406430,\"exitcode\":0,\"finished_ms\":0.527}]}"
        );
        let text = concat!(
            "race: 2 runners, seed 7\n",
            "first: runner 1 (pid 202, 13406430 terms) after 0.5 ms\n",
            "runner 0: pid 201 terms 20984301 exitcode -SIGTERM (terminated)\n",
            "runner 1: pid 202 terms 13406430 exitcode 0 (finished after 0.5 ms)\n",
        );
        assert_eq!(race_text(&report), text);
    }
}
