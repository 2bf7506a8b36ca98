//! A process's life, under every start method: start, join and result, exit codes, terminate
//! and kill, join with a timeout, close, panics, unknown entries, daemonic processes and their
//! children, pinning, large results. Portable: the Windows suite (tests/windows.rs) includes
//! this file and runs its tests for spawn; the Linux-only ones (fork closures, `/proc`,
//! channels) are in `linux`.

use std::time::{Duration, Instant};

use pifork::{Error, ExitCode, NOOP_ENTRY, Process, StartMethod};

use crate::common::{self, Test, sleep_ms};

const MUL: &str = "lifecycle.mul";
const SLEEP: &str = "lifecycle.sleep";
const PANIC: &str = "lifecycle.panic";
const BYTES: &str = "lifecycle.bytes";
const CPUS: &str = "lifecycle.cpus";
const PID: &str = "lifecycle.pid";
const PARENT: &str = "lifecycle.parent";

/// Registers this module's entry points (before `main_guard`).
pub fn register_entries() {
    pifork::register(MUL, |(a, b): (f64, f64)| a * b);
    pifork::register(SLEEP, sleep_ms);
    pifork::register(PANIC, |message: String| -> u8 { panic!("{message}") });
    pifork::register(BYTES, pattern);
    pifork::register(CPUS, |(): ()| (pifork::available_cpus(), pifork::cpu_count()));
    pifork::register(PID, |(): ()| std::process::id());
    pifork::register(PARENT, |(): ()| {
        // A child of its own (default start method): its result, or why it was refused.
        let mut inner = Process::<f64>::entry(MUL, &(3.5f64, 2.0f64));
        match inner.start().and_then(|()| inner.result()) {
            Ok(v) => v.to_string(),
            Err(e) => e.to_string(),
        }
    });
    #[cfg(target_os = "linux")]
    linux::register_entries();
}

/// This module's tests (on Linux with the Linux-only ones).
pub fn tests() -> Vec<Test> {
    [TESTS, LINUX_TESTS].concat()
}

#[cfg(target_os = "linux")]
const LINUX_TESTS: &[Test] = linux::TESTS;
#[cfg(not(target_os = "linux"))]
const LINUX_TESTS: &[Test] = &[];

const TESTS: &[Test] = &[
    Test::EachMethod("start_join_and_result", start_join_and_result),
    Test::EachMethod("start_twice_is_an_error", start_twice_is_an_error),
    Test::EachMethod("calls_before_start_are_errors", calls_before_start_are_errors),
    Test::EachMethod("exitcode_is_none_while_running", exitcode_is_none_while_running),
    Test::EachMethod("pid_is_the_childs", pid_is_the_childs),
    Test::EachMethod("terminate_gives_minus_sigterm", terminate_gives_minus_sigterm),
    Test::EachMethod("kill_gives_minus_sigkill", kill_gives_minus_sigkill),
    Test::EachMethod(
        "ending_an_ended_child_changes_nothing",
        ending_an_ended_child_changes_nothing,
    ),
    Test::EachMethod(
        "join_timeout_reports_whether_it_ended",
        join_timeout_reports_whether_it_ended,
    ),
    Test::EachMethod("close_rules", close_rules),
    Test::EachMethod(
        "panic_gives_exit_code_one_and_the_message",
        panic_gives_exit_code_one_and_the_message,
    ),
    Test::EachMethod("unknown_entries_are_errors", unknown_entries_are_errors),
    Test::EachMethod("daemons_may_not_have_children", daemons_may_not_have_children),
    Test::EachMethod("non_daemons_may_have_children", non_daemons_may_have_children),
    Test::EachMethod("pinning_and_affinity_aware_cpu_count", pinning_and_affinity_aware_cpu_count),
    Test::EachMethod("large_results_do_not_block", large_results_do_not_block),
];

/// `len` bytes of a pattern that a truncated or reordered copy would not match.
fn pattern(len: u64) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn sleeper(ms: u64, m: StartMethod) -> Process<()> {
    Process::entry(SLEEP, &ms).start_method(m)
}

fn start_join_and_result(m: StartMethod) {
    let mut p = Process::<f64>::entry(MUL, &(1.5f64, 4.0f64)).start_method(m);
    assert_eq!(p.get_start_method(), m);
    common::assert_lifecycle(&mut p, 6.0);
}

fn start_twice_is_an_error(m: StartMethod) {
    let mut p = Process::<()>::entry(NOOP_ENTRY, &()).start_method(m);
    p.start().unwrap();
    assert_eq!(p.start(), Err(Error::AlreadyStarted));
    p.join().unwrap();
    assert_eq!(p.start(), Err(Error::AlreadyStarted));
}

