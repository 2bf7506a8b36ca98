//! Waiting on several processes, under every start method: `wait` and `wait_first` return the
//! first to end, `wait_all`, timeouts, and `Supervisor` (each process reported once; its end
//! terminates daemonic children and joins the others). Portable: the Windows suite includes
//! this file and runs its tests for spawn; the Linux-only ones (`/proc`, signals) are in
//! `linux`.

use std::time::Duration;

use pifork::{ExitCode, Process, StartMethod, Supervisor, wait, wait_all, wait_first};

use crate::common::{Test, sleep_ms};

const SLEEP: &str = "wait.sleep";
const NAP: &str = "wait.nap";

/// Registers this module's entry points (before `main_guard`).
pub fn register_entries() {
    pifork::register(SLEEP, sleep_ms);
    pifork::register(NAP, |ms: u64| {
        sleep_ms(ms);
        ms
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
    Test::EachMethod("wait_returns_the_first_to_finish", wait_returns_the_first_to_finish),
    Test::EachMethod("wait_times_out", wait_times_out),
    Test::EachMethod("supervisor_waits_for_the_first", supervisor_waits_for_the_first),
    Test::EachMethod(
        "supervisor_shutdown_terminates_daemons_and_joins_the_rest",
        supervisor_shutdown_terminates_daemons_and_joins_the_rest,
    ),
];

fn sleeper(ms: u64, m: StartMethod) -> Process<()> {
    Process::entry(SLEEP, &ms).start_method(m)
}

fn wait_returns_the_first_to_finish(m: StartMethod) {
    let mut procs: Vec<Process> =
        [60_000u64, 0, 60_000].into_iter().map(|ms| sleeper(ms, m).daemon(true)).collect();
    for p in &mut procs {
        p.start().unwrap();
    }
    assert_eq!(wait_first(&procs, None).unwrap(), Some(1));
    let sentinels: Vec<_> = procs.iter().map(|p| p.sentinel().unwrap()).collect();
    assert_eq!(wait(&sentinels, Some(Duration::from_millis(50))).unwrap(), vec![1]);
    drop(sentinels);
    assert!(!wait_all(&mut procs, Some(Duration::from_millis(20))).unwrap());
    for p in &mut procs {
        p.terminate().unwrap();
    }
    assert!(wait_all(&mut procs, None).unwrap());
    let codes: Vec<String> =
        procs.iter_mut().map(|p| p.exitcode().unwrap().unwrap().to_string()).collect();
    assert_eq!(codes, ["-SIGTERM", "0", "-SIGTERM"]);
}

fn wait_times_out(m: StartMethod) {
    let mut p = sleeper(60_000, m).daemon(true);
    p.start().unwrap();
    assert_eq!(
        wait_first(std::slice::from_ref(&p), Some(Duration::from_millis(30))).unwrap(),
        None
    );
    // Dropping a running daemonic process terminates and reaps it (checked by the runner).
}

fn supervisor_waits_for_the_first(m: StartMethod) {
    let mut sup: Supervisor<u64> = Supervisor::new();
    for ms in [60_000u64, 10] {
        sup.start(Process::entry(NAP, &ms).start_method(m)).unwrap();
    }
    assert_eq!(sup.wait_first(None).unwrap(), Some(1));
    assert_eq!(sup.processes_mut()[1].result().unwrap(), 10);
    assert_eq!(sup.wait_first(Some(Duration::from_millis(20))).unwrap(), None, "timeout");
    sup.terminate_all().unwrap();
    sup.processes_mut()[0].join().unwrap();
    // Ended (and even reaped) before the call: still reported, once.
    assert_eq!(sup.wait_first(None).unwrap(), Some(0));
    assert_eq!(sup.wait_first(None).unwrap(), None, "nobody left running");
}

fn supervisor_shutdown_terminates_daemons_and_joins_the_rest(m: StartMethod) {
    let mut sup: Supervisor<u64> = Supervisor::new();
    sup.start(Process::entry(NAP, &60_000u64).daemon(true).start_method(m)).unwrap();
    sup.start(Process::entry(NAP, &200u64).start_method(m)).unwrap();
    sup.shutdown();
    let procs = sup.processes_mut();
    assert_eq!(procs[0].exitcode().unwrap(), Some(ExitCode::Signaled(15)), "terminated");
    assert_eq!(procs[1].exitcode().unwrap(), Some(ExitCode::Exited(0)), "joined");
    assert_eq!(procs[1].result().unwrap(), 200);
}

/// Linux only: checks through `/proc`, and signals.
#[cfg(target_os = "linux")]
mod linux {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use nix::sys::signal::{Signal, kill};
    use pifork::{Process, StartMethod, Supervisor, wait};

    use crate::common::{Test, alive, sleep_ms};

    const WRITE_LATER: &str = "wait.write-later";
    const PING: &str = "wait.ping";

    pub fn register_entries() {
        pifork::register(WRITE_LATER, |(path, ms): (String, u64)| {
            sleep_ms(ms);
            std::fs::write(path, "done").unwrap();
        });
        pifork::register(PING, |pid: i32| {
            for _ in 0..5 {
                sleep_ms(20);
                kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR1).unwrap();
            }
        });
    }

    pub const TESTS: &[Test] = &[
        Test::EachMethod(
            "scope_end_terminates_daemons_and_joins_the_rest",
            scope_end_terminates_daemons_and_joins_the_rest,
        ),
        Test::EachMethod("signals_do_not_cut_a_wait_short", signals_do_not_cut_a_wait_short),
    ];

    fn scope_end_terminates_daemons_and_joins_the_rest(m: StartMethod) {
        let marker = std::env::temp_dir().join(format!("pifork-join-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let (daemon_pid, worker_pid);
        {
            let mut sup = Supervisor::new();
            sup.start(super::sleeper(60_000, m).daemon(true)).unwrap();
            let path = marker.to_string_lossy().into_owned();
            sup.start(Process::entry(WRITE_LATER, &(path, 200u64)).start_method(m)).unwrap();
            daemon_pid = sup.processes()[0].pid().unwrap().unwrap().as_raw();
            worker_pid = sup.processes()[1].pid().unwrap().unwrap().as_raw();
        }
        assert!(!alive(daemon_pid) && !alive(worker_pid));
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "done", "the non-daemon was joined");
        std::fs::remove_file(&marker).unwrap();
    }

    fn signals_do_not_cut_a_wait_short(m: StartMethod) {
        // A handled signal interrupts poll(2) with EINTR; wait() must carry on to its deadline.
        let hits = Arc::new(AtomicBool::new(false));
        let id = signal_hook::flag::register(signal_hook::consts::SIGUSR1, hits.clone()).unwrap();
        let mut pinger = Process::<()>::entry(PING, &(std::process::id() as i32)).start_method(m);
        let mut sleeper = super::sleeper(60_000, m).daemon(true);
        pinger.start().unwrap();
        sleeper.start().unwrap();
        let start = Instant::now();
        let ready = wait(&[sleeper.sentinel().unwrap()], Some(Duration::from_millis(400))).unwrap();
        assert!(ready.is_empty());
        assert!(start.elapsed() >= Duration::from_millis(400));
        pinger.join().unwrap();
        assert_eq!(pinger.exitcode().unwrap(), Some(pifork::ExitCode::Exited(0)));
        assert!(hits.load(Ordering::SeqCst), "the signals did arrive");
        signal_hook::low_level::unregister(id);
    }
}
