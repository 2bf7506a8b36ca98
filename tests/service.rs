//! `pifork serve` and `pifork status` end to end: the systemd notification protocol, stops and
//! kills at random points (storms of them while it records) with resumption to the same bits,
//! damaged and unwritable state.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{alive, descendants, emulated, eventually, pifork, settle, stderr};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pifork_pi::service::state::State;

/// A fresh, empty directory under the system's temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pifork-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The job every test runs, 100 chunks: long enough to interrupt, short enough to finish —
/// about a second natively; ten times smaller under an emulator (`PIFORK_RUNNER`), which
/// divides some thirty times slower.
fn job() -> (&'static str, &'static str) {
    if emulated() { ("4e8", "4e6") } else { ("4e10", "4e8") }
}

fn serve(dir: &Path) -> Command {
    let (terms, chunk) = job();
    serve_job(dir, terms, chunk)
}

/// `serve` of `terms` in chunks of `chunk` on `dir`, exiting when done.
fn serve_job(dir: &Path, terms: &str, chunk: &str) -> Command {
    let mut cmd = pifork();
    cmd.args(["serve", "--terms", terms, "--chunk", chunk, "--workers", "2", "--exit-when-done"])
        .arg("--state-dir")
        .arg(dir)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .env_remove("STATE_DIRECTORY")
        .env_remove("WATCHDOG_USEC")
        .env_remove("RUST_LOG");
    cmd
}

fn spawn(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// The `result` line of a finished state: the final bits.
fn result_bits(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("state")).unwrap();
    let line = text.lines().find_map(|l| l.strip_prefix("result ")).expect("a finished state");
    // The bits, not the line's checksum (which covers the elapsed time too).
    line.split(' ').next().unwrap_or_default().to_string()
}

/// The chunks recorded in the state of `dir` (snapshot and journal), as `pifork status` reads
/// them; 0 if there is no state yet.
fn recorded(dir: &Path) -> usize {
    State::load(dir).unwrap().map_or(0, |s| s.done.len())
}

/// The final bits of one uninterrupted run (computed once per test binary).
fn uninterrupted() -> String {
    static BITS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BITS.get_or_init(|| {
        let dir = temp_dir("reference");
        let o = serve(&dir).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        result_bits(&dir)
    })
    .clone()
}

/// Waits until the run has its two workers going; returns them.
fn workers_of(pid: i32) -> Vec<i32> {
    let mut workers = Vec::new();
    let started = eventually(Duration::from_secs(30), || {
        workers = descendants(pid);
        workers.len() >= 2
    });
    assert!(started, "no workers");
    settle();
    workers
}

