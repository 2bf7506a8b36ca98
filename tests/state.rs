//! The service's state directory under attack, end to end through the `pifork` binary:
//! damaged and crafted state files and journals, journals cut short, links and special files
//! at every name the writer uses, two services on one directory, a file system full before
//! the start or while the service records, and job sizes and paths that are refused before
//! anything is done. Every refusal is one line, prompt, and leaves the files as they were.

mod common;

use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{emulated, eventually, pifork, stderr};
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::unistd::{Pid, mkfifo};
use pifork_pi::pi::partial_sum;
use pifork_pi::service::state::{
    JOURNAL, LOCK_FILE, Lock, MAX_BYTES, MAX_JOURNAL_BYTES, State, Store, TEMP_NAMES, seal,
    temp_name,
};

/// The small job of these tests: 4 chunks, done in milliseconds.
const TERMS: u64 = 4000;
const CHUNK: u64 = 1000;

/// A fresh, empty directory under the system's temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pifork-state-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// True if the tests run as root (as CI does).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

fn clean(mut cmd: Command) -> Command {
    cmd.env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .env_remove("STATE_DIRECTORY")
        .env_remove("WATCHDOG_USEC")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// `pifork serve` of the small job on `dir`, exiting when done.
fn serve(dir: &Path) -> Command {
    serve_job(dir, &TERMS.to_string(), &CHUNK.to_string())
}

/// `pifork serve` of `terms` in chunks of `chunk` on `dir`, exiting when done.
fn serve_job(dir: &Path, terms: &str, chunk: &str) -> Command {
    let mut cmd = pifork();
    cmd.args(["serve", "--terms", terms, "--chunk", chunk])
        .args(["--workers", "2", "--exit-when-done", "--state-dir"])
        .arg(dir);
    clean(cmd)
}

/// The bits of the `result` line of the finished state in `dir`.
fn result_bits(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("state")).unwrap();
    let line = text.lines().find_map(|l| l.strip_prefix("result ")).expect("a finished state");
    line.split(' ').next().unwrap().to_string()
}

/// The small job's final bits, from an uninterrupted run.
fn small_job_bits() -> String {
    let dir = temp_dir("small-reference");
    let o = run(serve(&dir));
    assert!(o.status.success(), "{}", stderr(&o));
    result_bits(&dir)
}

/// Records `chunks` of the small job in `dir` as the service does (a snapshot without them,
/// a journal with them); the snapshot's and the journal's bytes.
fn journaled(dir: &Path, chunks: &[u64]) -> (Vec<u8>, Vec<u8>) {
    let lock = Lock::acquire(dir).unwrap();
    let (mut store, mut state) = Store::open(dir, &lock, TERMS, CHUNK).unwrap();
    for &i in chunks {
        let (a, b) = state.bounds(i);
        state.elapsed = 0.5 + i as f64;
        store.record(&mut state, i, partial_sum(a, b)).unwrap();
    }
    store.sync().unwrap();
    drop((store, lock));
    let journal = std::fs::read(dir.join(JOURNAL)).unwrap();
    (std::fs::read(dir.join("state")).unwrap(), journal)
}

fn status(dir: &Path) -> Command {
    let mut cmd = pifork();
    cmd.args(["status", "--state-dir"]).arg(dir);
    clean(cmd)
}

/// Runs `cmd` to its end, failing the test (and killing it) if it takes longer than `limit`:
/// a hang is a failure, never a stuck suite.
fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd.spawn().expect("start pifork");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("hung for {limit:?}: {:?}; stderr: {}", cmd, stderr(&o));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.wait_with_output().unwrap()
}

/// `script` run by `sh` in a mount namespace of its own (where it mounts a small tmpfs); None,
/// after saying so, where this machine cannot make one (the script exits 77 when its mount
/// fails).
fn in_own_mounts(script: &str) -> Option<Output> {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "sh", "-c", script]);
    let o = run(clean(cmd));
    if o.status.code() == Some(77) || stderr(&o).contains("unshare: ") {
        eprintln!("skipped: cannot mount a tmpfs here: {}", stderr(&o).trim());
        return None;
    }
    Some(o)
}

