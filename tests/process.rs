//! The Process model against CPython's semantics. A plain `main` runs the tests one after the
//! other on the main thread: forking is only safe from a single-threaded process, and the
//! standard harness runs every test on a thread of its own.
//! After every test the runner checks that no child process (running or zombie) is left.

mod common;

use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use common::{alive, children_of, eventually};
use pifork::app::engine::{self, PiJob};
use pifork::{
    Backend, Error, ExitCode, NOOP_ENTRY, Process, StartMethod, Supervisor, channel, forkserver,
    get_context, wait, wait_all, wait_first,
};

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn my_pid() -> i32 {
    std::process::id() as i32
}

/// The descriptors open in this process (excluding the one used to list them).
fn open_fds() -> Vec<i32> {
    let mut fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .filter(|fd: &i32| {
            std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok_and(|t| !t.starts_with("/proc"))
        })
        .collect();
    fds.sort_unstable();
    fds
}

fn start_join_and_result() {
    let mut p = Process::with_args(|(a, b): (f64, f64)| a * b, (1.5, 4.0));
    common::assert_lifecycle(&mut p, 6.0);
}

fn start_twice_is_an_error() {
    let mut p = Process::new(|| ());
    p.start().unwrap();
    assert_eq!(p.start(), Err(Error::AlreadyStarted));
    p.join().unwrap();
    assert_eq!(p.start(), Err(Error::AlreadyStarted));
}

fn calls_before_start_are_errors() {
    let mut p = Process::new(|| ());
    assert_eq!(p.join(), Err(Error::NotStarted));
    assert_eq!(p.terminate(), Err(Error::NotStarted));
    assert_eq!(p.sentinel().err(), Some(Error::NotStarted));
}

fn terminate_gives_minus_sigterm() {
    let mut p = Process::new(|| sleep_ms(60_000)).name("sleeper");
    p.start().unwrap();
    assert_eq!(p.exitcode().unwrap(), None);
    common::assert_terminated(&mut p, "sleeper");
}

fn kill_gives_minus_sigkill() {
    let mut p = Process::new(|| sleep_ms(60_000));
    p.start().unwrap();
    p.kill().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode().unwrap().unwrap().to_string(), "-SIGKILL");
}

fn join_timeout_reports_whether_it_ended() {
    let mut p = Process::new(|| sleep_ms(300));
    p.start().unwrap();
    // Right after the start, inside the window in which a join polls without sleeping: a zero
    // timeout still returns at once.
    let asked = Instant::now();
    assert!(!p.join_timeout(Duration::ZERO).unwrap());
    assert!(asked.elapsed() < Duration::from_millis(100), "took {:?}", asked.elapsed());
    assert!(!p.join_timeout(Duration::from_millis(20)).unwrap());
    assert!(p.is_alive().unwrap());
    assert!(p.join_timeout(Duration::from_secs(30)).unwrap());
    assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)));
}

fn close_rules() {
    let mut p = Process::new(|| sleep_ms(60_000));
    p.start().unwrap();
    assert_eq!(p.close(), Err(Error::StillRunning));
    assert!(p.is_alive().unwrap(), "a refused close leaves the process usable");
    p.kill().unwrap();
    p.join().unwrap();
    p.close().unwrap();
    common::assert_closed(&mut p);
    // Closing an unstarted process is allowed too.
    let mut q = Process::new(|| ());
    q.close().unwrap();
    assert_eq!(q.start(), Err(Error::Closed));
}

fn panic_gives_exit_code_one_and_the_message() {
    let mut p: Process<u64> = Process::new(|| panic!("the answer is {}", 42)).name("doomed");
    p.start().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(1)));
    match p.result() {
        Err(Error::ChildPanicked { name, message, .. }) => {
            assert_eq!(name, "doomed");
            assert_eq!(message, "the answer is 42");
        }
        other => panic!("expected a panic report, got {other:?}"),
    }
}