#[test]
fn notifies_ready_status_watchdog_and_stopping_in_order() {
    let dir = temp_dir("notify");
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut cmd = serve(&dir.join("state"));
    cmd.env("NOTIFY_SOCKET", &socket_path).env("WATCHDOG_USEC", "100000");
    let mut child = spawn(cmd);
    let pid = Pid::from_raw(child.id() as i32);
    let mut seen: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    // Collect until READY, a STATUS and a WATCHDOG have arrived, then stop the service.
    while !(seen.iter().any(|m| m == "READY=1")
        && seen.iter().any(|m| m.starts_with("STATUS="))
        && seen.iter().any(|m| m == "WATCHDOG=1"))
    {
        let n = socket.recv(&mut buf).expect("a notification within 30 s");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let signalled = Instant::now();
    kill(pid, Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    let took = signalled.elapsed();
    while let Ok(n) = {
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        socket.recv(&mut buf)
    } {
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
    assert!(took < Duration::from_secs(2), "stopped in {took:?}");
    let first = |what: &str| seen.iter().position(|m| m.starts_with(what)).unwrap();
    assert!(first("READY=1") < first("WATCHDOG=1"), "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("STOPPING=1"), "{seen:?}");
    let status_line = seen.iter().find(|m| m.starts_with("STATUS=")).unwrap();
    assert!(status_line.contains(" chunks, ") && status_line.contains(" terms"), "{status_line}");
}

#[test]
fn sigterm_then_restart_resumes_to_the_same_bits() {
    let dir = temp_dir("resume");
    let child = spawn(serve(&dir));
    let pid = child.id() as i32;
    let tree = workers_of(pid);
    // Stopped once a chunk is recorded (however slow the machine), well before the last.
    assert!(eventually(Duration::from_secs(60), || recorded(&dir) > 0), "no chunk recorded");
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("stopping on SIGTERM"), "{}", stderr(&o));
    assert!(tree.iter().all(|&p| !alive(p)), "workers were reaped before exit");
    let o = serve(&dir).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("pifork serve: resumed from"), "{}", stderr(&o));
    assert_eq!(result_bits(&dir), uninterrupted());
}

#[test]
fn sigkill_at_random_points_loses_nothing_and_keeps_the_bits() {
    let dir = temp_dir("kill");
    let mut seed = std::process::id() as u64 | 1;
    let mut kills = 0;
    let mut progress = Vec::new();
    for _ in 0..5 {
        let mut child = spawn(serve(&dir));
        let pid = child.id() as i32;
        // Up once its two workers are; a run that finds the job done exits without any (the
        // previous kill may have landed after the last chunk was saved).
        let mut exited = None;
        let up = eventually(Duration::from_secs(30), || {
            exited = child.try_wait().unwrap();
            exited.is_some() || descendants(pid).len() >= 2
        });
        assert!(up, "no workers");
        if exited.is_some() {
            break;
        }
        // xorshift: a delay of 10..130 ms after the workers are up (the whole job takes
        // about half a second natively).
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(10 + seed % 120));
        let tree = descendants(pid);
        if kill(Pid::from_raw(pid), Signal::SIGKILL).is_err() {
            break;
        }
        let status = child.wait().unwrap();
        if status.success() {
            break; // it finished first
        }
        kills += 1;
        assert!(
            eventually(Duration::from_secs(2), || tree.iter().all(|&p| !alive(p))),
            "a worker outlived its SIGKILLed parent"
        );
        progress.push(recorded(&dir));
    }
    assert!(kills >= 3, "only {kills} kills landed before the run finished");
    eprintln!("{kills} SIGKILLs landed; finished chunks after each: {progress:?}");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "finished chunks were lost: {progress:?}");
    let o = serve(&dir).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(result_bits(&dir), uninterrupted(), "after {kills} kills ({progress:?})");
}

/// `serve` of a job of many small chunks (20,000, natively and under an emulator), whose
/// recording never stops: the journal grows by a record every few microseconds and is
/// compacted on the way.
fn serve_small_chunks(dir: &Path) -> Command {
    // The same job under an emulator: recording, not the kernel, is what it exercises, and a
    // smaller one could finish before the first kill lands.
    serve_job(dir, "2e8", "1e4")
}

/// The `result` bits of an uninterrupted run of [`serve_small_chunks`].
fn small_chunks_uninterrupted() -> String {
    let dir = temp_dir("storm-reference");
    let o = serve_small_chunks(&dir).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    result_bits(&dir)
}

#[test]
fn sigkill_storms_while_it_records_lose_nothing_and_keep_the_bits() {
    let reference = small_chunks_uninterrupted();
    let dir = temp_dir("storm");
    let mut seed = (std::process::id() as u64) << 1 | 1;
    let scale = if emulated() { 10 } else { 1 };
    let (mut kills, mut progress, mut torn, mut compacting) = (0, Vec::new(), 0, 0);
    for _ in 0..40 {
        let child = spawn(serve_small_chunks(&dir));
        // xorshift: 1..30 ms after the start, at any point of loading, compacting, recording.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(scale * (1 + seed % 30)));
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        let o = child.wait_with_output().unwrap();
        if o.status.success() {
            break; // it finished first
        }
        assert_eq!(o.status.code(), None, "not killed but failed: {}", stderr(&o));
        kills += 1;
        // Caught mid-append, or mid-compaction (a temporary file left)?
        torn += std::fs::read(dir.join("journal")).is_ok_and(|j| j.last() != Some(&b'\n')) as u32;
        compacting += std::fs::read_dir(&dir)
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().contains(".tmp."))
            as u32;
        // Whatever the moment, what is there reads: never a refusal.
        if dir.join("state").exists() {
            let o = pifork().args(["status", "--state-dir"]).arg(&dir).output().unwrap();
            assert!(o.status.success(), "after kill {kills}: {}", stderr(&o));
        }
        progress.push(recorded(&dir));
        if State::load(&dir).unwrap().is_some_and(|s| s.complete()) {
            break; // killed after the last chunk was recorded
        }
    }
    eprintln!(
        "{kills} SIGKILLs landed while recording ({torn} mid-append, {compacting} \
         mid-compaction); chunks recorded after each: {progress:?}"
    );
    assert!(kills >= 5, "only {kills} kills landed before the run finished");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "recorded chunks were lost: {progress:?}");
    assert!(progress.last() > progress.first(), "no progress between kills: {progress:?}");
    let o = serve_small_chunks(&dir).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(result_bits(&dir), reference, "after {kills} kills ({progress:?})");
}

