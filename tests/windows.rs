//! The process model on Windows (spawn only), run for real: on Windows, or under Wine with
//! `make test-windows`. A plain `main` registers the entry points, calls `main_guard` (a
//! spawned child runs its entry there and exits), then runs the tests one after the other and
//! exits non-zero if any failed. Elsewhere this test only says it is skipped.

mod common;

#[cfg(not(windows))]
fn main() {
    println!("windows: skipped (runs on Windows, or under Wine: make test-windows)");
}

#[cfg(windows)]
fn main() {
    suite::main();
}

#[cfg(windows)]
mod suite {
    use std::fs::File;
    use std::io::{Read, Write};
    use std::os::windows::io::{AsHandle, AsRawHandle, FromRawHandle, OwnedHandle};
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::time::{Duration, Instant};

    use pifork::{
        Backend, Error, ExitCode, NOOP_ENTRY, Process, StartMethod, Supervisor, get_context,
        get_start_method, wait, wait_first,
    };

    fn sleep_ms(ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }

    /// 1 MiB of a pattern a truncated or reordered copy would not match.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn register_entries() {
        pifork::register("w.mul", |(a, b): (f64, f64)| a * b);
        pifork::register("w.bytes", pattern);
        pifork::register("w.sleep", sleep_ms);
        pifork::register("w.panic", |message: String| -> () { panic!("{message}") });
        pifork::register("w.cpus", |(): ()| pifork::available_cpus());
        pifork::register("w.pid", |(): ()| std::process::id());
        pifork::register("w.spawn_from_daemon", |(): ()| {
            let mut p = Process::<()>::entry(NOOP_ENTRY, &());
            p.start().err().map(|e| e.to_string()).unwrap_or_default()
        });
        pifork::register("w.middle", middle);
        pifork::register("w.write_handle", write_handle);
    }

    /// Starts a grandchild that sleeps (60 s if daemonic, else 1.5 s), writes its pid to
    /// `path`, then sleeps.
    fn middle((path, daemon): (String, bool)) {
        let ms = if daemon { 60_000u64 } else { 1_500 };
        let mut grandchild = Process::<()>::entry("w.sleep", &ms).daemon(daemon);
        grandchild.start().expect("the middle starts its child");
        let pid = grandchild.pid().unwrap().expect("started").as_raw();
        std::fs::write(format!("{path}.tmp"), pid.to_string()).unwrap();
        std::fs::rename(format!("{path}.tmp"), &path).unwrap();
        sleep_ms(60_000);
    }

    /// Writes a greeting to the inherited handle whose value is `handle`.
    fn write_handle(handle: u64) -> bool {
        let raw = std::ptr::without_provenance_mut::<std::ffi::c_void>(handle as usize);
        // SAFETY: the parent listed this handle for this process with `inherit_fds` and passed
        // its value; this process owns its copy and nothing else here refers to it.
        let mut file = unsafe { File::from_raw_handle(raw) };
        file.write_all(b"hello through an inherited handle").is_ok()
    }

    /// Opens process `pid` for waiting (`SYNCHRONIZE`).
    fn open_for_wait(pid: u32) -> OwnedHandle {
        use windows_sys::Win32::System::Threading::{OpenProcess, PROCESS_SYNCHRONIZE};
        // SAFETY: plain call with integer arguments; a null result is checked before the handle
        // is owned, and nothing else owns the new handle.
        unsafe {
            let handle = OpenProcess(PROCESS_SYNCHRONIZE, 0, pid);
            assert!(
                !handle.is_null(),
                "cannot open pid {pid}: {}",
                std::io::Error::last_os_error()
            );
            OwnedHandle::from_raw_handle(handle)
        }
    }

    fn defaults_are_spawn() {
        assert_eq!(get_start_method(), StartMethod::Spawn);
        assert_eq!(pifork::backend(), Backend::Handles);
        assert_eq!(pifork::backend().as_str(), "handles");
        assert!(pifork::cpu_count() >= 1);
    }

    fn start_join_and_result() {
        let mut p = Process::<f64>::entry("w.mul", &(1.5f64, 4.0f64));
        assert_eq!(p.get_start_method(), StartMethod::Spawn);
        crate::common::assert_lifecycle(&mut p, 6.0);
    }

    fn large_result_does_not_block() {
        let len = 1 << 20;
        let mut p = Process::<Vec<u8>>::entry("w.bytes", &len);
        p.start().unwrap();
        // Waiting on the sentinel alone must not deadlock: the result is read meanwhile.
        assert_eq!(wait(&[p.sentinel().unwrap()], Some(Duration::from_secs(60))).unwrap(), [0]);
        assert_eq!(p.result().unwrap(), pattern(len));
    }

    fn exitcode_is_none_while_running() {
        let mut p = Process::<()>::entry("w.sleep", &400u64);
        p.start().unwrap();
        assert!(p.is_alive().unwrap());
        assert_eq!(p.exitcode().unwrap(), None);
        p.join().unwrap();
        assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)));
        assert!(!p.is_alive().unwrap());
    }

    fn panic_travels_back() {
        let mut p = Process::<()>::entry("w.panic", &"boom at 42".to_string()).name("panicker");
        p.start().unwrap();
        p.join().unwrap();
        assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(1)));
        match p.result() {
            Err(Error::ChildPanicked { name, message, pid }) => {
                assert_eq!(name, "panicker");
                assert_eq!(message, "boom at 42");
                assert_eq!(Some(pid), p.pid().unwrap().map(|p| p.as_raw()));
            }
            other => panic!("expected ChildPanicked, got {other:?}"),
        }
    }

    fn unknown_entry_fails_in_the_child() {
        let mut p = Process::<()>::entry("w.nobody", &());
        p.start().unwrap();
        match p.result() {
            Err(Error::ChildPanicked { message, .. }) => {
                assert!(message.contains("w.nobody"), "{message}");
            }
            other => panic!("expected ChildPanicked, got {other:?}"),
        }
    }

    fn terminate_gives_minus_sigterm() {
        let mut p = Process::<()>::entry("w.sleep", &60_000u64).daemon(true).name("sleeper");
        p.start().unwrap();
        crate::common::assert_terminated(&mut p, "sleeper");
    }

    fn ending_an_ended_child_changes_nothing() {
        let mut p = Process::<()>::entry(NOOP_ENTRY, &());
        p.start().unwrap();
        // Ended, but not yet seen by the process object.
        assert_eq!(wait(&[p.sentinel().unwrap()], Some(Duration::from_secs(30))).unwrap(), [0]);
        p.terminate().unwrap();
        p.kill().unwrap();
        p.join().unwrap();
        assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)));
    }

    fn kill_gives_minus_sigkill() {
        let mut p = Process::<()>::entry("w.sleep", &60_000u64).daemon(true);
        p.start().unwrap();
        p.kill().unwrap();
        p.join().unwrap();
        let code = p.exitcode().unwrap().unwrap();
        assert_eq!(code, ExitCode::Signaled(9));
        assert_eq!(code.to_string(), "-SIGKILL");
    }

    fn join_timeout() {
        let mut p = Process::<()>::entry("w.sleep", &600u64);
        p.start().unwrap();
        let t = Instant::now();
        assert!(!p.join_timeout(Duration::from_millis(100)).unwrap());
        assert!(t.elapsed() >= Duration::from_millis(100));
        assert!(p.join_timeout(Duration::from_secs(30)).unwrap());
        assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)));
    }

    fn start_twice_is_an_error() {
        let mut p = Process::<()>::entry(NOOP_ENTRY, &());
        p.start().unwrap();
        assert_eq!(p.start(), Err(Error::AlreadyStarted));
        p.join().unwrap();
        assert_eq!(p.start(), Err(Error::AlreadyStarted));
    }

    fn calls_before_start_are_errors() {
        let mut p = Process::<()>::entry(NOOP_ENTRY, &());
        assert_eq!(p.join(), Err(Error::NotStarted));
        assert_eq!(p.terminate(), Err(Error::NotStarted));
        assert_eq!(p.sentinel().err(), Some(Error::NotStarted));
    }

    fn close_rules() {
        let mut p = Process::<()>::entry("w.sleep", &60_000u64).daemon(true);
        p.start().unwrap();
        assert_eq!(p.close(), Err(Error::StillRunning));
        p.kill().unwrap();
        p.join().unwrap();
        p.close().unwrap();
        p.close().unwrap();
        crate::common::assert_closed(&mut p);
        // Closing an unstarted process is allowed too.
        let mut q = Process::<()>::entry(NOOP_ENTRY, &());
        q.close().unwrap();
        assert_eq!(q.start(), Err(Error::Closed));
    }

    fn closures_need_an_entry() {
        let mut p = Process::new(|| 1u32);
        assert_eq!(p.start(), Err(Error::NeedsEntry { method: "spawn" }));
        let mut p = Process::new(|| 1u32).start_method(StartMethod::Fork);
        assert_eq!(p.start(), Err(Error::Unsupported { method: "fork" }));
        let mut p = Process::<()>::entry(NOOP_ENTRY, &()).start_method(StartMethod::Forkserver);
        assert_eq!(p.start(), Err(Error::Unsupported { method: "forkserver" }));
        let mut p = get_context(StartMethod::Fork).entry::<(), _>(NOOP_ENTRY, &());
        assert_eq!(p.start(), Err(Error::Unsupported { method: "fork" }));
        // A refused process can still be started with the method that exists here.
        let mut p = p_with_spawn();
        p.start().unwrap();
        p.join().unwrap();
    }

    fn p_with_spawn() -> Process<()> {
        get_context(StartMethod::Spawn).entry(NOOP_ENTRY, &())
    }

    fn wait_on_more_than_64() {
        const N: usize = 70;
        const QUICK: usize = 41;
        // Daemonic, so that a failed assertion does not leave the test joining sleepers.
        let mut procs: Vec<Process<()>> = (0..N)
            .map(|i| {
                Process::entry("w.sleep", &if i == QUICK { 2_000u64 } else { 60_000u64 })
                    .daemon(true)
            })
            .collect();
        // The quick one starts last: starting 70 processes takes a while under Wine.
        for (i, p) in procs.iter_mut().enumerate() {
            if i != QUICK {
                p.start().unwrap();
            }
        }
        procs[QUICK].start().unwrap();
        let sentinels: Vec<_> = procs.iter().map(|p| p.sentinel().unwrap()).collect();
        // Nothing has ended yet: the many-handle wait times out, empty.
        let t = Instant::now();
        assert_eq!(wait(&sentinels, Some(Duration::from_millis(50))).unwrap(), []);
        assert!(t.elapsed() >= Duration::from_millis(50));
        let ready = wait(&sentinels, Some(Duration::from_secs(60))).unwrap();
        assert_eq!(ready, [QUICK]);
        assert_eq!(wait_first(&procs, Some(Duration::ZERO)).unwrap(), Some(QUICK));
        // Two more end: both are reported, ascending, past the first group of 63.
        for i in [66, 3] {
            procs[i].terminate().unwrap();
            procs[i].join().unwrap();
        }
        let sentinels: Vec<_> = procs.iter().map(|p| p.sentinel().unwrap()).collect();
        assert_eq!(wait(&sentinels, None).unwrap(), [3, QUICK, 66]);
        for p in &mut procs {
            p.kill().unwrap();
        }
        for p in &mut procs {
            p.join().unwrap();
        }
    }

    fn supervisor_reports_each_once() {
        let mut sup = Supervisor::<()>::new();
        sup.start(Process::entry("w.sleep", &60_000u64).daemon(true)).unwrap();
        sup.start(Process::entry("w.sleep", &100u64)).unwrap();
        assert_eq!(sup.wait_first(Some(Duration::from_secs(30))).unwrap(), Some(1));
        assert_eq!(sup.wait_first(Some(Duration::from_millis(50))).unwrap(), None);
        sup.shutdown();
        assert_eq!(sup.processes_mut()[0].exitcode().unwrap(), Some(ExitCode::Signaled(15)));
    }

    /// Starts a middle process whose child is (or is not) daemonic; returns the middle and a
    /// handle to wait for its child.
    fn middle_and_grandchild(daemon: bool) -> (Process<()>, OwnedHandle) {
        let name = format!("pifork-middle-{}-{daemon}", std::process::id());
        let path = std::env::temp_dir().join(name);
        let path_text = path.to_string_lossy().into_owned();
        let _ = std::fs::remove_file(&path);
        let mut middle = Process::<()>::entry("w.middle", &(path_text, daemon));
        middle.start().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let pid: u32 = loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                break text.trim().parse().unwrap();
            }
            assert!(Instant::now() < deadline, "the middle never reported its child");
            assert!(middle.is_alive().unwrap(), "the middle ended: {:?}", middle.exitcode());
            sleep_ms(20);
        };
        let _ = std::fs::remove_file(&path);
        let grandchild = open_for_wait(pid);
        assert_eq!(wait(&[grandchild.as_handle()], Some(Duration::ZERO)).unwrap(), []);
        (middle, grandchild)
    }

    fn daemonic_child_dies_with_its_owner() {
        let (mut middle, grandchild) = middle_and_grandchild(true);
        middle.terminate().unwrap();
        middle.join().unwrap();
        let t = Instant::now();
        assert_eq!(
            wait(&[grandchild.as_handle()], Some(Duration::from_secs(2))).unwrap(),
            [0],
            "the daemonic grandchild outlived its owner"
        );
        println!("    grandchild gone {:.0} ms after its owner", t.elapsed().as_secs_f64() * 1e3);
    }

    /// The control: only daemonic children are bound to their owner's life.
    fn other_children_outlive_their_owner() {
        let (mut middle, grandchild) = middle_and_grandchild(false);
        middle.terminate().unwrap();
        middle.join().unwrap();
        assert_eq!(wait(&[grandchild.as_handle()], Some(Duration::from_millis(300))).unwrap(), []);
        // It ends by itself, later.
        assert_eq!(wait(&[grandchild.as_handle()], Some(Duration::from_secs(30))).unwrap(), [0]);
    }

    fn daemons_cannot_have_children() {
        let mut p = Process::<String>::entry("w.spawn_from_daemon", &()).daemon(true);
        p.start().unwrap();
        assert_eq!(p.result().unwrap(), Error::DaemonChildren.to_string());
    }

    fn pinning_sets_the_affinity() {
        let cpus = pifork::available_cpus();
        let cpu = *cpus.last().unwrap();
        let mut p = Process::<Vec<usize>>::entry("w.cpus", &()).cpus([cpu]);
        p.start().unwrap();
        assert_eq!(p.result().unwrap(), [cpu]);
        let mut q = Process::<()>::entry(NOOP_ENTRY, &()).cpus([4096]);
        assert_eq!(q.start(), Err(Error::CpuUnavailable { cpu: 4096 }));
    }

    fn pid_is_the_childs() {
        let mut p = Process::<u32>::entry("w.pid", &());
        p.start().unwrap();
        let pid = p.pid().unwrap().unwrap().as_raw() as u32;
        assert_eq!(p.result().unwrap(), pid);
    }

    fn inherited_handles_reach_the_child() {
        let (mut reader, writer) = std::io::pipe().unwrap();
        let value = writer.as_raw_handle().addr() as u64;
        let mut p =
            Process::<bool>::entry("w.write_handle", &value).inherit_fds([writer.as_raw_handle()]);
        p.start().unwrap();
        drop(writer);
        assert!(p.result().unwrap());
        let mut text = String::new();
        // The end of the pipe proves no other process kept a copy of the write end.
        reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello through an inherited handle");
    }

    /// Makes `handle` inheritable, as a careless library in the same process might.
    fn make_inheritable(handle: &impl AsRawHandle) {
        use windows_sys::Win32::Foundation::{HANDLE_FLAG_INHERIT, SetHandleInformation};
        // SAFETY: the handle is open (borrowed from a live owner) for the call, which only
        // changes its inheritance flag.
        let ok = unsafe {
            SetHandleInformation(handle.as_raw_handle(), HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT)
        };
        assert_ne!(ok, 0, "{}", std::io::Error::last_os_error());
    }

    fn unlisted_handles_stay_home() {
        let (mut reader, writer) = std::io::pipe().unwrap();
        make_inheritable(&writer);
        let mut p = Process::<()>::entry("w.sleep", &60_000u64).daemon(true);
        p.start().unwrap();
        drop(writer);
        // Were the write end inherited, the child would hold the pipe open while it sleeps.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut rest = Vec::new();
            let _ = tx.send(reader.read_to_end(&mut rest).map(|_| rest));
        });
        let read = rx.recv_timeout(Duration::from_secs(10));
        p.kill().unwrap();
        p.join().unwrap();
        assert_eq!(read.expect("the child holds an unlisted handle").unwrap(), b"");
    }

    fn measure_round_trip() {
        let runs = 21;
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let mut p = Process::<()>::entry(NOOP_ENTRY, &());
                p.start().unwrap();
                p.join().unwrap();
                assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)));
                t.elapsed()
            })
            .collect();
        times.sort_unstable();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "    spawn start+join round trip: median {:.0} us (min {:.0}, max {:.0}, {runs} runs)",
            us(times[runs / 2]),
            us(times[0]),
            us(times[runs - 1])
        );
    }

    type Test = (&'static str, fn());

    const TESTS: &[Test] = &[
        ("defaults_are_spawn", defaults_are_spawn),
        ("start_join_and_result", start_join_and_result),
        ("large_result_does_not_block", large_result_does_not_block),
        ("exitcode_is_none_while_running", exitcode_is_none_while_running),
        ("panic_travels_back", panic_travels_back),
        ("unknown_entry_fails_in_the_child", unknown_entry_fails_in_the_child),
        ("terminate_gives_minus_sigterm", terminate_gives_minus_sigterm),
        ("ending_an_ended_child_changes_nothing", ending_an_ended_child_changes_nothing),
        ("kill_gives_minus_sigkill", kill_gives_minus_sigkill),
        ("join_timeout", join_timeout),
        ("start_twice_is_an_error", start_twice_is_an_error),
        ("calls_before_start_are_errors", calls_before_start_are_errors),
        ("close_rules", close_rules),
        ("closures_need_an_entry", closures_need_an_entry),
        ("wait_on_more_than_64", wait_on_more_than_64),
        ("supervisor_reports_each_once", supervisor_reports_each_once),
        ("daemonic_child_dies_with_its_owner", daemonic_child_dies_with_its_owner),
        ("other_children_outlive_their_owner", other_children_outlive_their_owner),
        ("daemons_cannot_have_children", daemons_cannot_have_children),
        ("pinning_sets_the_affinity", pinning_sets_the_affinity),
        ("pid_is_the_childs", pid_is_the_childs),
        ("inherited_handles_reach_the_child", inherited_handles_reach_the_child),
        ("unlisted_handles_stay_home", unlisted_handles_stay_home),
        (
            "a_program_without_main_guard_gets_a_clear_error",
            a_program_without_main_guard_gets_a_clear_error,
        ),
        ("measure_round_trip", measure_round_trip),
    ];

    fn a_program_without_main_guard_gets_a_clear_error() {
        // main() skips the guard for this entry, as a program that forgot it would.
        let started = Instant::now();
        let mut p = Process::<()>::entry("w.unguarded", &());
        assert_eq!(p.start(), Err(Error::NoMainGuard));
        assert!(started.elapsed() < Duration::from_secs(20), "the child ended; no time-out needed");
    }

    pub fn main() {
        register_entries();
        if std::env::var("PIFORK_SPAWN").is_ok_and(|v| v.starts_with("v1;w.unguarded;")) {
            // Play a program whose main forgot the guard: its own start is refused (no process
            // explosion) and it exits without running an entry.
            let mut p = Process::<()>::entry(NOOP_ENTRY, &());
            std::process::exit(if p.start() == Err(Error::NoMainGuard) { 3 } else { 4 });
        }
        pifork::main_guard();
        let filter: Vec<String> =
            std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
        let (mut passed, mut failed) = (0, 0);
        for &(name, test) in TESTS {
            if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
                continue;
            }
            let t = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(test));
            let ms = t.elapsed().as_secs_f64() * 1e3;
            match outcome {
                Ok(()) => {
                    passed += 1;
                    println!("test {name} ... ok ({ms:.0} ms)");
                }
                Err(_) => {
                    failed += 1;
                    println!("test {name} ... FAILED ({ms:.0} ms)");
                }
            }
            let _ = std::io::stdout().flush();
        }
        println!("windows: {passed} passed, {failed} failed");
        if failed > 0 {
            std::process::exit(1);
        }
    }
}