fn daemon_may_not_start_children() {
    let mut p = Process::new(|| {
        let mut inner = Process::new(|| ());
        inner.start().map_err(|e| e.to_string()).err().unwrap_or_default()
    })
    .daemon(true);
    p.start().unwrap();
    assert_eq!(p.result().unwrap(), "daemonic processes are not allowed to have children");
}

fn non_daemon_may_start_children() {
    let mut p = Process::new(|| {
        let mut inner = Process::new(|| 7u32);
        inner.start().unwrap();
        inner.result().unwrap() + 1
    });
    p.start().unwrap();
    assert_eq!(p.result().unwrap(), 8);
}

fn refuses_to_fork_a_multithreaded_parent() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || rx.recv().ok());
    let mut p = Process::new(|| 5u8);
    match p.start() {
        Err(Error::MultiThreaded { threads }) => assert!(threads >= 2),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(Error::MultiThreaded { threads: 2 }.to_string().contains("allow_threads"));
    let mut q = Process::new(|| 5u8).allow_threads(true);
    q.start().unwrap();
    assert_eq!(q.result().unwrap(), 5);
    tx.send(()).unwrap();
    thread.join().unwrap();
    // Single-threaded again: the plain start works (a joined thread can linger in
    // /proc/self/task for a moment, under qemu-user especially; a refused start can be retried).
    assert!(eventually(Duration::from_secs(5), || p.start().is_ok()));
    assert_eq!(p.result().unwrap(), 5);
}

fn starts_right_after_threads_are_joined() {
    // A joined thread is reaped a moment after it wakes its joiner, and may still be counted
    // then: a start right after the join must not be refused for it.
    for round in 0..50 {
        std::thread::scope(|s| {
            s.spawn(|| ());
            s.spawn(|| ());
        });
        let mut p = Process::new(move || round);
        p.start().unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(p.result().unwrap(), round);
    }
}

fn wait_returns_the_first_to_finish() {
    let mut procs: Vec<Process> = [60_000u64, 0, 60_000]
        .into_iter()
        .map(|ms| Process::new(move || sleep_ms(ms)).daemon(true))
        .collect();
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

fn wait_times_out() {
    let mut p = Process::new(|| sleep_ms(60_000)).daemon(true);
    p.start().unwrap();
    assert_eq!(
        wait_first(std::slice::from_ref(&p), Some(Duration::from_millis(30))).unwrap(),
        None
    );
    // Dropping a running daemonic process terminates and reaps it (checked by the runner).
}

fn signals_do_not_cut_a_wait_short() {
    // A handled signal interrupts poll(2) with EINTR; wait() must carry on to its deadline.
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let id = signal_hook::flag::register(signal_hook::consts::SIGUSR1, hits.clone()).unwrap();
    let parent = nix::unistd::getpid();
    let mut pinger = Process::new(move || {
        for _ in 0..5 {
            sleep_ms(20);
            nix::sys::signal::kill(parent, nix::sys::signal::Signal::SIGUSR1).unwrap();
        }
    });
    let mut sleeper = Process::new(|| sleep_ms(60_000)).daemon(true);
    pinger.start().unwrap();
    sleeper.start().unwrap();
    let start = std::time::Instant::now();
    let ready = wait(&[sleeper.sentinel().unwrap()], Some(Duration::from_millis(400))).unwrap();
    assert!(ready.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(400));
    pinger.join().unwrap();
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst), "the signals did arrive");
    signal_hook::low_level::unregister(id);
}

fn child_holds_only_its_own_pipe_ends() {
    // No pifork descriptor may be open at the baseline: they are not inherited, by design.
    forkserver::stop();
    let baseline = open_fds();
    // Some pifork descriptors the parent holds while the probe starts.
    let mut other = Process::new(|| sleep_ms(60_000)).daemon(true);
    other.start().unwrap();
    let (_tx, _rx) = channel::<u8>().unwrap();
    let mut probe = Process::new(open_fds);
    probe.start().unwrap();
    let child_fds = probe.result().unwrap();
    let extra: Vec<i32> = child_fds.iter().copied().filter(|fd| !baseline.contains(fd)).collect();
    let own = match pifork::backend() {
        Backend::Pidfd => 1, // the result pipe's write end
        Backend::Pipe => 2,  // and the sentinel pipe's write end
    };
    assert_eq!(extra.len(), own, "child fds {child_fds:?}, baseline {baseline:?}");
    assert!(baseline.iter().all(|fd| child_fds.contains(fd)), "ordinary descriptors are inherited");
}