#[test]
fn a_killed_worker_is_restarted_and_its_chunk_redone() {
    let dir = temp_dir("worker");
    let child = spawn(serve(&dir));
    let pid = child.id() as i32;
    let workers = workers_of(pid);
    kill(Pid::from_raw(workers[0]), Signal::SIGKILL).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("died with exit code -SIGKILL; restarting it"), "{}", stderr(&o));
    assert_eq!(result_bits(&dir), uninterrupted());
}

#[test]
fn damaged_or_foreign_state_is_refused_and_left_untouched() {
    let dir = temp_dir("corrupt");
    let (terms, chunk) = job();
    let number = |s: &str| s.parse::<f64>().unwrap() as u64;
    let header =
        format!("pifork-state v2\nkernel 2\nterms {}\nchunk {}\n", number(terms), number(chunk));
    let cases = [
        (format!("{header}elapsed 1\ndone 0 zz\nend 1\n"), "is corrupt at line 6"),
        (format!("{header}elapsed 1\ndone 0 3fe921fb54442d18\n"), "is corrupt"),
        ("pifork-state v9\nwhatever\n".to_string(), "is not a pifork-state v3 file"),
        (
            "pifork-state v2\nkernel 2\nterms 5\nchunk 1\nelapsed 0\nend 0\n".to_string(),
            "is for --terms 5 --chunk 1",
        ),
        (
            format!(
                "pifork-state v1\nterms {}\nchunk {}\nelapsed 0\nend 0\n",
                number(terms),
                number(chunk)
            ),
            "to restart the job from the beginning, move the file away",
        ),
        ("\u{0}\u{1}binary".to_string(), "is corrupt"),
        (
            format!("{header}elapsed 1\nend 0\n").replace('\n', "\r\n"),
            "the header \"pifork-state v2\" ends with a carriage return (CR, \\r",
        ),
        (
            format!("{header}elapsed 1\nend 0\n").replacen('\n', " \n", 1),
            "the header \"pifork-state v2\" ends with a trailing space",
        ),
        (format!("{header}elapsed 1\r\nend 0\n"), "line 5: the line ends with a carriage return"),
    ];
    for (text, why) in cases {
        std::fs::write(dir.join("state"), &text).unwrap();
        let o = serve(&dir).output().unwrap();
        let err = stderr(&o);
        // A configuration error: a restart cannot fix it (the unit's RestartPreventExitStatus).
        assert_eq!(o.status.code(), Some(2), "{why}: {err}");
        assert!(err.contains(why), "{why}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert_eq!(std::fs::read_to_string(dir.join("state")).unwrap(), text, "never overwritten");
    }
    let o = pifork().args(["status", "--state-dir"]).arg(&dir).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_read_only_state_dir_is_a_clear_error() {
    let dir = temp_dir("readonly");
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    let o = if root {
        // Root writes through permissions; a read-only mount it cannot.
        let runner = std::env::var("PIFORK_RUNNER").unwrap_or_default();
        let (terms, chunk) = job();
        let script = format!(
            "mount -t tmpfs -o ro tmpfs '{d}' && exec {runner} '{bin}' serve --terms {terms} \
             --chunk {chunk} --state-dir '{d}'",
            d = dir.display(),
            bin = env!("CARGO_BIN_EXE_pifork"),
        );
        Command::new("unshare").args(["--mount", "sh", "-c", &script]).output().unwrap()
    } else {
        let mut perms = std::fs::metadata(&dir).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o555);
        std::fs::set_permissions(&dir, perms).unwrap();
        serve(&dir).output().unwrap()
    };
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    // The lock file is the first thing created there.
    assert!(err.contains("cannot create") && err.contains("/lock"), "{err}");
    assert!(err.contains("Read-only file system") || err.contains("Permission denied"), "{err}");
}

#[test]
fn serve_without_the_right_to_write_its_directory_says_what_to_do() {
    let dir = temp_dir("unwritable");
    let mut perms = std::fs::metadata(&dir).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o555);
    std::fs::set_permissions(&dir, perms).unwrap();
    let plain = serve(&dir);
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    let o = if root {
        // root writes through permissions: serve as an ordinary user would.
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        c.arg(plain.get_program()).args(plain.get_args());
        c.env_remove("NOTIFY_SOCKET").env_remove("STATE_DIRECTORY").env_remove("RUST_LOG");
        c.output().unwrap()
    } else {
        let mut plain = plain;
        plain.output().unwrap()
    };
    let _ = std::fs::remove_dir_all(&dir);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot create") && err.contains("Permission denied"), "{err}");
    assert!(err.contains("give --state-dir a directory of yours"), "{err}");
}

