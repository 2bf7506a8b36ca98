//! `pifork pi`: the estimate, its error, and what each worker did.

use std::fmt::Write;

use super::json::{Array, Fixed, Object};
use super::millis;
use crate::engine::PiReport;
use crate::pi;
use crate::pool::WorkerReport;

/// The plain-text report of `pifork pi`.
pub fn pi_text(report: &PiReport, correct: bool) -> String {
    let mut out = String::new();
    let error = report.estimate - std::f64::consts::PI;
    let _ = writeln!(out, "pi estimate:      {:.15}", report.estimate);
    let _ = writeln!(out, "error:            {error:+.3e}");
    let _ = writeln!(out, "correct decimals: {}", pi::correct_decimals(report.estimate));
    if correct {
        let c = pi::corrected(report.estimate, report.terms);
        let _ =
            writeln!(out, "corrected:        {c:.15}  (error {:+.3e})", c - std::f64::consts::PI);
    }
    let _ = writeln!(
        out,
        "terms:            {}  ({} workers, {} backend, {} kernel)",
        report.terms,
        report.workers.len(),
        report.backend.as_str(),
        report.kernel
    );
    let _ = writeln!(out, "wall time:        {:.1} ms", millis(report.wall));
    for w in &report.workers {
        let _ = writeln!(
            out,
            "worker {}: pid {} cpu {} pinned {} chunks {} terms {} busy {:.1} ms",
            w.index,
            w.pid,
            w.cpu.map_or("?".into(), |c| c.to_string()),
            w.pinned.map_or("no".into(), |c| c.to_string()),
            w.chunks,
            w.terms,
            millis(w.busy)
        );
    }
    out
}

/// The one-object JSON report of `pifork pi --json`.
pub fn pi_json(report: &PiReport, correct: bool) -> String {
    pi_object(report, correct).finish()
}

/// The object of [`pi_json`], open for the fields a larger report adds.
pub(crate) fn pi_object(report: &PiReport, correct: bool) -> Object {
    let mut out = Object::new()
        .field("terms", report.terms)
        .field("workers", report.workers.len())
        .field("backend", report.backend.as_str())
        .field("estimate", report.estimate)
        .field("error", report.estimate - std::f64::consts::PI)
        .field("correct_decimals", pi::correct_decimals(report.estimate))
        .field("kernel", report.kernel.as_str())
        .field("wall_ms", Fixed(millis(report.wall), 3));
    if correct {
        let c = pi::corrected(report.estimate, report.terms);
        out = out.field("corrected", c).field("corrected_error", c - std::f64::consts::PI);
    }
    out.field("per_worker", report.workers.iter().map(worker_object).collect::<Array>())
}

/// One worker's part of [`pi_json`]: `cpu` and `pinned` are null when unknown or unpinned.
fn worker_object(w: &WorkerReport) -> Object {
    Object::new()
        .field("index", w.index)
        .field("pid", w.pid)
        .field("cpu", w.cpu)
        .field("pinned", w.pinned)
        .field("chunks", w.chunks)
        .field("terms", w.terms)
        .field("ms", Fixed(millis(w.busy), 3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn json_has_every_field() {
        let report = PiReport {
            terms: 1000,
            estimate: 3.25,
            wall: Duration::from_millis(5),
            workers: vec![WorkerReport {
                index: 0,
                pid: 42,
                pinned: Some(1),
                cpu: None,
                chunks: 1,
                terms: 1000,
                busy: Duration::from_millis(2),
            }],
            backend: pifork::Backend::Pipe,
            kernel: crate::kernel::Path::Baseline,
        };
        let json = pi_json(&report, true);
        assert!(
            json.starts_with(
                "{\"terms\":1000,\"workers\":1,\"backend\":\"pipe\",\"estimate\":3.25,"
            ),
            "{json}"
        );
        assert!(json.contains("\"correct_decimals\":0,\"kernel\":\"baseline\","));
        assert!(json.contains("\"corrected\":"));
        assert!(json.ends_with(
            "\"per_worker\":[{\"index\":0,\"pid\":42,\"cpu\":null,\"pinned\":1,\"chunks\":1,\"terms\":1000,\"ms\":2.000}]}"
        ));
    }

    /// A report of two workers: one pinned to the CPU it ran on, one neither pinned nor placed.
    fn two_workers(estimate: f64) -> PiReport {
        let worker = |index, pid, placed: Option<usize>, terms, busy| WorkerReport {
            index,
            pid,
            pinned: placed,
            cpu: placed,
            chunks: 5,
            terms,
            busy,
        };
        PiReport {
            terms: 10_000_000,
            estimate,
            wall: Duration::from_micros(680_123),
            workers: vec![
                worker(0, 101, Some(0), 5_242_880, Duration::from_nanos(119_456_789)),
                worker(1, 102, None, 4_757_120, Duration::from_micros(140)),
            ],
            backend: pifork::Backend::Pidfd,
            kernel: crate::kernel::Path::Baseline,
        }
    }

    #[test]
    fn pi_reports_are_exact() {
        assert_eq!(
            pi_json(&two_workers(3.1415925535897933), true),
            "{\"terms\":10000000,\"workers\":2,\"backend\":\"pidfd\",\
            \"estimate\":3.1415925535897933,\"error\":-9.999999983634211e-8,\
            \"correct_decimals\":6,\"kernel\":\"baseline\",\"wall_ms\":680.123,\
            \"corrected\":3.141592653589793,\"corrected_error\":0.0,\"per_worker\":[{\"index\":0,\
            \"pid\":101,\"cpu\":0,\"pinned\":0,\"chunks\":5,\"terms\":5242880,\"ms\":119.457},\
            {\"index\":1,\"pid\":102,\"cpu\":null,\"pinned\":null,\"chunks\":5,\"terms\":4757120,\
            \"ms\":0.140}]}"
        );
        let text = concat!(
            "pi estimate:      3.141592553589793\n",
            "error:            -1.000e-7\n",
            "correct decimals: 6\n",
            "corrected:        3.141592653589793  (error +0.000e0)\n",
            "terms:            10000000  (2 workers, pidfd backend, baseline kernel)\n",
            "wall time:        680.1 ms\n",
            "worker 0: pid 101 cpu 0 pinned 0 chunks 5 terms 5242880 busy 119.5 ms\n",
            "worker 1: pid 102 cpu ? pinned no chunks 5 terms 4757120 busy 0.1 ms\n",
        );
        assert_eq!(pi_text(&two_workers(3.1415925535897933), true), text);
    }

    #[test]
    fn non_finite_estimates_are_written_as_rust_prints_them() {
        let json = pi_json(&two_workers(f64::NAN), true);
        assert!(json.contains("\"estimate\":NaN,\"error\":NaN,"), "{json}");
        assert!(json.contains("\"corrected\":NaN,\"corrected_error\":NaN,"), "{json}");
        let json = pi_json(&two_workers(f64::INFINITY), false);
        assert!(json.contains("\"estimate\":inf,\"error\":inf,"), "{json}");
    }
}
