//! The reports of the `pifork` commands, as text and as one JSON object, and the parsing of the
//! counts they take.

use std::fmt::Write;

use std::time::Duration;

use super::bench::{KernelFigures, RoundTrips, ScalingRow, scaling_warnings};
use super::engine::PiReport;
use super::kernel;
use super::pi;
use super::race::RaceReport;
use super::service::state::{FILE, State};
use pifork::StartMethod;

pub mod json;

pub use json::string as json_string;

/// Parses a count: `100000000`, `100_000_000` or `1e8` (also `2.5e3`); must be a whole number
/// that fits in 64 bits.
///
/// ```
/// use pifork_pi::report::parse_count;
/// assert_eq!(parse_count("1e8"), Ok(100_000_000));
/// assert_eq!(parse_count("2.5e3"), Ok(2500));
/// assert!(parse_count("1.5").is_err());
/// ```
pub fn parse_count(text: &str) -> Result<u64, String> {
    let bad = || format!("'{text}' is not a whole number (use 100000000, 100_000_000 or 1e8)");
    let t = text.trim();
    if t.is_empty() || t.starts_with('_') || t.ends_with('_') || t.contains("__") {
        return Err(bad());
    }
    let t = t.replace('_', "");
    let (mantissa, exponent) = match t.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<u32>().map_err(|_| bad())?),
        None => (t.as_str(), 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let frac = frac.trim_end_matches('0');
    let overflow = || format!("'{text}' is too large");
    let shift = exponent.checked_sub(frac.len() as u32).ok_or_else(bad)?;
    let digits = format!("{int}{frac}");
    let value: u64 = digits.parse().map_err(|_| overflow())?;
    10u64.checked_pow(shift).and_then(|p| value.checked_mul(p)).ok_or_else(overflow)
}

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
    let _ = writeln!(out, "wall time:        {:.1} ms", report.wall.as_secs_f64() * 1e3);
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
            w.busy.as_secs_f64() * 1e3
        );
    }
    out
}

/// The one-object JSON report of `pifork pi --json`.
pub fn pi_json(report: &PiReport, correct: bool) -> String {
    let error = report.estimate - std::f64::consts::PI;
    let mut out = format!(
        "{{\"terms\":{},\"workers\":{},\"backend\":\"{}\",\"estimate\":{:?},\"error\":{:?},\
         \"correct_decimals\":{},\"kernel\":\"{}\",\"wall_ms\":{:.3}",
        report.terms,
        report.workers.len(),
        report.backend.as_str(),
        report.estimate,
        error,
        pi::correct_decimals(report.estimate),
        report.kernel,
        report.wall.as_secs_f64() * 1e3
    );
    if correct {
        let c = pi::corrected(report.estimate, report.terms);
        let _ =
            write!(out, ",\"corrected\":{c:?},\"corrected_error\":{:?}", c - std::f64::consts::PI);
    }
    out.push_str(",\"per_worker\":[");
    for (i, w) in report.workers.iter().enumerate() {
        let opt = |v: Option<usize>| v.map_or("null".to_string(), |c| c.to_string());
        let _ = write!(
            out,
            "{}{{\"index\":{},\"pid\":{},\"cpu\":{},\"pinned\":{},\"chunks\":{},\"terms\":{},\"ms\":{:.3}}}",
            if i > 0 { "," } else { "" },
            w.index,
            w.pid,
            opt(w.cpu),
            opt(w.pinned),
            w.chunks,
            w.terms,
            w.busy.as_secs_f64() * 1e3
        );
    }
    out.push_str("]}");
    out
}

/// Everything `pifork bench` measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Terms per scaling run.
    pub terms: u64,
    /// Runs per figure.
    pub repeat: usize,
    /// Single-core kernel figures.
    pub kernel: KernelFigures,
    /// Median start+join round trip per start method, and the bare fork beside them.
    pub round_trips: RoundTrips,
    /// Start method of the scaling runs.
    pub start: StartMethod,
    /// The scaling table.
    pub rows: Vec<ScalingRow>,
}