fn inherited_channel_reaches_the_child() {
    let (tx, rx) = channel::<(u64, f64)>().unwrap();
    let (back_tx, back_rx) = channel::<String>().unwrap();
    let keep = [rx.as_raw_fd(), back_tx.as_raw_fd()];
    let mut p = Process::new(move || {
        while let Some((k, x)) = rx.recv().unwrap() {
            back_tx.send(&format!("{k}:{x}")).unwrap();
        }
    })
    .inherit_fds(keep);
    p.start().unwrap();
    tx.send(&(1, 0.5)).unwrap();
    assert_eq!(back_rx.recv().unwrap().as_deref(), Some("1:0.5"));
    drop(tx);
    p.join().unwrap();
    assert_eq!(back_rx.recv().unwrap(), None, "the child's end closed when it exited");
}

fn large_results_do_not_block() {
    let mut p = Process::new(|| (0..(4u32 << 20)).map(|i| i as u8).collect::<Vec<u8>>());
    p.start().unwrap();
    p.join().unwrap();
    let v = p.result().unwrap();
    assert_eq!(v.len(), 4 << 20);
    assert!(v.iter().enumerate().all(|(i, &b)| b == i as u8));
}

fn scope_end_terminates_daemons_and_joins_the_rest() {
    let marker = std::env::temp_dir().join(format!("pifork-join-{}", my_pid()));
    let _ = std::fs::remove_file(&marker);
    let (daemon_pid, worker_pid);
    {
        let mut sup = Supervisor::new();
        sup.start(Process::new(|| sleep_ms(60_000)).daemon(true)).unwrap();
        let m = marker.clone();
        sup.start(Process::new(move || {
            sleep_ms(200);
            std::fs::write(&m, "done").unwrap();
        }))
        .unwrap();
        daemon_pid = sup.processes()[0].pid().unwrap().unwrap().as_raw();
        worker_pid = sup.processes()[1].pid().unwrap().unwrap().as_raw();
    }
    assert!(!alive(daemon_pid) && !alive(worker_pid));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "done", "the non-daemon was joined");
    std::fs::remove_file(&marker).unwrap();
}

