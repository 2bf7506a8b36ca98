//! The process model on Windows (spawn only), run for real: on Windows, or under Wine with
//! `make test-windows`. The portable behaviour tests of tests/process (`lifecycle`, `wait`:
//! start, join, result, exit codes, terminate and kill, close, panics, daemons, pinning,
//! `wait`, `Supervisor`) run here for spawn; this file adds what is Windows' own: the defaults,
//! waits on more than 64 handles, job objects for daemonic children, handle inheritance, a
//! result read while only the sentinel is waited on. A plain `main` registers the entry points,
//! calls `main_guard` (a spawned child runs its entry there and exits), then runs the tests one
//! after the other and exits non-zero if any failed. Elsewhere this test only says it is
//! skipped.

mod common;
#[cfg(windows)]
#[path = "process/lifecycle.rs"]
mod lifecycle;
#[cfg(windows)]
#[path = "process/wait.rs"]
mod wait;

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
    use std::time::{Duration, Instant};

    use pifork::{
        Backend, Error, ExitCode, NOOP_ENTRY, Process, StartMethod, get_context, get_start_method,
        wait, wait_first,
    };

    use crate::common::{Case, Test, cases, sleep_ms};

    /// `len` bytes of a pattern a truncated or reordered copy would not match.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// The entries of this file's tests; the shared modules register their own.
    fn register_entries() {
        pifork::register("w.bytes", pattern);
        pifork::register("w.sleep", sleep_ms);
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
        assert_eq!(Process::<()>::entry(NOOP_ENTRY, &()).get_start_method(), StartMethod::Spawn);
        assert_eq!(pifork::backend(), Backend::Handles);
        assert_eq!(pifork::backend().as_str(), "handles");
        assert!(pifork::cpu_count() >= 1);
    }

    fn a_sentinel_wait_alone_does_not_block_a_large_result() {
        let len = 1 << 20;
        let mut p = Process::<Vec<u8>>::entry("w.bytes", &len);
        p.start().unwrap();
        // Waiting on the sentinel alone must not deadlock: the result is read meanwhile.
        assert_eq!(wait(&[p.sentinel().unwrap()], Some(Duration::from_secs(60))).unwrap(), [0]);
        assert_eq!(p.result().unwrap(), pattern(len));
    }

    fn closures_need_an_entry() {
        let mut p = Process::new(|| 1u32);
        assert_eq!(p.start(), Err(Error::NeedsEntry { method: StartMethod::Spawn }));
        let mut p = Process::new(|| 1u32).start_method(StartMethod::Fork);
        assert_eq!(p.start(), Err(Error::Unsupported { method: StartMethod::Fork }));
        let mut p = Process::<()>::entry(NOOP_ENTRY, &()).start_method(StartMethod::Forkserver);
        assert_eq!(p.start(), Err(Error::Unsupported { method: StartMethod::Forkserver }));
        let mut p = get_context(StartMethod::Fork).entry::<(), _>(NOOP_ENTRY, &());
        assert_eq!(p.start(), Err(Error::Unsupported { method: StartMethod::Fork }));
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

    fn a_program_without_main_guard_gets_a_clear_error() {
        // main() skips the guard for this entry, as a program that forgot it would.
        let started = Instant::now();
        let mut p = Process::<()>::entry("w.unguarded", &());
        assert_eq!(p.start(), Err(Error::NoMainGuard));
        assert!(started.elapsed() < Duration::from_secs(20), "the child ended; no time-out needed");
    }

    /// This file's tests, all run once (spawn being the only method).
    const TESTS: &[Test] = &[
        Test::Once("defaults_are_spawn", defaults_are_spawn),
        Test::Once(
            "a_sentinel_wait_alone_does_not_block_a_large_result",
            a_sentinel_wait_alone_does_not_block_a_large_result,
        ),
        Test::Once("closures_need_an_entry", closures_need_an_entry),
        Test::Once("wait_on_more_than_64", wait_on_more_than_64),
        Test::Once("daemonic_child_dies_with_its_owner", daemonic_child_dies_with_its_owner),
        Test::Once("other_children_outlive_their_owner", other_children_outlive_their_owner),
        Test::Once("inherited_handles_reach_the_child", inherited_handles_reach_the_child),
        Test::Once("unlisted_handles_stay_home", unlisted_handles_stay_home),
        Test::Once(
            "a_program_without_main_guard_gets_a_clear_error",
            a_program_without_main_guard_gets_a_clear_error,
        ),
        Test::Once("measure_round_trip", measure_round_trip),
    ];

    /// The shared behaviour tests (for spawn), then this file's.
    fn all_cases() -> Vec<Case> {
        let spawn = [StartMethod::Spawn];
        let mut all = cases("lifecycle", &crate::lifecycle::tests(), &spawn);
        all.extend(cases("wait", &crate::wait::tests(), &spawn));
        all.extend(cases("windows", TESTS, &spawn));
        all
    }

    pub fn main() {
        register_entries();
        crate::lifecycle::register_entries();
        crate::wait::register_entries();
        if crate::common::spawned_entry().as_deref() == Some("w.unguarded") {
            // Play a program whose main forgot the guard: its own start is refused (no process
            // explosion) and it exits without running an entry.
            let mut p = Process::<()>::entry(NOOP_ENTRY, &());
            std::process::exit(if p.start() == Err(Error::NoMainGuard) { 3 } else { 4 });
        }
        pifork::main_guard();
        let filter: Vec<String> =
            std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
        let (mut passed, mut failed) = (0, 0);
        for case in all_cases() {
            if !filter.is_empty() && !filter.iter().any(|f| case.name.contains(f.as_str())) {
                continue;
            }
            let t = Instant::now();
            let ok = case.passes();
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if ok {
                passed += 1;
                println!("test {} ... ok ({ms:.0} ms)", case.name);
            } else {
                failed += 1;
                println!("test {} ... FAILED ({ms:.0} ms)", case.name);
            }
            let _ = std::io::stdout().flush();
        }
        println!("windows: {passed} passed, {failed} failed");
        if failed > 0 {
            std::process::exit(1);
        }
    }
}