fn run(cmd: Command) -> Output {
    run_bounded(cmd, Duration::from_secs(if emulated() { 120 } else { 20 }))
}

/// Asserts `o` failed with exit code `code` and exactly one line on stderr containing `why`.
fn assert_refused(o: &Output, code: i32, why: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{why}: {err}");
    assert_eq!(err.lines().count(), 1, "{why}: not one line: {err}");
    assert!(err.contains(why), "{why}: {err}");
}

/// A state of the small job with chunks 0 and 2 done, or every chunk (with its result).
fn small_state(complete: bool) -> State {
    let mut s = State::new(TERMS, CHUNK);
    s.elapsed = 0.25;
    for i in 0..4 {
        if complete || i % 2 == 0 {
            let (a, b) = s.bounds(i);
            s.record(i, partial_sum(a, b)).unwrap();
        }
    }
    s
}

#[test]
fn every_bit_flip_in_every_record_is_refused_and_left_untouched() {
    let dir = temp_dir("flips");
    let path = dir.join("state");
    let (mut tried, mut refused) = (0, 0);
    // Natively every bit for `status`; under an emulator every 13th (the unit tests flip every
    // bit of the same files on every target).
    let stride = if emulated() { 13 } else { 1 };
    for state in [small_state(false), small_state(true)] {
        let text = state.to_text().into_bytes();
        let kinds = ["kernel", "terms", "chunk", "elapsed", "done", "end"];
        let lines = String::from_utf8_lossy(&text).into_owned();
        assert!(kinds.iter().all(|k| lines.contains(&format!("\n{k} "))), "{lines}");
        for (n, flip) in (0..text.len() * 8).step_by(stride).enumerate() {
            let mut bad = text.clone();
            bad[flip / 8] ^= 1 << (flip % 8);
            std::fs::write(&path, &bad).unwrap();
            tried += 1;
            let o = run(status(&dir));
            assert_refused(&o, 2, &path.display().to_string());
            // `serve` too, for one flip in eight (every byte natively).
            if n % 8 == 0 {
                let o = run(serve(&dir));
                assert_refused(&o, 2, &path.display().to_string());
            }
            assert_eq!(std::fs::read(&path).unwrap(), bad, "flip {flip}: the file was changed");
            refused += 1;
        }
    }
    eprintln!("damaged state files (single bit flips): {tried} tried, {refused} refused");
    assert_eq!(tried, refused);
}

#[test]
fn crafted_sums_with_valid_checksums_are_refused() {
    let dir = temp_dir("crafted");
    let path = dir.join("state");
    let good = small_state(false).to_text();
    let unsealed: String = good
        .lines()
        .enumerate()
        .map(|(i, l)| if i == 0 { l } else { l.rsplit_once(' ').unwrap().0 })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(seal(&unsealed), good);
    let sum0 = partial_sum(1, CHUNK);
    let bits = |x: f64| format!("{:016x}", x.to_bits());
    let crafted = [
        f64::NAN,
        0.0,
        -0.0,
        f64::INFINITY,
        -sum0,
        sum0 * (1.0 + 1e-9),
        partial_sum(CHUNK + 1, 2 * CHUNK),
        std::f64::consts::FRAC_PI_4,
    ];
    for sum in crafted {
        let text = seal(&unsealed.replace(&bits(sum0), &bits(sum)));
        std::fs::write(&path, &text).unwrap();
        for cmd in [status(&dir), serve(&dir)] {
            assert_refused(&run(cmd), 2, "is not the series'");
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "{sum}: the file was changed");
    }
    // A header for more chunks than a state may hold is refused before anything is sized
    // by it.
    let huge = seal(
        &unsealed
            .replace("chunk 1000\n", "chunk 1\n")
            .replace(&format!("terms {TERMS}\n"), &format!("terms {}\n", 1u64 << 50)),
    );
    std::fs::write(&path, &huge).unwrap();
    assert_refused(&run(status(&dir)), 2, "more than 1000000 chunks");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), huge);
    eprintln!("crafted state files: {} tried, all refused", crafted.len() + 1);
}