fn supervisor_waits_for_the_first() {
    let mut sup: Supervisor<u32> = Supervisor::new();
    for ms in [60_000u64, 10] {
        sup.start(Process::new(move || {
            sleep_ms(ms);
            ms as u32
        }))
        .unwrap();
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

fn daemonic_grandchild_dies_with_its_parent() {
    let (tx, rx) = channel::<i32>().unwrap();
    let keep = [tx.as_raw_fd()];
    let mut middle = Process::new(move || {
        let mut g = Process::new(|| sleep_ms(60_000)).daemon(true);
        g.start().unwrap();
        tx.send(&g.pid().unwrap().unwrap().as_raw()).unwrap();
        sleep_ms(60_000);
    })
    .inherit_fds(keep);
    middle.start().unwrap();
    let grandchild = rx.recv().unwrap().unwrap();
    assert!(alive(grandchild));
    middle.kill().unwrap();
    middle.join().unwrap();
    assert!(
        eventually(Duration::from_secs(2), || !alive(grandchild)),
        "daemonic orphan {grandchild} survived"
    );
}

fn pinning_and_affinity_aware_cpu_count() {
    let cpus = pifork::available_cpus();
    assert_eq!(pifork::cpu_count(), cpus.len());
    let last = *cpus.last().unwrap();
    let mut p = Process::new(|| (pifork::available_cpus(), pifork::cpu_count())).cpus([last]);
    p.start().unwrap();
    let (seen, count) = p.result().unwrap();
    assert_eq!(seen, vec![last]);
    assert_eq!(count, 1);
    let mut q = Process::new(|| ()).cpus([100_000]);
    assert_eq!(q.start(), Err(Error::CpuUnavailable { cpu: 100_000 }));
}

fn backend_follows_the_environment() {
    let forced = std::env::var("PIFORK_BACKEND").ok();
    let b = pifork::backend();
    match forced.as_deref() {
        Some("pipe") => assert_eq!(b, Backend::Pipe),
        _ => assert_eq!(b == Backend::Pidfd, pifork::probe_pidfd().is_ok()),
    }
}

fn engine_bits_do_not_depend_on_worker_count() {
    let n = 5_000_001;
    let runs: Vec<u64> =
        (1..=3).map(|w| engine::run(&PiJob::new(n, w), None).unwrap().estimate.to_bits()).collect();
    assert!(runs.iter().all(|&b| b == runs[0]), "{runs:?}");
    let mut unpinned = PiJob::new(n, 2);
    unpinned.pin = false;
    let report = engine::run(&unpinned, None).unwrap();
    assert_eq!(report.estimate.to_bits(), runs[0]);
    assert!(report.workers.iter().all(|w| w.pinned.is_none()));
    assert_eq!(report.workers.iter().map(|w| w.terms).sum::<u64>(), n);
}

fn engine_reports_a_panicking_worker() {
    fn faulty(m: u64, n: u64) -> f64 {
        if m > 1 {
            panic!("chunk {m}..={n} is cursed");
        }
        pifork::app::pi::partial_sum(m, n)
    }
    let mut job = PiJob::new(4 << 20, 2);
    job.kernel = Some(faulty);
    match engine::run(&job, None) {
        Err(pifork::app::Error::WorkerDied { exitcode, panic, .. }) => {
            assert_eq!(exitcode, ExitCode::Exited(1));
            assert!(panic.unwrap().contains("is cursed"));
        }
        other => panic!("expected a dead worker, got {other:?}"),
    }
}

/// Entry points of the start-method tests, registered before `main_guard`.
fn register_entries() {
    pifork::register("test.scale", |(x, k): (f64, u32)| x * f64::from(k));
    pifork::register("test.sleep", |ms: u64| sleep_ms(ms));
    pifork::register("test.panic", |(): ()| -> u8 { panic!("entry failed on purpose") });
    pifork::register("test.try-child", |(): ()| {
        let mut inner = Process::<()>::entry(NOOP_ENTRY, &());
        inner.start().map_err(|e| e.to_string()).err().unwrap_or_default()
    });
    pifork::register("test.echo", |(rx, tx): (i32, i32)| {
        let rx = pifork::Receiver::<u64>::from_inherited(rx).unwrap();
        let tx = pifork::Sender::<u64>::from_inherited(tx).unwrap();
        while let Some(x) = rx.recv().unwrap() {
            tx.send(&(x + 1)).unwrap();
        }
    });
    pifork::register("test.big", |n: u64| (0..n).map(|i| i as u8).collect::<Vec<u8>>());
}

/// The methods that run registered entry points through a new program image or server.
const METHODS: [StartMethod; 3] = StartMethod::ALL;

fn entries_run_under_every_method() {
    for m in METHODS {
        let mut p: Process<f64> = Process::entry("test.scale", &(1.5f64, 4u32)).start_method(m);
        p.start().unwrap();
        assert_eq!(p.get_start_method(), m);
        assert_ne!(p.pid().unwrap().unwrap().as_raw(), my_pid());
        assert_eq!(p.result().unwrap(), 6.0, "{m}");
        assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)), "{m}");
        let mut big: Process<Vec<u8>> = Process::entry("test.big", &(3u64 << 20)).start_method(m);
        big.start().unwrap();
        assert_eq!(big.result().unwrap().len(), 3 << 20, "{m}");
    }
    let ctx = get_context(StartMethod::Spawn);
    let mut p: Process<f64> = ctx.entry("test.scale", &(2.0f64, 3u32));
    assert_eq!(p.get_start_method(), StartMethod::Spawn);
    p.start().unwrap();
    assert_eq!(p.result().unwrap(), 6.0);
}