fn calls_before_start_are_errors(m: StartMethod) {
    let mut p = Process::<()>::entry(NOOP_ENTRY, &()).start_method(m);
    assert_eq!(p.join(), Err(Error::NotStarted));
    assert_eq!(p.terminate(), Err(Error::NotStarted));
    assert_eq!(p.kill(), Err(Error::NotStarted));
    assert_eq!(p.sentinel().err(), Some(Error::NotStarted));
}

fn exitcode_is_none_while_running(m: StartMethod) {
    let mut p = sleeper(400, m);
    p.start().unwrap();
    assert!(p.is_alive().unwrap());
    assert_eq!(p.exitcode().unwrap(), None);
    p.join().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)));
    assert!(!p.is_alive().unwrap());
}

fn pid_is_the_childs(m: StartMethod) {
    let mut p = Process::<u32>::entry(PID, &()).start_method(m);
    p.start().unwrap();
    let pid = p.pid().unwrap().unwrap().as_raw() as u32;
    assert_ne!(pid, std::process::id());
    assert_eq!(p.result().unwrap(), pid);
}

fn terminate_gives_minus_sigterm(m: StartMethod) {
    // Daemonic, so that a failed assertion does not leave the test joining a sleeper.
    let mut p = sleeper(60_000, m).daemon(true).name("sleeper");
    p.start().unwrap();
    assert_eq!(p.exitcode().unwrap(), None);
    common::assert_terminated(&mut p, "sleeper");
}

fn kill_gives_minus_sigkill(m: StartMethod) {
    let mut p = sleeper(60_000, m).daemon(true);
    p.start().unwrap();
    p.kill().unwrap();
    p.join().unwrap();
    let code = p.exitcode().unwrap().unwrap();
    assert_eq!(code, ExitCode::Signaled(9));
    assert_eq!(code.to_string(), "-SIGKILL");
}

fn ending_an_ended_child_changes_nothing(m: StartMethod) {
    let mut p = Process::<()>::entry(NOOP_ENTRY, &()).start_method(m);
    p.start().unwrap();
    // Ended, but not yet seen by the process object.
    let ready = pifork::wait(&[p.sentinel().unwrap()], Some(Duration::from_secs(30))).unwrap();
    assert_eq!(ready, [0]);
    p.terminate().unwrap();
    p.kill().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)));
}

fn join_timeout_reports_whether_it_ended(m: StartMethod) {
    let mut p = sleeper(600, m);
    p.start().unwrap();
    // Right after the start, when a join polls without sleeping: a zero timeout still returns
    // at once.
    let asked = Instant::now();
    assert!(!p.join_timeout(Duration::ZERO).unwrap());
    assert!(asked.elapsed() < Duration::from_millis(100), "took {:?}", asked.elapsed());
    let asked = Instant::now();
    assert!(!p.join_timeout(Duration::from_millis(100)).unwrap());
    assert!(asked.elapsed() >= Duration::from_millis(100));
    assert!(p.is_alive().unwrap());
    assert!(p.join_timeout(Duration::from_secs(30)).unwrap());
    assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)));
}

fn close_rules(m: StartMethod) {
    let mut p = sleeper(60_000, m).daemon(true);
    p.start().unwrap();
    assert_eq!(p.close(), Err(Error::StillRunning));
    assert!(p.is_alive().unwrap(), "a refused close leaves the process usable");
    p.kill().unwrap();
    p.join().unwrap();
    p.close().unwrap();
    p.close().unwrap();
    common::assert_closed(&mut p);
    // Closing an unstarted process is allowed too.
    let mut q = Process::<()>::entry(NOOP_ENTRY, &()).start_method(m);
    q.close().unwrap();
    assert_eq!(q.start(), Err(Error::Closed));
}

fn panic_gives_exit_code_one_and_the_message(m: StartMethod) {
    let message = format!("the answer is {}", 42);
    let mut p = Process::<u8>::entry(PANIC, &message).name("doomed").start_method(m);
    p.start().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(1)));
    match p.result() {
        Err(Error::ChildPanicked { name, message, pid }) => {
            assert_eq!(name, "doomed");
            assert_eq!(message, "the answer is 42");
            assert_eq!(Some(pid), p.pid().unwrap());
        }
        other => panic!("expected a panic report, got {other:?}"),
    }
}

fn unknown_entries_are_errors(m: StartMethod) {
    // Refused at the start (fork, forkserver) or reported by the spawned child.
    let mut p = Process::<()>::entry("lifecycle.nowhere", &()).start_method(m);
    let err = p.start().and_then(|()| p.result()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("no entry point named \"lifecycle.nowhere\" is registered"), "{text}");
    assert!(text.contains(MUL), "the message lists the registered entries: {text}");
    if m == StartMethod::Spawn {
        assert!(matches!(err, Error::ChildPanicked { .. }), "{err:?}");
    }
    // A name that cannot travel is refused before anything starts.
    let mut bad = Process::<()>::entry("semi;colon", &()).start_method(m);
    assert!(matches!(bad.start(), Err(Error::UnknownEntry { .. })));
}