#[test]
fn a_v2_file_is_checked_and_rewritten_as_v3() {
    let dir = temp_dir("v2");
    let path = dir.join("state");
    let v3 = small_state(false).to_text();
    let v2: String = v3
        .lines()
        .enumerate()
        .map(|(i, l)| if i == 0 { "pifork-state v2" } else { l.rsplit_once(' ').unwrap().0 })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, &v2).unwrap();
    let o = run(status(&dir));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("chunks done: 2 of 4"));
    let o = run(serve(&dir));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("pifork-state v3\n") && text.contains("\nend 4 "), "{text}");
    // Its finished chunks were kept, not redone: the same bits as a fresh run's.
    let fresh = temp_dir("v2-fresh");
    assert!(run(serve(&fresh)).status.success());
    let result = |t: &str| {
        let line = t.lines().find(|l| l.starts_with("result ")).unwrap();
        line.split(' ').nth(1).unwrap().to_string()
    };
    assert_eq!(result(&text), result(&std::fs::read_to_string(fresh.join("state")).unwrap()));
}

/// A file outside the state directory that the writer must never write: its bytes and
/// mode, to compare after.
struct Victim {
    path: PathBuf,
    bytes: Vec<u8>,
    mode: u32,
}

impl Victim {
    fn new(dir: &Path) -> Victim {
        let path = dir.join("victim");
        std::fs::write(&path, b"root-only secret\n").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        Victim { bytes: std::fs::read(&path).unwrap(), mode: 0o100600, path }
    }

    fn assert_untouched(&self, what: &str) {
        assert_eq!(std::fs::read(&self.path).unwrap(), self.bytes, "{what}: victim written");
        let mode = std::fs::metadata(&self.path).unwrap().mode();
        assert_eq!(mode, self.mode, "{what}: victim's mode changed");
    }
}

#[test]
fn links_at_every_name_the_writer_uses_are_not_followed() {
    let outside = temp_dir("links-outside");
    let victim = Victim::new(&outside);
    let mut planted = 0;
    // Every temporary name of the snapshot and of the journal (and the old `state.tmp`),
    // symbolic and hard links in turn, and a dangling link whose target must not be created;
    // the writer uses the first free name.
    let mut names = vec![PathBuf::from("state.tmp")];
    for file in ["state", JOURNAL] {
        names.extend((0..TEMP_NAMES - 1).map(|n| temp_name(Path::new(""), file, n)));
    }
    for hard in [false, true] {
        let dir = temp_dir(if hard { "hardlinks" } else { "symlinks" });
        for (i, name) in names.iter().enumerate() {
            let at = dir.join(name);
            if hard {
                std::fs::hard_link(&victim.path, &at).unwrap();
            } else if i % 2 == 0 {
                symlink(&victim.path, &at).unwrap();
            } else {
                symlink(outside.join(format!("created-{i}")), &at).unwrap();
            }
            planted += 1;
        }
        let o = run(serve(&dir));
        assert!(o.status.success(), "{}", stderr(&o));
        victim.assert_untouched(if hard { "hard links" } else { "symbolic links" });
        assert!((0..names.len()).all(|i| !outside.join(format!("created-{i}")).exists()));
        let state = State::load(&dir).unwrap().expect("a state");
        assert!(state.complete());
    }
    // Every temporary name taken by a link: the write fails with one line, nothing followed
    // (the journal's names: the snapshot is written, not the journal that would follow it).
    for file in ["state", JOURNAL] {
        let dir = temp_dir("alllinks");
        for n in 0..TEMP_NAMES {
            symlink(&victim.path, temp_name(&dir, file, n)).unwrap();
            planted += 1;
        }
        assert_refused(&run(serve(&dir)), 1, "temporary names");
        victim.assert_untouched("every name taken");
        assert!(!dir.join(file).exists());
    }
    // A link at the state file, the journal or the lock file: refused, nothing written
    // through it.
    let names = [
        ("state", false),
        ("state", true),
        (JOURNAL, false),
        (JOURNAL, true),
        (LOCK_FILE, false),
        (LOCK_FILE, true),
    ];
    for (name, hard) in names {
        let dir = temp_dir("link-at");
        let at = dir.join(name);
        if hard {
            std::fs::hard_link(&victim.path, &at).unwrap();
        } else {
            symlink(&victim.path, &at).unwrap();
        }
        planted += 1;
        let why = match (name, hard) {
            (LOCK_FILE, true) => "other hard links",
            (_, true) => "is corrupt",
            _ => "is a symbolic link",
        };
        assert_refused(&run(serve(&dir)), 2, why);
        if name != LOCK_FILE {
            assert_refused(&run(status(&dir)), 2, why);
        }
        victim.assert_untouched(name);
    }
    // A good journal that has another name besides: read, but never appended to.
    let dir = temp_dir("journal-linked");
    let (_, journal) = journaled(&dir, &[1]);
    let other = outside.join("journal-copy");
    std::fs::hard_link(dir.join(JOURNAL), &other).unwrap();
    planted += 1;
    assert!(run(status(&dir)).status.success());
    assert_refused(&run(serve(&dir)), 2, "other hard links");
    assert_eq!(std::fs::read(&other).unwrap(), journal, "written through a hard link");
    eprintln!("links planted in state directories: {planted}, none followed");
}