/// The table `pifork bench` prints.
pub fn bench_text(r: &BenchReport) -> String {
    let k = &r.kernel;
    let backend = pifork::backend().as_str();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pifork bench: N = {}, medians of {} runs, {backend} backend",
        r.terms, r.repeat
    );
    out.push_str(&kernel_text(k));
    out.push_str(&round_trips_text(&r.round_trips));
    let _ = writeln!(out, "scaling ({} workers):", r.start);
    let _ = writeln!(
        out,
        "  workers   wall ms  speedup  efficiency  capacity  of capacity  threads ms  processes/threads"
    );
    for row in &r.rows {
        let _ = writeln!(
            out,
            "  {:7}  {:8.1}  {:7.2}  {:9.0}%  {:8.2}  {:10.0}%  {:10.1}  {:17.2}",
            row.workers,
            row.wall.as_secs_f64() * 1e3,
            row.speedup,
            100.0 * row.efficiency,
            row.capacity,
            100.0 * row.of_capacity(),
            row.threads.as_secs_f64() * 1e3,
            row.threads.as_secs_f64() / row.wall.as_secs_f64()
        );
    }
    for w in scaling_warnings(&r.rows) {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// The single-core kernel figures of `pifork bench`, with their warnings.
pub fn kernel_text(k: &KernelFigures) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kernel, one core, {} terms ({} for the slow loops), {} path ({}=... forces another):",
        k.fast_terms,
        k.terms,
        k.path,
        kernel::ENV
    );
    let _ = writeln!(out, "  pifork kernel    {:7.3} ns/term", k.kernel_ns_per_term);
    let _ = writeln!(
        out,
        "  FP floor         {:7.3} ns/term  (the kernel's mix, {} ops per 16 terms, on independent \
         accumulators: kernel at {:.0}% of it)",
        k.floor_ns_per_term,
        kernel::OPS_PER_GROUP,
        100.0 * k.of_floor()
    );
    let _ = writeln!(
        out,
        "  plain loop       {:7.3} ns/term  (kernel {:.1}x faster)",
        k.plain_ns_per_term,
        k.speedup()
    );
    let _ = writeln!(
        out,
        "  division kernel  {:7.3} ns/term  (the previous kernel, one division per two terms; \
         kernel {:.1}x faster)",
        k.division_kernel_ns_per_term,
        k.over_division_kernel()
    );
    let _ = writeln!(
        out,
        "  division limit   {:7.3} ns/div   (division kernel: {:.3} ns per division, {:.0}% of \
         the limit)",
        k.division_ns,
        2.0 * k.division_kernel_ns_per_term,
        100.0 * k.of_division_limit()
    );
    for (path, ns) in &k.other_paths {
        let _ = writeln!(out, "  {:<16} {ns:7.3} ns/term  (same bits)", format!("{path} path"));
    }
    for w in k.warnings() {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// The start+join round trips, side by side, after the bare fork they compare with.
pub fn round_trips_text(round_trips: &RoundTrips) -> String {
    let mut out =
        String::from("start+join round trip, median (bare fork: fork, _exit, waitpid alone):\n");
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let _ = writeln!(out, "  {:<11} {:9.1} us", "bare fork", us(round_trips.bare_fork));
    for (method, d) in &round_trips.methods {
        let _ = writeln!(out, "  {:<11} {:9.1} us", method.as_str(), us(*d));
    }
    out
}

/// The round trips as a JSON object: `{"bare_fork":101.2,"fork":123.4,...}` (microseconds).
pub fn round_trips_json(round_trips: &RoundTrips) -> String {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mut fields = vec![format!("\"bare_fork\":{:.1}", us(round_trips.bare_fork))];
    fields.extend(
        round_trips.methods.iter().map(|(m, d)| format!("\"{}\":{:.1}", m.as_str(), us(*d))),
    );
    format!("{{{}}}", fields.join(","))
}

/// The one-object JSON form of [`bench_text`].
pub fn bench_json(r: &BenchReport) -> String {
    let k = &r.kernel;
    let others: Vec<String> =
        k.other_paths.iter().map(|(p, ns)| format!("\"{p}\":{ns:.4}")).collect();
    let warnings: Vec<String> =
        k.warnings().iter().chain(&scaling_warnings(&r.rows)).map(|w| format!("{w:?}")).collect();
    let mut out = format!(
        "{{\"terms\":{},\"repeat\":{},\"backend\":\"{}\",\"kernel_path\":\"{}\",\
         \"kernel_terms\":{},\"slow_loop_terms\":{},\"kernel_ns_per_term\":{:.4},\"fp_floor_ns_per_term\":{:.4},\
         \"of_fp_floor\":{:.3},\"plain_ns_per_term\":{:.4},\"kernel_speedup\":{:.3},\
         \"division_kernel_ns_per_term\":{:.4},\"division_ns\":{:.4},\"of_division_limit\":{:.3},\
         \"other_paths_ns_per_term\":{{{}}},\"spread\":{:.3},\"warnings\":[{}],\
         \"round_trip_us\":{},\"scaling_start\":\"{}\",\"scaling\":[",
        r.terms,
        r.repeat,
        pifork::backend().as_str(),
        k.path,
        k.fast_terms,
        k.terms,
        k.kernel_ns_per_term,
        k.floor_ns_per_term,
        k.of_floor(),
        k.plain_ns_per_term,
        k.speedup(),
        k.division_kernel_ns_per_term,
        k.division_ns,
        k.of_division_limit(),
        others.join(","),
        k.spread.0,
        warnings.join(","),
        round_trips_json(&r.round_trips),
        r.start
    );
    for (i, row) in r.rows.iter().enumerate() {
        let _ = write!(
            out,
            "{}{{\"workers\":{},\"wall_ms\":{:.3},\"speedup\":{:.3},\"efficiency\":{:.3},\"capacity\":{:.3},\"of_capacity\":{:.3},\"threads_ms\":{:.3}}}",
            if i > 0 { "," } else { "" },
            row.workers,
            row.wall.as_secs_f64() * 1e3,
            row.speedup,
            row.efficiency,
            row.capacity,
            row.of_capacity(),
            row.threads.as_secs_f64() * 1e3
        );
    }
    out.push_str("]}");
    out
}

/// Rate (terms per second of computing) and the seconds left at that rate.
fn rate_and_eta(state: &State) -> (Option<f64>, Option<f64>) {
    let done = state.terms_done();
    let rate = (state.elapsed > 0.0 && done > 0).then(|| done as f64 / state.elapsed);
    let eta = rate.map(|r| (state.terms - done) as f64 / r);
    (rate, eta)
}

/// `pifork status`: the service's progress, read from its state.
pub fn status_text(state: &State, dir: &std::path::Path) -> String {
    let mut out = String::new();
    let done = state.terms_done();
    let (rate, eta) = rate_and_eta(state);
    let _ = writeln!(out, "state:       {}", dir.join(FILE).display());
    let _ = writeln!(
        out,
        "terms done:  {done} of {} ({:.2}%)",
        state.terms,
        100.0 * done as f64 / state.terms as f64
    );
    let _ = writeln!(out, "chunks done: {} of {}", state.done.len(), state.chunks());
    match state.estimate() {
        Some(e) => {
            let _ = writeln!(
                out,
                "estimate:    {e:.15} (first {} terms), error {:+.3e}",
                state.prefix_terms(),
                e - std::f64::consts::PI
            );
        }
        None => out.push_str("estimate:    none yet\n"),
    }
    match rate {
        Some(r) => {
            let _ = writeln!(out, "rate:        {r:.3e} terms/s over {:.1} s", state.elapsed);
        }
        None => out.push_str("rate:        unknown yet\n"),
    }
    if state.complete() {
        out.push_str("eta:         done\n");
    } else if let Some(eta) = eta {
        let _ = writeln!(out, "eta:         {eta:.0} s");
    }
    out
}

/// `pifork status --json`.
pub fn status_json(state: &State) -> String {
    let (rate, eta) = rate_and_eta(state);
    let num = |v: Option<f64>| v.map_or("null".to_string(), |x| format!("{x:?}"));
    format!(
        "{{\"terms\":{},\"chunk\":{},\"terms_done\":{},\"chunks_done\":{},\"chunks\":{},\
         \"estimate\":{},\"estimate_terms\":{},\"error\":{},\"elapsed_s\":{:.3},\"rate\":{},\
         \"eta_s\":{},\"complete\":{}}}",
        state.terms,
        state.chunk,
        state.terms_done(),
        state.done.len(),
        state.chunks(),
        num(state.estimate()),
        state.prefix_terms(),
        num(state.estimate().map(|e| e - std::f64::consts::PI)),
        state.elapsed,
        num(rate),
        num(if state.complete() { Some(0.0) } else { eta }),
        state.complete()
    )
}

/// The plain-text report of `pifork race`.
pub fn race_text(report: &RaceReport) -> String {
    let mut out = String::new();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let _ = writeln!(out, "race: {} runners, seed {}", report.runners.len(), report.seed);
    let w = &report.runners[report.winner];
    let _ = writeln!(
        out,
        "first: runner {} (pid {}, {} terms) after {:.1} ms",
        w.index,
        w.pid,
        w.terms,
        ms(w.finished.unwrap_or_default())
    );
    for r in &report.runners {
        let when = r
            .finished
            .map_or(String::from("terminated"), |d| format!("finished after {:.1} ms", ms(d)));
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
    let runners: Vec<String> = report
        .runners
        .iter()
        .map(|r| {
            format!(
                "{{\"index\":{},\"pid\":{},\"terms\":{},\"exitcode\":{},\"finished_ms\":{}}}",
                r.index,
                r.pid,
                r.terms,
                r.exitcode.code(),
                r.finished.map_or("null".into(), |d| format!("{:.3}", d.as_secs_f64() * 1e3))
            )
        })
        .collect();
    format!(
        "{{\"seed\":{},\"runners\":{},\"winner\":{},\"per_runner\":[{}]}}",
        report.seed,
        report.runners.len(),
        report.winner,
        runners.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::WorkerReport;

    #[test]
    fn parses_counts() {
        assert_eq!(parse_count("100000000"), Ok(100_000_000));
        assert_eq!(parse_count("100_000_000"), Ok(100_000_000));
        assert_eq!(parse_count("1e8"), Ok(100_000_000));
        assert_eq!(parse_count("1E3"), Ok(1000));
        assert_eq!(parse_count("2.5e3"), Ok(2500));
        assert_eq!(parse_count("2.50e1"), Ok(25));
        assert_eq!(parse_count("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_count("0"), Ok(0));
    }

    #[test]
    fn rejects_bad_counts() {
        for bad in
            ["", "abc", "-5", "1.5", "1e", "e5", "1_", "_1", "1__0", "2.55e1", "1e-3", "+3", "0x10"]
        {
            assert!(parse_count(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            parse_count("18446744073709551616"),
            Err("'18446744073709551616' is too large".into())
        );
        assert_eq!(parse_count("1e20"), Err("'1e20' is too large".into()));
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a \"b\" \\ c\n\u{1}"), "\"a \\\"b\\\" \\\\ c\\n\\u0001\"");
    }

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
    fn non_finite_figures_are_written_as_rust_prints_them() {
        let json = pi_json(&two_workers(f64::NAN), true);
        assert!(json.contains("\"estimate\":NaN,\"error\":NaN,"), "{json}");
        assert!(json.contains("\"corrected\":NaN,\"corrected_error\":NaN,"), "{json}");
        let json = pi_json(&two_workers(f64::INFINITY), false);
        assert!(json.contains("\"estimate\":inf,\"error\":inf,"), "{json}");
        let mut bench = noisy_bench();
        bench.kernel.kernel_ns_per_term = 0.0;
        bench.rows[1].capacity = 0.0;
        let json = bench_json(&bench);
        assert!(json.contains("\"kernel_ns_per_term\":0.0000,"), "{json}");
        assert!(json.contains("\"of_fp_floor\":inf,"), "{json}");
        assert!(json.contains("\"kernel_speedup\":inf,"), "{json}");
        assert!(json.contains("\"capacity\":0.000,\"of_capacity\":inf,"), "{json}");
    }

    /// A bench that warns of its spread, of the division limit and of the scaling.
    fn noisy_bench() -> BenchReport {
        let row = |workers, wall, speedup, efficiency, capacity, threads| ScalingRow {
            workers,
            wall: Duration::from_nanos(wall),
            speedup,
            efficiency,
            capacity,
            threads: Duration::from_nanos(threads),
        };
        BenchReport {
            terms: 1_000_000,
            repeat: 3,
            kernel: KernelFigures {
                terms: 1_048_576,
                fast_terms: 10_485_760,
                path: crate::kernel::Path::Baseline,
                kernel_ns_per_term: 0.0184,
                plain_ns_per_term: 1.04412,
                division_kernel_ns_per_term: 0.48093,
                division_ns: 0.99584,
                floor_ns_per_term: 0.0151,
                other_paths: vec![(crate::kernel::Path::Baseline, 0.91525)],
                spread: (0.123456, "plain loop"),
            },
            round_trips: RoundTrips {
                methods: vec![
                    (StartMethod::Fork, Duration::from_nanos(146_849)),
                    (StartMethod::Spawn, Duration::from_nanos(1_194_351)),
                ],
                bare_fork: Duration::from_nanos(57_949),
            },
            start: StartMethod::Fork,
            rows: vec![
                row(1, 295_123, 1.0, 1.0, 1.0, 540_456),
                row(2, 2_878_999, 1.9, 0.95, 1.837, 65_001),
            ],
        }
    }

    #[test]
    fn bench_reports_are_exact() {
        let backend = pifork::backend().as_str();
        let json = "{\"terms\":1000000,\"repeat\":3,\"backend\":\"BACKEND\",\
            \"kernel_path\":\"baseline\",\"kernel_terms\":10485760,\"slow_loop_terms\":1048576,\
            \"kernel_ns_per_term\":0.0184,\"fp_floor_ns_per_term\":0.0151,\"of_fp_floor\":0.821,\
            \"plain_ns_per_term\":1.0441,\
            \"kernel_speedup\":56.746,\"division_kernel_ns_per_term\":0.4809,\
            \"division_ns\":0.9958,\"of_division_limit\":1.035,\
            \"other_paths_ns_per_term\":{\"baseline\":0.9153},\"spread\":0.123,\
            \"warnings\":[\"noisy run: the plain loop repeats spread by 12% (above 10%); rerun on \
            an idle machine\",\"noisy run: 103.5% of the division limit, above the 100% a core \
            can deliver\",\"noisy run: 2 workers at 103.4% of capacity, above the 100% the \
            machine can deliver\"],\"round_trip_us\":{\"bare_fork\":57.9,\"fork\":146.8,\
            \"spawn\":1194.4},\"scaling_start\":\"fork\",\"scaling\":[{\"workers\":1,\
            \"wall_ms\":0.295,\"speedup\":1.000,\"efficiency\":1.000,\"capacity\":1.000,\
            \"of_capacity\":1.000,\"threads_ms\":0.540},{\"workers\":2,\"wall_ms\":2.879,\
            \"speedup\":1.900,\"efficiency\":0.950,\"capacity\":1.837,\"of_capacity\":1.034,\
            \"threads_ms\":0.065}]}";
        assert_eq!(bench_json(&noisy_bench()), json.replace("BACKEND", backend));
        let text = concat!(
            "pifork bench: N = 1000000, medians of 3 runs, BACKEND backend\n",
            "kernel, one core, 10485760 terms (1048576 for the slow loops), baseline path \
            (PIFORK_KERNEL=... forces another):\n",
            "  pifork kernel      0.018 ns/term\n",
            "  FP floor           0.015 ns/term  (the kernel's mix, 15 ops per 16 terms, on \
            independent accumulators: kernel at 82% of it)\n",
            "  plain loop         1.044 ns/term  (kernel 56.7x faster)\n",
            "  division kernel    0.481 ns/term  (the previous kernel, one division per two \
            terms; kernel 26.1x faster)\n",
            "  division limit     0.996 ns/div   (division kernel: 0.962 ns per division, 104% of \
            the limit)\n",
            "  baseline path      0.915 ns/term  (same bits)\n",
            "warning: noisy run: the plain loop repeats spread by 12% (above 10%); rerun on an \
            idle machine\n",
            "warning: noisy run: 103.5% of the division limit, above the 100% a core can \
            deliver\n",
            "start+join round trip, median (bare fork: fork, _exit, waitpid alone):\n",
            "  bare fork        57.9 us\n",
            "  fork            146.8 us\n",
            "  spawn          1194.4 us\n",
            "scaling (fork workers):\n",
            "  workers   wall ms  speedup  efficiency  capacity  of capacity  threads ms  \
            processes/threads\n",
            "        1       0.3     1.00        100%      1.00         100%         \
            0.5               1.83\n",
            "        2       2.9     1.90         95%      1.84         103%         \
            0.1               0.02\n",
            "warning: noisy run: 2 workers at 103.4% of capacity, above the 100% the machine can \
            deliver\n",
        );
        assert_eq!(bench_text(&noisy_bench()), text.replace("BACKEND", backend));
        assert_eq!(
            round_trips_json(&noisy_bench().round_trips),
            "{\"bare_fork\":57.9,\"fork\":146.8,\"spawn\":1194.4}"
        );
    }

    /// A state of 10 chunks of which the first `done` are finished but for the fourth (all
    /// ten when `done` is 10).
    fn state(done: u64) -> State {
        let mut state = State::new(10_000_000, 1_000_000);
        state.elapsed = 1.23456;
        for i in (0..done).filter(|&i| i != 3 || done == 10) {
            let (first, last) = state.bounds(i);
            state.done.insert(i, pi::partial_sum(first, last));
        }
        state
    }

    #[test]
    fn status_reports_are_exact() {
        assert_eq!(
            status_json(&state(0)),
            "{\"terms\":10000000,\"chunk\":1000000,\"terms_done\":0,\"chunks_done\":0,\
            \"chunks\":10,\"estimate\":null,\"estimate_terms\":0,\"error\":null,\
            \"elapsed_s\":1.235,\"rate\":null,\"eta_s\":null,\"complete\":false}"
        );
        assert_eq!(
            status_json(&state(5)),
            "{\"terms\":10000000,\"chunk\":1000000,\"terms_done\":4000000,\"chunks_done\":4,\
            \"chunks\":10,\"estimate\":3.1415923202564597,\"estimate_terms\":3000000,\
            \"error\":-3.33333333379926e-7,\"elapsed_s\":1.235,\"rate\":3240020.736132711,\
            \"eta_s\":1.8518400000000002,\"complete\":false}"
        );
        assert_eq!(
            status_json(&state(10)),
            "{\"terms\":10000000,\"chunk\":1000000,\"terms_done\":10000000,\"chunks_done\":10,\
            \"chunks\":10,\"estimate\":3.141592553589793,\"estimate_terms\":10000000,\
            \"error\":-1.0000000028043132e-7,\"elapsed_s\":1.235,\"rate\":8100051.840331777,\
            \"eta_s\":0.0,\"complete\":true}"
        );
        let dir = std::path::Path::new("/x");
        let text = concat!(
            "state:       /x/state\n",
            "terms done:  4000000 of 10000000 (40.00%)\n",
            "chunks done: 4 of 10\n",
            "estimate:    3.141592320256460 (first 3000000 terms), error -3.333e-7\n",
            "rate:        3.240e6 terms/s over 1.2 s\n",
            "eta:         2 s\n",
        );
        assert_eq!(status_text(&state(5), dir), text);
        let text = concat!(
            "state:       /x/state\n",
            "terms done:  0 of 10000000 (0.00%)\n",
            "chunks done: 0 of 10\n",
            "estimate:    none yet\n",
            "rate:        unknown yet\n",
        );
        assert_eq!(status_text(&state(0), dir), text);
    }

    #[test]
    fn race_reports_are_exact() {
        use crate::race::Runner;
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