fn daemons_may_not_have_children(m: StartMethod) {
    let mut p = Process::<String>::entry(PARENT, &()).daemon(true).start_method(m);
    p.start().unwrap();
    assert_eq!(p.result().unwrap(), "daemonic processes are not allowed to have children");
}

fn non_daemons_may_have_children(m: StartMethod) {
    let mut p = Process::<String>::entry(PARENT, &()).start_method(m);
    p.start().unwrap();
    assert_eq!(p.result().unwrap(), "7", "the child's own child ran and returned 3.5 * 2");
}

fn pinning_and_affinity_aware_cpu_count(m: StartMethod) {
    let cpus = pifork::available_cpus();
    assert_eq!(pifork::cpu_count(), cpus.len());
    let last = *cpus.last().unwrap();
    let mut p = Process::<(Vec<usize>, usize)>::entry(CPUS, &()).cpus([last]).start_method(m);
    assert_eq!(p.pinned_cpus(), Some(&[last][..]));
    p.start().unwrap();
    assert_eq!(p.result().unwrap(), (vec![last], 1));
    let mut q = Process::<()>::entry(NOOP_ENTRY, &()).cpus([100_000]).start_method(m);
    assert_eq!(q.start(), Err(Error::CpuUnavailable { cpu: 100_000 }));
}

fn large_results_do_not_block(m: StartMethod) {
    let len = 4u64 << 20;
    let mut p = Process::<Vec<u8>>::entry(BYTES, &len).start_method(m);
    p.start().unwrap();
    p.join().unwrap();
    let v = p.result().unwrap();
    assert_eq!(v.len() as u64, len);
    assert!(v == pattern(len), "the bytes arrived intact and in order");
}

/// Linux only: fork closures, and checks that need `/proc` or channels.
#[cfg(target_os = "linux")]
mod linux {
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use pifork::{Process, Sender, StartMethod, channel};

    use crate::common::{self, Test, alive, eventually, sleep_ms};

    const MIDDLE: &str = "lifecycle.middle";

    pub fn register_entries() {
        pifork::register(MIDDLE, middle);
    }

    pub const TESTS: &[Test] = &[
        Test::Once("closure_with_args_returns_its_result", closure_with_args_returns_its_result),
        Test::Once("closures_may_start_closures", closures_may_start_closures),
        Test::EachMethod(
            "daemonic_grandchild_dies_with_its_parent",
            daemonic_grandchild_dies_with_its_parent,
        ),
    ];

    fn closure_with_args_returns_its_result() {
        let mut p = Process::with_args(|(a, b): (f64, f64)| a * b, (1.5, 4.0));
        assert_eq!(p.get_start_method(), StartMethod::Fork, "the default on Linux");
        common::assert_lifecycle(&mut p, 6.0);
    }

    fn closures_may_start_closures() {
        let mut p = Process::new(|| {
            let mut inner = Process::new(|| 7u32);
            inner.start().unwrap();
            inner.result().unwrap() + 1
        });
        p.start().unwrap();
        assert_eq!(p.result().unwrap(), 8);
    }

    /// Starts a daemonic grandchild with the method named `method`, sends its pid on the
    /// inherited descriptor `fd`, then sleeps.
    fn middle((fd, method): (i32, String)) {
        let tx = Sender::<i32>::from_inherited(fd).unwrap();
        let m: StartMethod = method.parse().unwrap();
        let mut g = Process::<()>::entry(super::SLEEP, &60_000u64).daemon(true).start_method(m);
        g.start().unwrap();
        tx.send(&g.pid().unwrap().unwrap().as_raw()).unwrap();
        sleep_ms(60_000);
    }

    fn daemonic_grandchild_dies_with_its_parent(m: StartMethod) {
        // The grandchild is started the middle's way (a fork server's worker starts a fork
        // server of its own).
        let (tx, rx) = channel::<i32>().unwrap();
        let keep = [tx.as_raw_fd()];
        let mut middle = Process::<()>::entry(MIDDLE, &(keep[0], m.to_string()))
            .start_method(m)
            .inherit_fds(keep);
        middle.start().unwrap();
        drop(tx);
        let grandchild = rx.recv().unwrap().unwrap();
        assert!(alive(grandchild));
        middle.kill().unwrap();
        middle.join().unwrap();
        assert!(
            eventually(Duration::from_secs(2), || !alive(grandchild)),
            "daemonic orphan {grandchild} survived"
        );
    }
}