#[test]
fn special_files_are_refused_at_once() {
    let limit = Duration::from_secs(if emulated() { 60 } else { 10 });
    let outside = temp_dir("special-outside");
    let root = is_root();
    // (name, what to plant, the refusal); None: the writer skips it and the run succeeds.
    type Plant = fn(&Path, &Path);
    let fifo: Plant = |at, _| mkfifo(at, Mode::from_bits_truncate(0o644)).unwrap();
    let zero: Plant = |at, _| symlink("/dev/zero", at).unwrap();
    let dir_: Plant = |at, _| std::fs::create_dir(at).unwrap();
    let huge: Plant = |at, _| std::fs::File::create(at).unwrap().set_len(MAX_BYTES + 1).unwrap();
    let huge_journal: Plant =
        |at, _| std::fs::File::create(at).unwrap().set_len(MAX_JOURNAL_BYTES + 1).unwrap();
    let device: Plant = |at, _| {
        let dev = nix::sys::stat::makedev(1, 5);
        nix::sys::stat::mknod(at, nix::sys::stat::SFlag::S_IFCHR, Mode::S_IRUSR, dev).unwrap();
    };
    let mut cases: Vec<(&str, Plant, Option<&str>)> = vec![
        ("state", fifo, Some("is a FIFO")),
        ("state", zero, Some("is a symbolic link")),
        ("state", dir_, Some("is a directory")),
        ("state", huge, Some("more than a state file can have")),
        (JOURNAL, fifo, Some("is a FIFO")),
        (JOURNAL, zero, Some("is a symbolic link")),
        (JOURNAL, dir_, Some("is a directory")),
        (JOURNAL, huge_journal, Some("more than a state file can have")),
        (LOCK_FILE, fifo, Some("is a FIFO")),
        (LOCK_FILE, dir_, Some("is a directory")),
        ("state.tmp", fifo, None),
        ("state.tmp.0", fifo, None),
        ("state.tmp.1", zero, None),
        ("journal.tmp.0", fifo, None),
        ("journal.tmp.1", zero, None),
    ];
    if root {
        cases.push(("state", device, Some("is a character device")));
        cases.push((JOURNAL, device, Some("is a character device")));
        cases.push(("state.tmp.0", device, None));
        cases.push(("journal.tmp.0", device, None));
    } else {
        eprintln!("not root: no character device planted (mknod needs CAP_MKNOD)");
    }
    for (name, plant, why) in cases {
        let dir = temp_dir("special");
        plant(&dir.join(name), &outside);
        match why {
            Some(why) => {
                assert_refused(&run_bounded(serve(&dir), limit), 2, why);
                if name == "state" || name == JOURNAL {
                    assert_refused(&run_bounded(status(&dir), limit), 2, why);
                }
            }
            None => {
                let o = run_bounded(serve(&dir), limit);
                assert!(o.status.success(), "{name}: {}", stderr(&o));
                let meta = std::fs::symlink_metadata(dir.join(name)).unwrap();
                assert!(!meta.is_file(), "{name} was replaced by a file");
            }
        }
    }
}