fn every_method_reports_panics_and_signals_alike() {
    for m in METHODS {
        let mut p: Process<u8> = Process::entry("test.panic", &()).start_method(m);
        p.start().unwrap();
        match p.result() {
            Err(Error::ChildPanicked { message, .. }) => {
                assert_eq!(message, "entry failed on purpose")
            }
            other => panic!("{m}: {other:?}"),
        }
        assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(1)), "{m}");
        let mut t = Process::<()>::entry("test.sleep", &60_000u64).start_method(m);
        let mut k = Process::<()>::entry("test.sleep", &60_000u64).start_method(m);
        let mut quick = Process::<()>::entry("test.sleep", &0u64).start_method(m);
        t.start().unwrap();
        k.start().unwrap();
        quick.start().unwrap();
        let procs = [t, k, quick];
        assert_eq!(
            wait_first(&procs, None).unwrap(),
            Some(2),
            "{m}: the sentinel of the quick one"
        );
        let [mut t, mut k, mut quick] = procs;
        assert!(t.is_alive().unwrap() && !t.join_timeout(Duration::from_millis(10)).unwrap());
        t.terminate().unwrap();
        k.kill().unwrap();
        t.join().unwrap();
        k.join().unwrap();
        quick.join().unwrap();
        assert_eq!(t.exitcode().unwrap().unwrap().to_string(), "-SIGTERM", "{m}");
        assert_eq!(k.exitcode().unwrap().unwrap().to_string(), "-SIGKILL", "{m}");
        assert_eq!(quick.exitcode().unwrap(), Some(ExitCode::Exited(0)), "{m}");
    }
}

fn spawned_daemons_may_not_have_children() {
    for m in METHODS {
        let mut p: Process<String> =
            Process::entry("test.try-child", &()).daemon(true).start_method(m);
        p.start().unwrap();
        assert_eq!(
            p.result().unwrap(),
            "daemonic processes are not allowed to have children",
            "{m}"
        );
        let mut q: Process<String> = Process::entry("test.try-child", &()).start_method(m);
        q.start().unwrap();
        assert_eq!(q.result().unwrap(), "", "{m}: a non-daemon may");
    }
}

fn inherited_descriptors_keep_their_numbers() {
    for m in METHODS {
        let (to_child, child_rx) = channel::<u64>().unwrap();
        let (child_tx, from_child) = channel::<u64>().unwrap();
        let keep = [child_rx.as_raw_fd(), child_tx.as_raw_fd()];
        let mut p = Process::<()>::entry("test.echo", &(keep[0], keep[1]))
            .start_method(m)
            .inherit_fds(keep);
        p.start().unwrap();
        drop((child_rx, child_tx));
        for x in [1u64, 41] {
            to_child.send(&x).unwrap();
            assert_eq!(from_child.recv().unwrap(), Some(x + 1), "{m}");
        }
        drop(to_child);
        p.join().unwrap();
        assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)), "{m}");
        assert_eq!(from_child.recv().unwrap(), None, "{m}: the child's end closed with it");
    }
}

fn closures_need_fork_and_names_must_exist() {
    for m in [StartMethod::Spawn, StartMethod::Forkserver] {
        let mut p = Process::new(|| 1u8).start_method(m);
        assert_eq!(p.start(), Err(Error::NeedsEntry { method: m.as_str() }));
        let mut q = Process::<()>::entry("test.nowhere", &()).start_method(m);
        let err = q.start().and_then(|()| q.result()).unwrap_err().to_string();
        assert!(err.contains("no entry point named \"test.nowhere\""), "{m}: {err}");
        let mut bad = Process::<()>::entry("semi;colon", &()).start_method(m);
        assert!(matches!(bad.start(), Err(Error::UnknownEntry { .. })), "{m}");
    }
}

