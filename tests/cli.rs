//! End-to-end tests of the `pifork` binary: output, exit codes, signals, and that no worker
//! process outlives a run however it ends.

mod common;

use std::process::{Child, Output, Stdio};
use std::time::Duration;

use common::{alive, children_of, descendants, eventually, pifork, settle, stderr};

fn run(args: &[&str]) -> Output {
    pifork().args(args).env_remove("RUST_LOG").output().expect("run pifork")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The value of `"key":` in a flat JSON object (numbers and strings only).
fn json_field<'a>(json: &'a str, key: &str) -> &'a str {
    let start = json.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("no {key} in {json}"))
        + key.len()
        + 3;
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].trim_matches('"')
}

fn estimate(terms: u64, workers: usize) -> f64 {
    let o =
        run(&["pi", "--terms", &terms.to_string(), "--workers", &workers.to_string(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    json_field(&stdout(&o), "estimate").parse().unwrap()
}

/// pi - 4*S_N from the remainder expansion, exact far below f64 precision for N >= 1000.
fn expected(n: u64) -> f64 {
    std::f64::consts::PI - pifork_pi::pi::remainder(n)
}

/// A long run with `start`, its pid, its workers once all have started, and every process
/// below it (the fork server too, with forkserver).
fn start_long_run_with(start: &str, workers: usize) -> (Child, i32, Vec<i32>, Vec<i32>) {
    let child = pifork()
        .args(["pi", "--terms", "1e13", "--workers", &workers.to_string(), "--start", start])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    // Workers are the processes below the parent that have no children of their own.
    let workers_of = |pid: i32| -> Vec<i32> {
        descendants(pid).into_iter().filter(|&p| children_of(p).is_empty()).collect()
    };
    assert!(
        eventually(Duration::from_secs(20), || workers_of(pid).len() == workers),
        "workers never started"
    );
    settle();
    let all = descendants(pid);
    (child, pid, workers_of(pid), all)
}

fn start_long_run(workers: usize) -> (Child, i32, Vec<i32>) {
    let (child, pid, kids, _) = start_long_run_with("fork", workers);
    (child, pid, kids)
}

fn assert_all_gone(pids: &[i32]) {
    assert!(
        eventually(Duration::from_secs(2), || pids.iter().all(|&p| !alive(p))),
        "left behind: {pids:?}"
    );
}

#[test]
fn small_and_exact_cases() {
    assert_eq!(estimate(1, 1), 4.0);
    // 4 * (1 - 1/3) = 8/3 and 4 * (1 - 1/3 + 1/5) = 52/15, to within rounding.
    assert!((estimate(2, 3) - 8.0 / 3.0).abs() <= 4.0 * f64::EPSILON);
    assert!((estimate(3, 2) - 52.0 / 15.0).abs() <= 4.0 * f64::EPSILON);
}

#[test]
fn matches_the_expansion_for_several_n_and_w() {
    for (n, w) in [(1000u64, 1usize), (1001, 2), (123_457, 3), (10_000_000, 2), (33_333_333, 4)] {
        let got = estimate(n, w);
        let want = expected(n);
        assert!(((got - want) / want).abs() < 1e-15, "N={n} W={w}: {got} vs {want}");
    }
}

#[test]
fn ten_to_the_ten_terms_within_1e15() {
    let n = 10_000_000_000u64;
    let got = estimate(n, 2);
    assert!(((got - expected(n)) / expected(n)).abs() < 1e-15, "{got}");
}

#[test]
fn bits_do_not_depend_on_the_worker_count() {
    let n = 30_000_001;
    let bits: Vec<u64> = (1..=4).map(|w| estimate(n, w).to_bits()).collect();
    assert!(bits.iter().all(|&b| b == bits[0]), "{bits:?}");
    let o = run(&["pi", "--terms", "30_000_001", "--workers", "2", "--no-pin", "--json"]);
    assert_eq!(json_field(&stdout(&o), "estimate").parse::<f64>().unwrap().to_bits(), bits[0]);
    assert!(stdout(&o).contains("\"pinned\":null"));
}

#[test]
fn text_report_has_every_field() {
    let o = run(&["pi", "--terms", "1e7", "--workers", "2", "--correct"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "pi estimate:      3.14159255358979",
        "error:",
        "correct decimals: 6",
        "corrected:",
        "wall time:",
        "terms:            10000000  (2 workers",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
    let workers: Vec<&str> = out.lines().filter(|l| l.starts_with("worker ")).collect();
    assert_eq!(workers.len(), 2, "{out}");
    assert!(workers.iter().all(|l| l.contains(" pid ")
        && l.contains(" cpu ")
        && l.contains(" terms ")
        && l.contains(" ms")));
}

#[test]
fn json_is_one_object_with_per_worker_entries() {
    let o = run(&["pi", "--terms", "2e6", "--workers", "2", "--json", "--correct"]);
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1);
    assert!(out.trim_end().starts_with('{') && out.trim_end().ends_with('}'));
    for key in [
        "terms",
        "workers",
        "backend",
        "estimate",
        "error",
        "correct_decimals",
        "wall_ms",
        "corrected",
    ] {
        json_field(&out, key);
    }
    assert_eq!(out.matches("\"pid\":").count(), 2);
    assert_eq!(json_field(&out, "workers"), "2");
}

#[test]
fn more_workers_than_work_is_clamped() {
    let o = run(&["pi", "--terms", "5", "--workers", "64", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_field(&stdout(&o), "workers"), "1");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let cases: &[&[&str]] = &[
        &["pi", "--terms", "0"],
        &["pi", "--workers", "0"],
        &["pi", "--terms", "abc"],
        &["pi", "--terms", "1.5"],
        &["pi", "--terms", "99999999999999999999"],
        &["pi", "--terms", "1e300"],
        &["pi", "--terms", "1e16"],
        &["pi", "--workers", "-1"],
        &["pi", "--bogus"],
        &["pi", "--terms"],
        &["frobnicate"],
        &[],
        &["race", "--workers", "0"],
    ];
    for args in cases {
        let o = run(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("pifork: ") && !err.contains("panicked"), "{args:?}: {err}");
        assert!(stdout(&o).is_empty(), "{args:?}");
    }
}

#[test]
fn help_exits_0() {
    for args in [&["--help"][..], &["pi", "--help"], &["help"]] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        assert!(stdout(&o).contains("Usage: pifork"), "{args:?}");
    }
}

#[test]
fn info_names_the_backend() {
    let o = pifork().arg("info").env_remove("PIFORK_BACKEND").output().unwrap();
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(
        out.contains("kernel: Linux") && out.contains("pidfd: ") && out.contains("cpus: "),
        "{out}"
    );
    let works = out.contains("pidfd: works");
    assert!(out.contains(if works { "backend: pidfd" } else { "backend: pipe" }), "{out}");
    let forced = pifork().arg("info").env("PIFORK_BACKEND", "pipe").output().unwrap();
    assert!(stdout(&forced).contains("backend: pipe"));
}

/// The estimate of `pifork pi --json` for N = 10^8 and 10^9: the same bits on x86_64 and
/// aarch64 and on every kernel path (`make test` runs this suite on both).
const GOLDEN: [(&str, u64); 2] = [("1e8", 0x400921fb52ec942a), ("1e9", 0x400921fb5421d101)];

#[test]
fn every_kernel_path_gives_the_same_bits_on_every_cpu() {
    use pifork_pi::kernel::{self, Path};
    for path in Path::ALL {
        if kernel::check(path).is_err() {
            println!("kernel path {path}: this CPU lacks it, skipped");
            continue;
        }
        for (terms, bits) in GOLDEN {
            for (workers, start) in [("2", "fork"), ("3", "spawn")] {
                let o = pifork()
                    .args([
                        "pi",
                        "--terms",
                        terms,
                        "--workers",
                        workers,
                        "--start",
                        start,
                        "--json",
                    ])
                    .env("PIFORK_KERNEL", path.as_str())
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{path}: {}", stderr(&o));
                let out = stdout(&o);
                assert_eq!(json_field(&out, "kernel"), path.as_str());
                let got = json_field(&out, "estimate").parse::<f64>().unwrap().to_bits();
                assert_eq!(got, bits, "{path} N={terms} W={workers} {start}: {got:#x}");
            }
        }
    }
}

#[test]
fn a_kernel_path_the_cpu_lacks_is_one_line_and_exit_2() {
    use pifork_pi::kernel::{self, Path};
    let lacking = Path::ALL.into_iter().find(|&p| kernel::check(p).is_err()).unwrap();
    for (value, why) in [
        (lacking.as_str(), format!("PIFORK_KERNEL={lacking}: this CPU lacks it")),
        ("sse9", "PIFORK_KERNEL=\"sse9\" is not a kernel path".to_string()),
    ] {
        let o =
            pifork().args(["pi", "--terms", "1e6"]).env("PIFORK_KERNEL", value).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{value}");
        let err = stderr(&o);
        assert!(err.contains(&why) && err.lines().count() == 1, "{err}");
    }
}

#[test]
fn info_names_the_kernel_path() {
    let best = pifork_pi::kernel::best();
    let o = pifork().arg("info").env_remove("PIFORK_KERNEL").output().unwrap();
    assert!(stdout(&o).contains(&format!("pi kernel: {best} (version 2;")), "{}", stdout(&o));
    let forced = pifork().arg("info").env("PIFORK_KERNEL", "baseline").output().unwrap();
    assert!(stdout(&forced).contains("pi kernel: baseline"), "{}", stdout(&forced));
}

#[test]
fn forced_pipe_backend_gives_the_same_bits() {
    let pidfd = estimate(7_000_001, 2);
    let o = pifork()
        .args(["pi", "--terms", "7000001", "--json"])
        .env("PIFORK_BACKEND", "pipe")
        .output()
        .unwrap();
    assert_eq!(json_field(&stdout(&o), "backend"), "pipe");
    assert_eq!(
        json_field(&stdout(&o), "estimate").parse::<f64>().unwrap().to_bits(),
        pidfd.to_bits()
    );
}

#[test]
fn debug_log_shows_forks_pins_chunks_and_reaps() {
    let o = pifork()
        .args(["pi", "--terms", "3e6", "--workers", "2"])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let err = stderr(&o);
    for needle in ["forked PoolWorker-1", "pinned to cpus", "worker-0 finished chunk", "reaped pid"]
    {
        assert!(err.contains(needle), "missing {needle:?} in\n{err}");
    }
}

#[test]
fn killed_worker_fails_the_run_and_is_named() {
    let (child, _pid, kids) = start_long_run(2);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(kids[1]), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("(pid {}) died with exit code -SIGKILL", kids[1])), "{err}");
    assert!(err.contains("worker "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_all_gone(&kids);
}

#[test]
fn killed_parent_takes_its_workers_along() {
    let (mut child, pid, kids) = start_long_run(2);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    child.wait().unwrap();
    assert_all_gone(&kids);
}

fn signalled_run_exits(signal: nix::sys::signal::Signal, code: i32) {
    let (child, pid, kids) = start_long_run(2);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
    assert!(stderr(&o).contains("interrupted by"), "{}", stderr(&o));
    // The parent reaped them before exiting: they are gone, not even zombies.
    assert!(kids.iter().all(|&k| common::stat(k).is_none_or(|(_, ppid)| ppid != pid)));
    assert_all_gone(&kids);
}

#[test]
fn sigterm_exits_143_and_leaves_nothing() {
    signalled_run_exits(nix::sys::signal::Signal::SIGTERM, 143);
}

#[test]
fn sigint_exits_130_and_leaves_nothing() {
    signalled_run_exits(nix::sys::signal::Signal::SIGINT, 130);
}

/// The number after `after ` in a race line, in ms.
fn finish_ms(line: &str) -> Option<f64> {
    let rest = &line[line.find("after ")? + 6..];
    rest.split_whitespace().next()?.parse().ok()
}

#[test]
fn race_reports_the_first_and_terminates_the_rest() {
    let o = run(&["race", "--workers", "3", "--seed", "7", "--terms", "2e7"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let first = out.lines().find(|l| l.starts_with("first: runner ")).expect("a winner");
    let winner: usize = first["first: runner ".len()..].split(' ').next().unwrap().parse().unwrap();
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("runner ")).collect();
    assert_eq!(lines.len(), 3, "{out}");
    let sizes = pifork_pi::race::work_sizes(3, 7, 20_000_000);
    for (i, line) in lines.iter().enumerate() {
        assert!(line.contains(&format!(" terms {} ", sizes[i])), "{out}");
    }
    assert!(lines[winner].contains("exitcode 0 (finished after"), "{out}");
    let best = finish_ms(lines[winner]).unwrap();
    for (i, line) in lines.iter().enumerate().filter(|&(i, _)| i != winner) {
        // A loser was terminated, or happened to finish in the same instant.
        let ok = line.ends_with("exitcode -SIGTERM (terminated)")
            || finish_ms(line).is_some_and(|ms| ms >= best)
            || line.contains("exitcode 0 (terminated)");
        assert!(ok, "runner {i}: {out}");
    }
}

#[test]
fn start_methods_give_identical_bits() {
    let n = "20000003";
    let bits: Vec<u64> = ["fork", "spawn", "forkserver"]
        .iter()
        .map(|m| {
            let o = run(&["pi", "--terms", n, "--workers", "2", "--json", "--start", m]);
            assert!(o.status.success(), "{m}: {}", stderr(&o));
            json_field(&stdout(&o), "estimate").parse::<f64>().unwrap().to_bits()
        })
        .collect();
    assert!(bits.iter().all(|&b| b == bits[0]), "{bits:?}");
}

#[test]
fn killed_worker_fails_alike_under_every_method() {
    for m in ["spawn", "forkserver"] {
        let (child, _pid, workers, all) = start_long_run_with(m, 2);
        let victim = workers[0];
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(victim),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{m}: {err}");
        assert!(
            err.contains(&format!("(pid {victim}) died with exit code -SIGKILL")),
            "{m}: {err}"
        );
        assert_all_gone(&all);
    }
}

#[test]
fn killed_parent_leaves_nothing_under_every_method() {
    for m in ["spawn", "forkserver"] {
        let (mut child, pid, _workers, all) = start_long_run_with(m, 2);
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
            .unwrap();
        child.wait().unwrap();
        assert_all_gone(&all);
    }
}

#[test]
fn sigterm_under_forkserver_exits_143_and_leaves_nothing() {
    let (child, pid, _workers, all) = start_long_run_with("forkserver", 2);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    assert_all_gone(&all);
}

#[test]
fn race_and_bench_take_a_start_method() {
    let o = run(&["race", "--workers", "2", "--terms", "2e6", "--start", "spawn", "--join-all"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).matches("exitcode 0 (finished after").count(), 2, "{}", stdout(&o));
    let o = run(&["bench", "--start-methods"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for m in ["bare fork", "fork", "spawn", "forkserver"] {
        let line = format!("  {m:<11} ");
        assert!(out.lines().any(|l| l.starts_with(&line) && l.ends_with(" us")), "{out}");
    }
    let o = run(&["bench", "--start-methods", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for key in ["\"bare_fork\":", "\"fork\":", "\"spawn\":", "\"forkserver\":"] {
        assert!(out.contains(key), "{out}");
    }
    let o = run(&["pi", "--start", "vfork"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown start method 'vfork'"), "{}", stderr(&o));
}

#[test]
fn bench_measures_state_saving_in_the_directory_it_is_given() {
    let dir = std::env::temp_dir().join(format!("pifork-cli-saving-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let o = run(&["bench", "--state-saving", "--state-dir", d, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with(&format!("{{\"dir\":\"{d}\",")), "{out}");
    let rows: Vec<&str> = out.split("{\"chunks\":").skip(1).collect();
    let chunks: Vec<&str> = rows.iter().map(|r| &r[..r.find(',').unwrap()]).collect();
    assert_eq!(chunks, ["1000", "10000", "100000"], "{out}");
    for row in rows {
        // The journal's record is under 100 bytes; compactions add a bounded share.
        let bytes: f64 = json_field(row, "bytes_per_chunk").parse().unwrap();
        assert!(bytes > 20.0 && bytes < 400.0, "{out}");
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "it left a state behind");
    std::fs::remove_dir(&dir).unwrap();
    let o = run(&["bench", "--state-saving"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("state saving, per finished chunk"), "{}", stdout(&o));
    for (args, says) in [
        (&["bench", "--state-dir", "/tmp"][..], "--state-dir needs --state-saving"),
        (&["bench", "--state-saving", "--state-dir", "/no/such/dir"], "no such directory"),
        (&["bench", "--state-saving", "--state-dir", ""], "must not be empty"),
        (&["bench", "--state-saving", "--start-methods"], "two benchmarks"),
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains(says) && err.lines().count() == 1, "{args:?}: {err}");
    }
}

#[test]
fn race_join_all_waits_for_everyone() {
    let o = run(&["race", "--workers", "3", "--seed", "3", "--terms", "4e6", "--join-all"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.matches("exitcode 0 (finished after").count(), 3, "{out}");
}

#[test]
fn version_and_short_help() {
    for flag in ["--version", "-V"] {
        let o = run(&[flag]);
        assert_eq!(o.status.code(), Some(0), "{flag}: {}", stderr(&o));
        assert_eq!(stdout(&o), format!("pifork {}\n", env!("CARGO_PKG_VERSION")), "{flag}");
    }
    for args in [&["-h"][..], &["pi", "-h"], &["serve", "-h"]] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).starts_with("Usage: pifork"), "{args:?}: {}", stdout(&o));
    }
}

#[test]
fn help_gives_examples_exit_codes_and_environment() {
    let out = stdout(&run(&["--help"]));
    for needle in
        ["Examples:", "pifork pi --terms 1e10", "Error codes:", "PIFORK_BACKEND", "RUST_LOG"]
    {
        assert!(out.contains(needle), "{needle} missing in:\n{out}");
    }
    assert!(out.contains("2 bad usage or configuration"), "{out}");
    let pi = stdout(&run(&["pi", "--help"]));
    assert!(pi.contains("Examples:") && pi.contains("progress line"), "{pi}");
}

#[test]
fn option_values_may_follow_an_equals_sign() {
    let o = run(&["pi", "--terms=1e8", "--workers=2", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_field(&stdout(&o), "terms"), "100000000");
    assert_eq!(json_field(&stdout(&o), "workers"), "2");
    let o = run(&["pi", "--terms=abc"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("'abc' is not a whole number"), "{}", stderr(&o));
}

#[test]
fn an_argument_that_is_not_utf8_is_refused_with_exit_2() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"--terms=\xff1");
    for args in [vec![std::ffi::OsStr::new("pi"), bad], vec![bad]] {
        let o = pifork().args(&args).output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("is not valid UTF-8") && err.contains("\\xFF"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_closed_pipe_ends_quietly() {
    for args in [&["info"][..], &["pi", "--terms", "1e6"], &["--help"]] {
        // A pipe whose reader is gone before the program writes: every write fails with EPIPE.
        let (reader, writer) = nix::unistd::pipe().unwrap();
        drop(reader);
        let o = pifork().args(args).stdout(writer).stderr(Stdio::piped()).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).is_empty(), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn a_failed_write_is_one_line_and_exit_1() {
    for args in [&["info"][..], &["pi", "--terms", "1e6"], &["info", "--json"]] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let o = pifork().args(args).stdout(full).stderr(Stdio::piped()).output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("pifork: cannot write the output: "), "{args:?}: {err}");
    }
}

#[test]
fn more_workers_than_chunks_is_said_on_stderr() {
    let o = run(&["pi", "--terms", "1e8", "--workers", "1000", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let workers = json_field(&stdout(&o), "workers").to_string();
    let err = stderr(&o);
    assert!(
        err.starts_with("pifork: --workers 1000: ")
            && err.contains(&format!("only {workers} chunks, so {workers} workers run")),
        "{err}"
    );
    // Asking for no more than there is to do, or not asking at all, is silent.
    assert!(stderr(&run(&["pi", "--terms", "1e8", "--workers", "2"])).is_empty());
    assert!(stderr(&run(&["pi", "--terms", "1e8"])).is_empty());
}

#[test]
fn race_and_info_print_json() {
    let o = run(&["race", "--workers", "3", "--terms", "1e6", "--seed", "5", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with('{') && out.ends_with("}\n") && out.lines().count() == 1, "{out}");
    assert_eq!(json_field(&out, "seed"), "5");
    assert_eq!(json_field(&out, "runners"), "3");
    assert_eq!(out.matches("\"pid\":").count(), 3, "{out}");
    let winner: usize = json_field(&out, "winner").parse().unwrap();
    assert!(winner < 3, "{out}");
    let o = run(&["info", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with('{') && out.lines().count() == 1, "{out}");
    assert_eq!(json_field(&out, "version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(json_field(&out, "os"), "Linux");
    assert!(["pidfd", "pipe"].contains(&json_field(&out, "backend")), "{out}");
}

/// Runs `pifork ARGS` on a pseudo-terminal (through script(1)) and returns what the terminal
/// showed, stdout and stderr together.
fn on_a_terminal(args: &str) -> String {
    let cmd = pifork();
    let mut line: Vec<String> = vec![cmd.get_program().to_string_lossy().into_owned()];
    line.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    line.push(args.to_string());
    let o = std::process::Command::new("script")
        .args(["-qec", &line.join(" "), "/dev/null"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("script(1), from util-linux");
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

#[test]
fn a_terminal_sees_a_progress_line_that_is_erased_at_the_end() {
    let shown = on_a_terminal("pi --terms 1e9 --workers 2");
    let line = shown.find("\rpi: ").unwrap_or_else(|| panic!("no progress line in {shown:?}"));
    let erased = shown.rfind("\r\x1b[K").expect("the line is erased");
    let report = shown.find("pi estimate:").expect("the report");
    assert!(line < erased && erased < report, "{shown:?}");
    assert!(shown.contains(" chunks, ") && shown.contains(" terms/s, "), "{shown:?}");
    // Not with --json, and never when stderr is not a terminal.
    assert!(!on_a_terminal("pi --terms 1e9 --workers 2 --json").contains(" chunks"));
    let o = run(&["pi", "--terms", "1e9", "--workers", "2"]);
    assert!(o.status.success() && stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn status_without_permission_says_it_needs_sudo() {
    let dir = std::env::temp_dir().join(format!("pifork-status-denied-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = pifork()
        .args(["serve", "--terms", "1e6", "--chunk", "5e5", "--workers", "1", "--exit-when-done"])
        .arg("--state-dir")
        .arg(&dir)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // The directory is the service's alone, as under systemd's StateDirectory=.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o000)).unwrap();
    // A stand-in for systemctl: what systemd publishes, or a failure where there is none.
    let bin = dir.with_extension("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let systemctl = bin.join("systemctl");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let id = std::process::Command::new("id").arg("-u").output().unwrap();
    let as_user = String::from_utf8_lossy(&id.stdout).trim() == "0";
    let status = |published: Option<&str>| {
        let script = match published {
            Some(text) => format!("#!/bin/sh\necho '{text}'\n"),
            None => "#!/bin/sh\nexit 1\n".to_string(),
        };
        std::fs::write(&systemctl, script).unwrap();
        std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut cmd = if as_user {
            // root reads anything: look as an ordinary user would.
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
            let inner = pifork();
            c.arg(inner.get_program()).args(inner.get_args());
            c
        } else {
            pifork()
        };
        cmd.args(["status", "--state-dir"]).arg(&dir).env("PATH", &path).output().unwrap()
    };
    let without = status(None);
    let published = status(Some("3/48 chunks, 12 of 48 terms"));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&bin);
    let err = stderr(&without);
    assert_eq!(without.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("permission denied") && err.contains("sudo pifork status"), "{err}");
    let err = stderr(&published);
    assert_eq!(published.status.code(), Some(0), "{err}");
    assert!(err.contains("sudo pifork status"), "{err}");
    assert_eq!(stdout(&published), "pifork.service: 3/48 chunks, 12 of 48 terms\n");
}

#[test]
fn the_man_page_is_the_help_of_this_build() {
    // scripts/manpage.py writes doc/pifork.1 from the --help texts; `make man` refreshes it.
    let cmd = pifork();
    let root = env!("CARGO_MANIFEST_DIR");
    let o = std::process::Command::new("python3")
        .arg(format!("{root}/scripts/manpage.py"))
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", stderr(&o));
    let page = std::fs::read_to_string(format!("{root}/doc/pifork.1")).unwrap();
    assert!(stdout(&o) == page, "doc/pifork.1 is out of date: run `make man`");
    for section in [".SH EXAMPLES", ".SH ENVIRONMENT", ".SH EXIT STATUS", ".SS serve"] {
        assert!(page.contains(section), "{section} missing");
    }
}

/// `pifork pi ARGS --json` under `--via via` (none: the default) and `--start start`: its
/// estimate's bits and its terms.
fn pi_bits_via(via: Option<&str>, start: &str, terms: &str) -> (u64, u64) {
    let mut args = vec!["pi", "--terms", terms, "--workers", "2", "--json", "--start", start];
    if let Some(via) = via {
        args.extend(["--via", via]);
    }
    let o = run(&args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    let out = stdout(&o);
    let estimate: f64 = json_field(&out, "estimate").parse().unwrap();
    (estimate.to_bits(), json_field(&out, "terms").parse().unwrap())
}

#[test]
fn via_every_way_gives_the_default_bits_under_every_start_method() {
    // 1e6 terms are one chunk; 5e6 are five, shared unevenly between the two workers.
    for terms in ["1e6", "5e6"] {
        for start in ["fork", "spawn", "forkserver"] {
            let default = pi_bits_via(None, start, terms);
            assert_eq!(default.1, if terms == "1e6" { 1_000_000 } else { 5_000_000 });
            for via in ["pipe", "pool", "queue", "shared"] {
                assert_eq!(pi_bits_via(Some(via), start, terms), default, "{via} {start} {terms}");
            }
        }
    }
}

#[test]
fn via_every_way_accounts_for_each_workers_terms() {
    for via in ["pipe", "pool", "queue", "shared"] {
        let o = run(&["pi", "--terms", "5e6", "--workers", "2", "--json", "--via", via]);
        assert!(o.status.success(), "{via}: {}", stderr(&o));
        let out = stdout(&o);
        // The run's terms first, then each worker's.
        let terms: Vec<u64> = out
            .split("\"terms\":")
            .skip(1)
            .map(|rest| rest[..rest.find([',', '}']).unwrap()].parse().unwrap())
            .collect();
        assert_eq!(terms.len(), 3, "{via}: {out}");
        assert_eq!(terms[1] + terms[2], terms[0], "{via}: {out}");
    }
}

#[test]
fn via_bogus_is_one_line_and_exit_2() {
    let o = run(&["pi", "--terms", "1e6", "--via", "bogus"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("--via") && err.contains("bogus"), "{err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn via_bench_sharing_times_every_way_on_the_same_bits() {
    let args = ["bench", "--sharing", "--terms", "5e6", "--max-workers", "2", "--repeat", "3"];
    let o = run(&[&args[..], &["--json"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for via in ["pipe", "pool", "queue", "shared"] {
        assert!(out.contains(&format!("{{\"via\":\"{via}\",\"wall_ms\":")), "{via}: {out}");
    }
    assert_eq!(out.matches("\"same_bits\":true").count(), 4, "{out}");
    let text = stdout(&run(&args));
    assert_eq!(text.lines().count(), 6, "{text}");
    let o = run(&["bench", "--sharing", "--start-methods"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).trim_end().lines().count(), 1, "{}", stderr(&o));
}