/// The lock belongs to the service alone: when the service is SIGKILLed while a process it
/// forked (a worker on its way out) still holds a copy of the lock file's descriptor, the
/// directory is free at once.
#[test]
fn a_killed_service_does_not_leave_its_directory_locked_by_a_child() {
    let dir = temp_dir("lock-fork");
    let (tx, rx) = pifork::channel::<i32>().unwrap();
    let keep = [std::os::fd::AsRawFd::as_raw_fd(&tx)];
    let held = dir.clone();
    // This test harness has threads; the processes below only lock, fork and sleep.
    let mut service = pifork::Process::new(move || {
        let _lock = Lock::acquire(&held).unwrap();
        let mut lingering = pifork::Process::new(|| std::thread::sleep(Duration::from_secs(30)))
            .allow_threads(true);
        lingering.start().unwrap();
        tx.send(&lingering.pid().unwrap().unwrap().as_raw()).unwrap();
        std::thread::sleep(Duration::from_secs(30));
    })
    .inherit_fds(keep)
    .allow_threads(true);
    service.start().unwrap();
    let lingering = rx.recv().unwrap().unwrap();
    service.kill().unwrap();
    service.join().unwrap();
    let o = run(serve(&dir));
    let _ = kill(Pid::from_raw(lingering), Signal::SIGKILL);
    assert!(o.status.success(), "the child kept the directory locked: {}", stderr(&o));
}

#[test]
fn a_second_service_on_a_directory_names_the_first_and_status_still_reads() {
    let dir = temp_dir("twice");
    // A long job, stopped with SIGTERM once both checks are done.
    let mut first = pifork();
    first
        .args(["serve", "--terms", "1e15", "--chunk", "1e10", "--workers", "1", "--state-dir"])
        .arg(&dir);
    let first = clean(first).spawn().unwrap();
    let pid = first.id();
    assert!(
        eventually(Duration::from_secs(30), || {
            std::fs::read_to_string(dir.join(LOCK_FILE)).is_ok_and(|t| t == format!("{pid}\n"))
                && dir.join("state").exists()
        }),
        "the first service never took the lock"
    );
    let mut second = pifork();
    second
        .args(["serve", "--terms", "1e15", "--chunk", "1e10", "--workers", "1", "--state-dir"])
        .arg(&dir);
    let o = run_bounded(clean(second), Duration::from_secs(if emulated() { 60 } else { 10 }));
    assert_refused(&o, 1, &format!("in use by another pifork serve (pid {pid})"));
    let o = run(status(&dir));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(" of 100000\n"));
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    let o = first.wait_with_output().unwrap();
    assert!(o.status.success(), "the first service was disturbed: {}", stderr(&o));
    // Once it has stopped, the directory is free again.
    let mut third = pifork();
    third.args(["serve", "--terms", "1e15", "--chunk", "1e10", "--workers", "1", "--state-dir"]);
    let third = clean(third).arg(&dir).spawn().unwrap();
    let third_pid = third.id();
    assert!(eventually(Duration::from_secs(30), || {
        std::fs::read_to_string(dir.join(LOCK_FILE)).is_ok_and(|t| t == format!("{third_pid}\n"))
    }));
    kill(Pid::from_raw(third_pid as i32), Signal::SIGTERM).unwrap();
    assert!(third.wait_with_output().unwrap().status.success());
}

#[test]
fn an_empty_state_dir_is_a_usage_error() {
    let cwd = temp_dir("empty-path");
    for cmd in ["serve", "status"] {
        let mut c = pifork();
        c.args([cmd, "--state-dir", ""]).current_dir(&cwd);
        assert_refused(&run(clean(c)), 2, "--state-dir must not be empty");
    }
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0, "something was written");
}

#[test]
fn too_many_chunks_are_refused_before_anything_is_allocated() {
    let dir = temp_dir("chunks");
    for (terms, chunk, suggested) in
        [("1e12", "1", "1000000"), ("1125899906842624", "1", "1125899907"), ("4e6", "2", "4")]
    {
        let mut c = pifork();
        c.args(["serve", "--terms", terms, "--chunk", chunk, "--state-dir"]).arg(dir.join("d"));
        let o = run_bounded(clean(c), Duration::from_secs(if emulated() { 60 } else { 5 }));
        assert_refused(&o, 2, &format!("use --chunk {suggested} or more"));
        assert!(!dir.join("d").exists(), "the state directory was created");
    }
}