fn a_program_without_main_guard_gets_a_clear_error() {
    // The test runner skips the guard for this entry, as a program that forgot it would.
    let start = std::time::Instant::now();
    let mut p = Process::<()>::entry("test.unguarded", &()).start_method(StartMethod::Spawn);
    assert_eq!(p.start(), Err(Error::NoMainGuard));
    assert!(start.elapsed() < Duration::from_secs(20), "the child ended; no need to time out");
}

fn forkserver_refuses_strangers() {
    forkserver::start().unwrap();
    let fd = forkserver::socket_fd().unwrap();
    // A forked child that holds the parent's socket (kept on purpose) asks the parent's server.
    let mut stranger = Process::new(move || {
        use nix::sys::socket::{MsgFlags, recv, send};
        send(fd, b"any request", MsgFlags::empty()).unwrap();
        let mut buf = [0u8; 4096];
        let n = recv(fd, &mut buf, MsgFlags::empty()).unwrap();
        pifork::message::from_bytes::<(i32, String)>(&buf[..n]).unwrap()
    })
    .inherit_fds([fd]);
    stranger.start().unwrap();
    let (pid, answer) = stranger.result().unwrap();
    assert_eq!(pid, 0, "no worker for a stranger");
    assert!(answer.contains("refused a request from pid"), "{answer}");
    // The server still serves its parent.
    let mut p: Process<f64> =
        Process::entry("test.scale", &(1.0f64, 7u32)).start_method(StartMethod::Forkserver);
    p.start().unwrap();
    assert_eq!(p.result().unwrap(), 7.0);
}

fn forkserver_dies_with_its_parent() {
    let (tx, rx) = channel::<i32>().unwrap();
    let keep = [tx.as_raw_fd()];
    let mut middle = Process::new(move || {
        forkserver::start().unwrap();
        let mut w = Process::<()>::entry("test.sleep", &60_000u64)
            .daemon(true)
            .start_method(StartMethod::Forkserver);
        w.start().unwrap();
        tx.send(&forkserver::pid().unwrap().as_raw()).unwrap();
        tx.send(&w.pid().unwrap().unwrap().as_raw()).unwrap();
        sleep_ms(60_000);
    })
    .inherit_fds(keep);
    middle.start().unwrap();
    let server = rx.recv().unwrap().unwrap();
    let worker = rx.recv().unwrap().unwrap();
    assert!(alive(server) && alive(worker));
    middle.kill().unwrap();
    middle.join().unwrap();
    assert!(
        eventually(Duration::from_secs(2), || !alive(server) && !alive(worker)),
        "server {server} or worker {worker} survived"
    );
}

fn engine_bits_match_across_start_methods() {
    let n = 3_000_017;
    let bits: Vec<u64> = METHODS
        .into_iter()
        .map(|m| {
            let mut job = PiJob::new(n, 2);
            job.start = m;
            engine::run(&job, None).unwrap().estimate.to_bits()
        })
        .collect();
    assert!(bits.iter().all(|&b| b == bits[0]), "{bits:?}");
}