#[test]
fn a_flag_after_state_dir_is_not_taken_for_its_value() {
    let o = pifork().args(["serve", "--state-dir", "--exit-when-done"]).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--state-dir needs a directory, not the flag --exit-when-done"), "{err}");
    assert!(!Path::new("--exit-when-done").exists(), "a directory was made of the flag");
    let o = pifork().args(["status", "--state-dir", "-x"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // A directory whose name starts with '-' is still reachable, as ./-name.
    let dir = temp_dir("dash");
    let named = dir.join("-d");
    std::fs::create_dir_all(&named).unwrap();
    let o = pifork().current_dir(&dir).args(["status", "--state-dir", "./-d"]).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(stderr(&o).contains("no such file"), "{}", stderr(&o));
}

#[test]
fn status_reports_progress_while_it_runs_and_sighup_logs_it() {
    let dir = temp_dir("status");
    let child = spawn(serve(&dir));
    let pid = child.id() as i32;
    workers_of(pid);
    assert!(eventually(Duration::from_secs(30), || recorded(&dir) > 0));
    let o = pifork().args(["status", "--json", "--state-dir"]).arg(&dir).output().unwrap();
    let json = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", stderr(&o));
    let terms = job().0.parse::<f64>().unwrap() as u64;
    let terms_key = format!("\"terms\":{terms},");
    for key in [
        terms_key.as_str(),
        "\"chunks\":100",
        "\"chunks_done\":",
        "\"complete\":",
        "\"rate\":",
        "\"eta_s\":",
    ] {
        assert!(json.contains(key), "{key} in {json}");
    }
    kill(Pid::from_raw(pid), Signal::SIGHUP).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let log = stderr(&o);
    assert!(
        log.lines().any(|l| l.contains("pifork serve: status: ") && l.contains(" chunks, ")),
        "{log}"
    );
    let o = pifork().args(["status", "--state-dir"]).arg(&dir).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains(&format!("terms done:  {terms} of {terms} (100.00%)")), "{text}");
    assert!(text.contains("eta:         done"), "{text}");
}

/// `serve` with stderr on a file that `JOURNAL_STREAM` names (as systemd connects the journal's
/// stream), or names wrongly; its log.
fn serve_to_journal(dir: &Path, matching: bool, extra: &[(&str, &str)]) -> (Output, String) {
    use std::os::unix::fs::MetadataExt;
    let log = dir.with_extension("log");
    let file = std::fs::File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    let stream = if matching {
        format!("{}:{}", meta.dev(), meta.ino())
    } else {
        format!("{}:{}", meta.dev(), meta.ino() + 1)
    };
    let mut cmd = serve(dir);
    cmd.env("JOURNAL_STREAM", stream).stderr(file).envs(extra.iter().copied());
    let o = cmd.output().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    (o, text)
}

#[test]
fn journal_lines_carry_priorities_and_no_timestamps() {
    let dir = temp_dir("journal");
    let (o, log) = serve_to_journal(&dir, true, &[]);
    assert!(o.status.success(), "{log}");
    assert!(log.lines().any(|l| l.starts_with("<6>pifork serve: ")), "{log}");
    assert!(log.lines().any(|l| l.starts_with("<6>pifork serve: done")), "{log}");
    assert!(log.lines().all(|l| l.starts_with('<') && !l.contains("[INFO")), "{log}");
    // Progress at most once per tenth of the chunks (and per few minutes): not per chunk.
    let progress = log.lines().filter(|l| l.contains(" chunks, ")).count();
    assert!((1..=10).contains(&progress), "{progress} progress lines:\n{log}");
    // A variable inherited by a process whose stderr is elsewhere is not the journal.
    let dir = temp_dir("journal-other");
    let (o, log) = serve_to_journal(&dir, false, &[]);
    assert!(o.status.success(), "{log}");
    assert!(!log.contains("<6>") && log.contains("pifork serve: done"), "{log}");
}

#[test]
fn a_state_of_other_parameters_is_an_error_priority_line_and_exit_2() {
    use std::os::unix::fs::MetadataExt;
    let dir = temp_dir("journal-fatal");
    let o = serve(&dir).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let (terms, chunk) = job();
    let other = (terms.parse::<f64>().unwrap() as u64 * 2).to_string();
    let log_file = dir.with_extension("log");
    let file = std::fs::File::create(&log_file).unwrap();
    let meta = file.metadata().unwrap();
    let o = pifork()
        .args(["serve", "--terms", &other, "--chunk", chunk, "--state-dir"])
        .arg(&dir)
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env("INVOCATION_ID", "0123456789abcdef")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("STATE_DIRECTORY")
        .stderr(file)
        .output()
        .unwrap();
    let log = std::fs::read_to_string(&log_file).unwrap();
    let _ = std::fs::remove_file(&log_file);
    assert_eq!(o.status.code(), Some(2), "{log}");
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(log.starts_with("<3>pifork: state file "), "{log}");
    assert!(log.contains("systemctl clean --what=state pifork"), "{log}");
}

#[test]
fn sighup_to_the_whole_process_group_only_logs_the_status() {
    let dir = temp_dir("hup-group");
    // Ten times the usual job, stopped long before its end: the workers must still be there
    // to be counted after the signals, however fast the machine.
    let (terms, chunk) = job();
    let terms = (terms.parse::<f64>().unwrap() * 10.0).to_string();
    let mut cmd = serve_job(&dir, &terms, chunk);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = spawn(cmd);
    let pid = child.id() as i32;
    let workers = workers_of(pid);
    assert!(eventually(Duration::from_secs(60), || recorded(&dir) > 0), "no chunk recorded");
    // As `systemctl kill -s HUP pifork` does: every process of the unit, workers included.
    for _ in 0..5 {
        nix::sys::signal::killpg(Pid::from_raw(pid), Signal::SIGHUP).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let dead: Vec<i32> = workers.iter().copied().filter(|&w| !alive(w)).collect();
    let ended = child.try_wait().unwrap();
    if !dead.is_empty() || ended.is_some() {
        if ended.is_none() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let o = child.wait_with_output().unwrap();
        panic!(
            "after SIGHUP, workers {dead:?} of {workers:?} gone, service {}: {}",
            o.status,
            stderr(&o)
        );
    }
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    let o = child.wait_with_output().unwrap();
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("pifork serve: status: "), "{log}");
    assert!(!log.contains("restarting it") && !log.contains("died"), "{log}");
}

#[test]
fn a_stopped_worker_starves_the_watchdog_then_is_replaced() {
    let dir = temp_dir("stopped");
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut cmd = serve(&dir.join("state"));
    // Fed every 50 ms while the work progresses.
    cmd.env("NOTIFY_SOCKET", &socket_path).env("WATCHDOG_USEC", "100000");
    let mut child = spawn(cmd);
    let pid = child.id() as i32;
    let stopped = workers_of(pid)[0];
    kill(Pid::from_raw(stopped), Signal::SIGSTOP).unwrap();
    let since = Instant::now();
    // Watchdog pings by the time they came, until the service exits.
    let mut pings = Vec::new();
    let mut buf = [0u8; 4096];
    while child.try_wait().unwrap().is_none() {
        assert!(since.elapsed() < Duration::from_secs(120), "still running after 120 s");
        if let Ok(n) = socket.recv(&mut buf)
            && &buf[..n] == b"WATCHDOG=1"
        {
            pings.push(since.elapsed());
        }
    }
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(&format!("(pid {stopped}) has held chunk")), "no late warning: {err}");
    assert!(err.contains("stopped or hung, killed; restarting it"), "{err}");
    assert!(!alive(stopped));
    // Late after 2 s (longer only if chunks took over 0.2 s: allow up to 6 s), stuck and
    // replaced after 10 s: in between the watchdog starves.
    let starved = pings.iter().filter(|t| (6..9).contains(&t.as_secs())).count();
    assert_eq!(starved, 0, "the watchdog was fed while a worker was stuck: {pings:?}");
    assert!(pings.iter().any(|t| t.as_secs() < 1), "never fed before the stop: {pings:?}");
    assert_eq!(result_bits(&dir.join("state")), uninterrupted());
}