#[test]
fn a_full_file_system_is_one_line_and_the_old_state_stays() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let dir = temp_dir("full");
    let saved = temp_dir("full-saved").join("state");
    let old = small_state(false).to_text();
    std::fs::write(&saved, &old).unwrap();
    let runner = std::env::var("PIFORK_RUNNER").unwrap_or_default();
    // In a mount namespace of its own: a 64 KiB tmpfs holding the state and the lock, then
    // filled to the last byte.
    let script = format!(
        "mount -t tmpfs -o size=64k tmpfs '{d}' || exit 77; cp '{s}' '{d}/state'; \
         echo 0 > '{d}/lock'; dd if=/dev/zero of='{d}/fill' bs=1k 2>/dev/null; \
         {runner} '{bin}' serve --terms {TERMS} --chunk {CHUNK} --workers 2 --exit-when-done \
         --state-dir '{d}'; rc=$?; cmp -s '{s}' '{d}/state' && echo same; \
         ls '{d}' | grep -c tmp; exit $rc",
        d = dir.display(),
        s = saved.display(),
        bin = env!("CARGO_BIN_EXE_pifork"),
    );
    let Some(o) = in_own_mounts(&script) else {
        return;
    };
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_refused(&o, 1, "No space left on device");
    assert!(stderr(&o).contains("is left as it was"), "{}", stderr(&o));
    assert_eq!(out, "same\n0\n", "the old state changed or a temporary file was left");
}

#[test]
fn a_journal_cut_short_is_dropped_and_the_job_resumes_to_the_same_bits() {
    let reference = small_job_bits();
    let dir = temp_dir("torn");
    let (snapshot, journal) = journaled(&dir, &[0, 2]);
    let path = dir.join(JOURNAL);
    let last = journal[..journal.len() - 1].iter().rposition(|&b| b == b'\n').unwrap() + 1;
    let restore = |journal: &[u8]| {
        std::fs::write(dir.join("state"), &snapshot).unwrap();
        std::fs::write(&path, journal).unwrap();
    };
    // The last record cut short at every byte, and NULs after the last record (what a file
    // system may leave after a power cut): read as the records before it.
    let mut tails: Vec<Vec<u8>> =
        (last..journal.len()).map(|cut| journal[..cut].to_vec()).collect();
    tails.push([&journal[..], &[0; 600]].concat());
    for (n, torn) in tails.iter().enumerate() {
        restore(torn);
        let o = run(status(&dir));
        assert!(o.status.success(), "cut {n}: {}", stderr(&o));
        let done = if torn.len() > journal.len() { 2 } else { 1 };
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(text.contains(&format!("chunks done: {done} of 4")), "cut {n}: {text}");
        assert_eq!(&std::fs::read(&path).unwrap(), torn, "status wrote");
        // And the service resumes from them to the same bits (for every fourth cut).
        if n % 4 == 0 || n == tails.len() - 1 {
            let o = run(serve(&dir));
            assert!(o.status.success(), "cut {n}: {}", stderr(&o));
            assert_eq!(result_bits(&dir), reference, "cut {n}");
            assert!(std::fs::read(&path).unwrap().ends_with(b"\n"), "cut {n}: not cut off");
        }
    }
    eprintln!("journals cut short: {} read and resumed", tails.len());
}