type Test = (&'static str, fn());

const TESTS: &[Test] = &[
    ("entries_run_under_every_method", entries_run_under_every_method),
    (
        "every_method_reports_panics_and_signals_alike",
        every_method_reports_panics_and_signals_alike,
    ),
    ("spawned_daemons_may_not_have_children", spawned_daemons_may_not_have_children),
    ("inherited_descriptors_keep_their_numbers", inherited_descriptors_keep_their_numbers),
    ("closures_need_fork_and_names_must_exist", closures_need_fork_and_names_must_exist),
    (
        "a_program_without_main_guard_gets_a_clear_error",
        a_program_without_main_guard_gets_a_clear_error,
    ),
    ("forkserver_refuses_strangers", forkserver_refuses_strangers),
    ("forkserver_dies_with_its_parent", forkserver_dies_with_its_parent),
    ("engine_bits_match_across_start_methods", engine_bits_match_across_start_methods),
    ("start_join_and_result", start_join_and_result),
    ("start_twice_is_an_error", start_twice_is_an_error),
    ("calls_before_start_are_errors", calls_before_start_are_errors),
    ("terminate_gives_minus_sigterm", terminate_gives_minus_sigterm),
    ("kill_gives_minus_sigkill", kill_gives_minus_sigkill),
    ("join_timeout_reports_whether_it_ended", join_timeout_reports_whether_it_ended),
    ("close_rules", close_rules),
    ("panic_gives_exit_code_one_and_the_message", panic_gives_exit_code_one_and_the_message),
    ("daemon_may_not_start_children", daemon_may_not_start_children),
    ("non_daemon_may_start_children", non_daemon_may_start_children),
    ("refuses_to_fork_a_multithreaded_parent", refuses_to_fork_a_multithreaded_parent),
    ("starts_right_after_threads_are_joined", starts_right_after_threads_are_joined),
    ("wait_returns_the_first_to_finish", wait_returns_the_first_to_finish),
    ("wait_times_out", wait_times_out),
    ("signals_do_not_cut_a_wait_short", signals_do_not_cut_a_wait_short),
    ("child_holds_only_its_own_pipe_ends", child_holds_only_its_own_pipe_ends),
    ("inherited_channel_reaches_the_child", inherited_channel_reaches_the_child),
    ("large_results_do_not_block", large_results_do_not_block),
    (
        "scope_end_terminates_daemons_and_joins_the_rest",
        scope_end_terminates_daemons_and_joins_the_rest,
    ),
    ("supervisor_waits_for_the_first", supervisor_waits_for_the_first),
    ("daemonic_grandchild_dies_with_its_parent", daemonic_grandchild_dies_with_its_parent),
    ("pinning_and_affinity_aware_cpu_count", pinning_and_affinity_aware_cpu_count),
    ("backend_follows_the_environment", backend_follows_the_environment),
    ("engine_bits_do_not_depend_on_worker_count", engine_bits_do_not_depend_on_worker_count),
    ("engine_reports_a_panicking_worker", engine_reports_a_panicking_worker),
];

fn main() {
    register_entries();
    pifork::app::register_entries();
    if std::env::var("PIFORK_SPAWN").is_ok_and(|v| v.starts_with("v2;test.unguarded;")) {
        // Play a program whose main forgot the guard: it tries to start a process of its own,
        // which must be refused (no fork bomb), and exits without running any entry.
        let mut p = Process::<()>::entry(NOOP_ENTRY, &()).start_method(StartMethod::Spawn);
        std::process::exit(if p.start() == Err(Error::NoMainGuard) { 3 } else { 4 });
    }
    pifork::main_guard();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in TESTS {
            println!("{name}: test");
        }
        return;
    }
    let filter = args.iter().find(|a| !a.starts_with('-'));
    println!("backend: {}", pifork::backend().as_str());
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, test) in TESTS.iter().filter(|(n, _)| filter.is_none_or(|f| n.contains(f.as_str())))
    {
        ran += 1;
        let outcome = catch_unwind(AssertUnwindSafe(test));
        let server = forkserver::pid().map(|p| p.as_raw());
        let leftovers: Vec<i32> =
            children_of(my_pid()).into_iter().filter(|&p| Some(p) != server).collect();
        let ok = outcome.is_ok() && leftovers.is_empty();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !leftovers.is_empty() {
            println!("  left child processes behind: {leftovers:?}");
        }
        if !ok {
            failed.push(*name);
        }
    }
    forkserver::stop();
    let leftovers = children_of(my_pid());
    if !leftovers.is_empty() {
        println!("the fork server left child processes behind: {leftovers:?}");
        failed.push("forkserver::stop");
    }
    println!("\n{} passed; {} failed", ran - failed.len(), failed.len());
    if !failed.is_empty() {
        println!("failures: {failed:?}");
        std::process::exit(1);
    }
}
