//! Kill paths of the `pifork` commands: Ctrl-C delivered to the whole process group (the
//! workers get it too) is an interruption with exit 128+2, never a worker failure; a stopped
//! worker is noticed, named, killed and its chunks redone to the same bits.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::{alive, descendants, emulated, eventually, pifork, settle, stderr};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// `pifork args...` in a process group of its own, as a shell starts a foreground job.
fn start(args: &[&str]) -> Child {
    pifork()
        .args(args)
        .env_remove("RUST_LOG")
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pifork")
}

/// A pseudo-random delay of `base..base + spread` ms (xorshift on `state`).
fn delay(state: &mut u64, base: u64, spread: u64) -> Duration {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    Duration::from_millis(base + *state % spread)
}

/// Sends SIGINT to the group of `child` (the terminal's Ctrl-C) `after` its first worker
/// appeared (or after its start, for `bench`, whose children come and go), and checks the
/// command ends as interrupted, with nothing left of its process tree.
fn ctrl_c(mut child: Child, after: Duration, what: &str) {
    let pid = child.id() as i32;
    if what != "bench" {
        // Its handler is in place before the first worker starts.
        assert!(
            eventually(Duration::from_secs(30), || !descendants(pid).is_empty()),
            "{what}: no workers"
        );
    }
    std::thread::sleep(after);
    let tree = descendants(pid);
    killpg(Pid::from_raw(pid), Signal::SIGINT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "{what}: still running 30 s after Ctrl-C");
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{what} after {after:?}: {err}");
    assert!(err.contains("interrupted by SIGINT"), "{what} after {after:?}: {err}");
    assert!(!err.contains("died"), "{what} after {after:?}: {err}");
    assert!(tree.iter().all(|&p| !alive(p)), "{what}: a process outlived the run");
}

#[test]
fn ctrl_c_to_the_group_interrupts_pi_race_and_bench() {
    let mut seed = u64::from(std::process::id()) | 1;
    let runs = if emulated() { 5 } else { 30 };
    for i in 0..runs {
        let workers = ["1", "2", "3"][i % 3];
        let child = start(&["pi", "--terms", "1e13", "--workers", workers]);
        ctrl_c(child, delay(&mut seed, 0, 200), "pi");
    }
    for _ in 0..runs / 5 {
        let child = start(&["race", "--terms", "1e13", "--workers", "3"]);
        ctrl_c(child, delay(&mut seed, 0, 200), "race");
    }
    // Bench: during the round trips (its handler is in place within milliseconds of its
    // start), and later during the scaling runs.
    for base in [300, 2_000] {
        let child = start(&["bench", "--terms", "1e11", "--repeat", "1"]);
        ctrl_c(child, delay(&mut seed, base, 300), "bench");
    }
}

/// The estimate's bits from `pi --json` output.
fn estimate_bits(o: &Output) -> u64 {
    let out = String::from_utf8_lossy(&o.stdout);
    let start = out.find("\"estimate\":").expect("an estimate") + "\"estimate\":".len();
    let end = out[start..].find([',', '}']).unwrap() + start;
    out[start..end].trim().parse::<f64>().unwrap().to_bits()
}

#[test]
fn a_stopped_worker_is_named_killed_and_its_chunks_redone() {
    let terms = if emulated() { "4e8" } else { "4e10" };
    let args = ["pi", "--terms", terms, "--workers", "2", "--json"];
    let reference = pifork().args(args).env_remove("RUST_LOG").output().unwrap();
    assert!(reference.status.success(), "{}", stderr(&reference));

    let child = start(&args);
    let pid = child.id() as i32;
    let mut workers = Vec::new();
    assert!(
        eventually(Duration::from_secs(30), || {
            workers = descendants(pid);
            !workers.is_empty()
        }),
        "no workers"
    );
    settle();
    // The first worker seen: at work by now, it holds chunks.
    let stopped = workers[0];
    kill(Pid::from_raw(stopped), Signal::SIGSTOP).unwrap();
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(&format!("(pid {stopped}) has held chunk")), "no late warning: {err}");
    assert!(err.contains("stopped or hung, killed; redoing its chunks"), "{err}");
    assert!(!alive(stopped), "the stopped worker was left behind");
    assert_eq!(estimate_bits(&o), estimate_bits(&reference), "{err}");
}