#[test]
fn every_bit_flip_in_a_journal_is_refused_and_left_untouched() {
    let dir = temp_dir("journal-flips");
    let (snapshot, journal) = journaled(&dir, &[0, 2]);
    let path = dir.join(JOURNAL);
    let text = String::from_utf8_lossy(&journal).into_owned();
    assert_eq!(text.lines().filter(|l| l.starts_with("done ")).count(), 2, "{text}");
    let stride = if emulated() { 13 } else { 1 };
    let mut tried = 0;
    for (n, flip) in (0..journal.len() * 8).step_by(stride).enumerate() {
        let mut bad = journal.clone();
        bad[flip / 8] ^= 1 << (flip % 8);
        std::fs::write(&path, &bad).unwrap();
        tried += 1;
        assert_refused(&run(status(&dir)), 2, &path.display().to_string());
        if n % 8 == 0 {
            assert_refused(&run(serve(&dir)), 2, &path.display().to_string());
        }
        assert_eq!(std::fs::read(&path).unwrap(), bad, "flip {flip}: the journal was changed");
        assert_eq!(std::fs::read(dir.join("state")).unwrap(), snapshot, "flip {flip}");
    }
    eprintln!("damaged journals (single bit flips): {tried} tried, all refused");
    // A record that is whole and checksummed but not the series': refused too.
    let sum0 = format!("{:016x}", partial_sum(1, CHUNK).to_bits());
    let lines: Vec<&str> = text.lines().collect();
    let mut crafted = format!("{}\n", lines[0]);
    for l in &lines[1..] {
        crafted.push_str(l.rsplit_once(' ').unwrap().0);
        crafted.push('\n');
    }
    let crafted = seal(&crafted.replace(&sum0, &format!("{:016x}", 0.75f64.to_bits())));
    std::fs::write(&path, &crafted).unwrap();
    for cmd in [status(&dir), serve(&dir)] {
        assert_refused(&run(cmd), 2, "is not the series'");
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), crafted);
}

#[test]
fn a_full_file_system_while_it_records_is_one_line_and_resumes_to_the_same_bits() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    // Many small chunks: the journal fills what is free, by records or by a compaction.
    let (terms, chunk) = ("2e8", "1e4");
    let reference = {
        let dir = temp_dir("full-run-reference");
        let o = run(serve_job(&dir, terms, chunk));
        assert!(o.status.success(), "{}", stderr(&o));
        result_bits(&dir)
    };
    let runner = std::env::var("PIFORK_RUNNER").unwrap_or_default();
    let bin = env!("CARGO_BIN_EXE_pifork");
    // Free: 32 KiB (the journal fills it record by record) or 96 KiB (the first compaction
    // finds no room for the new snapshot).
    for (free_pages, failed_at) in [(8, "cannot append to"), (24, "is left as it was")] {
        let dir = temp_dir("full-run");
        let out = temp_dir("full-run-out");
        let script = format!(
            "mount -t tmpfs -o size=4m tmpfs '{d}' || exit 77; \
             dd if=/dev/zero of='{d}/fill' bs=4k count={fill} 2>/dev/null; \
             {runner} '{bin}' serve --terms {terms} --chunk {chunk} --workers 2 --exit-when-done \
             --state-dir '{d}' 2>'{o}/first'; echo \"rc=$?\"; \
             {runner} '{bin}' status --state-dir '{d}' >'{o}/status' 2>&1; echo \"status=$?\"; \
             rm '{d}/fill'; \
             {runner} '{bin}' serve --terms {terms} --chunk {chunk} --workers 2 --exit-when-done \
             --state-dir '{d}' 2>'{o}/second'; echo \"rc=$?\"; \
             grep '^result ' '{d}/state' | cut -d' ' -f2; ls '{d}' | grep -c tmp",
            d = dir.display(),
            o = out.display(),
            fill = 1024 - 2 - free_pages,
        );
        let Some(o) = in_own_mounts(&script) else {
            return;
        };
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let read = |name| std::fs::read_to_string(out.join(name)).unwrap();
        let first = read("first");
        let last = first.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("pifork: ") && last.contains("No space left on device"),
            "{free_pages} pages free: {first}"
        );
        assert!(last.contains(failed_at), "{free_pages} pages free: {last}");
        assert_eq!(first.matches("pifork: ").count(), 1, "{first}");
        assert_eq!(
            stdout,
            format!("rc=1\nstatus=0\nrc=0\n{reference}\n0\n"),
            "{free_pages} pages free: status: {}\nsecond run: {}",
            read("status"),
            read("second")
        );
        assert!(read("status").contains("chunks done: "), "{}", read("status"));
    }
}
