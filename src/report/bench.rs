//! `pifork bench`: the single-core kernel figures, the start+join round trips and the scaling
//! table, with the warnings of a noisy run; and what saving a chunk of the service's state
//! costs.

use std::fmt::Write;
use std::time::Duration;

use super::json::{Array, Fixed, Object};
use super::millis;
use crate::bench::{
    KernelFigures, RoundTrips, SavingRow, ScalingRow, StateSaving, scaling_warnings,
};
use crate::kernel;
use pifork::StartMethod;

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
            millis(row.wall),
            row.speedup,
            100.0 * row.efficiency,
            row.capacity,
            100.0 * row.of_capacity(),
            millis(row.threads),
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
    let _ = writeln!(out, "  {:<11} {:9.1} us", "bare fork", micros(round_trips.bare_fork));
    for (method, d) in &round_trips.methods {
        let _ = writeln!(out, "  {:<11} {:9.1} us", method.as_str(), micros(*d));
    }
    out
}

/// `d` in microseconds, as the round trips show.
fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The round trips as a JSON object: `{"bare_fork":101.2,"fork":123.4,...}` (microseconds).
pub fn round_trips_json(round_trips: &RoundTrips) -> String {
    round_trips_object(round_trips).finish()
}

/// The object of [`round_trips_json`].
fn round_trips_object(round_trips: &RoundTrips) -> Object {
    let us = |d: Duration| Fixed(micros(d), 1);
    let bare_fork = Object::new().field("bare_fork", us(round_trips.bare_fork));
    round_trips.methods.iter().fold(bare_fork, |out, (m, d)| out.field(m.as_str(), us(*d)))
}

/// The one-object JSON form of [`bench_text`].
pub fn bench_json(r: &BenchReport) -> String {
    let k = &r.kernel;
    let others = k
        .other_paths
        .iter()
        .fold(Object::new(), |out, (p, ns)| out.field(p.as_str(), Fixed(*ns, 4)));
    let warnings: Array = k.warnings().iter().chain(&scaling_warnings(&r.rows)).collect();
    Object::new()
        .field("terms", r.terms)
        .field("repeat", r.repeat)
        .field("backend", pifork::backend().as_str())
        .field("kernel_path", k.path.as_str())
        .field("kernel_terms", k.fast_terms)
        .field("slow_loop_terms", k.terms)
        .field("kernel_ns_per_term", Fixed(k.kernel_ns_per_term, 4))
        .field("fp_floor_ns_per_term", Fixed(k.floor_ns_per_term, 4))
        .field("of_fp_floor", Fixed(k.of_floor(), 3))
        .field("plain_ns_per_term", Fixed(k.plain_ns_per_term, 4))
        .field("kernel_speedup", Fixed(k.speedup(), 3))
        .field("division_kernel_ns_per_term", Fixed(k.division_kernel_ns_per_term, 4))
        .field("division_ns", Fixed(k.division_ns, 4))
        .field("of_division_limit", Fixed(k.of_division_limit(), 3))
        .field("other_paths_ns_per_term", others)
        .field("spread", Fixed(k.spread.0, 3))
        .field("warnings", warnings)
        .field("round_trip_us", round_trips_object(&r.round_trips))
        .field("scaling_start", r.start.as_str())
        .field("scaling", r.rows.iter().map(row_object).collect::<Array>())
        .finish()
}

/// One row of the scaling table in [`bench_json`].
fn row_object(row: &ScalingRow) -> Object {
    Object::new()
        .field("workers", row.workers)
        .field("wall_ms", Fixed(millis(row.wall), 3))
        .field("speedup", Fixed(row.speedup, 3))
        .field("efficiency", Fixed(row.efficiency, 3))
        .field("capacity", Fixed(row.capacity, 3))
        .field("of_capacity", Fixed(row.of_capacity(), 3))
        .field("threads_ms", Fixed(millis(row.threads), 3))
}

/// What saving a finished chunk of the service's state costs, per job size, with the
/// warnings of a run that is not flat.
pub fn state_saving_text(r: &StateSaving) -> String {
    let mut out = format!(
        "state saving, per finished chunk (the service's journal, in {}):\n",
        r.dir.display()
    );
    out.push_str("   chunks  median us  mean us  bytes/chunk  compactions  syncs\n");
    for row in &r.rows {
        let _ = writeln!(
            out,
            "  {:7}  {:9.2}  {:7.2}  {:11.1}  {:11}  {:5}",
            row.chunks,
            micros(row.median),
            micros(row.mean),
            row.bytes_per_chunk,
            row.compactions,
            row.syncs
        );
    }
    for w in r.warnings() {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// The one-object JSON form of [`state_saving_text`] (times in microseconds).
pub fn state_saving_json(r: &StateSaving) -> String {
    let row = |row: &SavingRow| {
        Object::new()
            .field("chunks", row.chunks)
            .field("median_us", Fixed(micros(row.median), 3))
            .field("mean_us", Fixed(micros(row.mean), 3))
            .field("bytes_per_chunk", Fixed(row.bytes_per_chunk, 1))
            .field("compactions", row.compactions)
            .field("syncs", row.syncs)
    };
    Object::new()
        .field("dir", r.dir.to_string_lossy().as_ref())
        .field("rows", r.rows.iter().map(row).collect::<Array>())
        .field("warnings", r.warnings().iter().collect::<Array>())
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_saving_reports_are_exact() {
        let row = |chunks, median, mean, bytes_per_chunk, compactions| SavingRow {
            chunks,
            median: Duration::from_nanos(median),
            mean: Duration::from_nanos(mean),
            bytes_per_chunk,
            compactions,
            syncs: 1,
        };
        let mut r = StateSaving {
            dir: "/tmp/\"x".into(),
            rows: vec![row(1000, 812, 7254, 75.975, 1), row(100_000, 838, 2299, 133.02, 8)],
        };
        let text = concat!(
            "state saving, per finished chunk (the service's journal, in /tmp/\"x):\n",
            "   chunks  median us  mean us  bytes/chunk  compactions  syncs\n",
            "     1000       0.81     7.25         76.0            1      1\n",
            "   100000       0.84     2.30        133.0            8      1\n",
        );
        assert_eq!(state_saving_text(&r), text);
        assert_eq!(
            state_saving_json(&r),
            "{\"dir\":\"/tmp/\\\"x\",\"rows\":[{\"chunks\":1000,\"median_us\":0.812,\
             \"mean_us\":7.254,\"bytes_per_chunk\":76.0,\"compactions\":1,\"syncs\":1},\
             {\"chunks\":100000,\"median_us\":0.838,\"mean_us\":2.299,\
             \"bytes_per_chunk\":133.0,\"compactions\":8,\"syncs\":1}],\"warnings\":[]}"
        );
        // Not flat: said, in both forms.
        r.rows[1].median = Duration::from_nanos(2500);
        let warning = "saving a chunk of a job of 100000 chunks took 3.1x what it took at 1000: \
                       not flat, or a noisy run (rerun on an idle machine)";
        assert!(state_saving_text(&r).ends_with(&format!("warning: {warning}\n")));
        assert!(state_saving_json(&r).ends_with(&format!("\"warnings\":[\"{warning}\"]}}")));
    }

    #[test]
    fn non_finite_figures_are_written_as_rust_prints_them() {
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
}
