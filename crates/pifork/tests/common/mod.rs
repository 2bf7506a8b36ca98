//! Helpers shared by the integration tests: process-table inspection, assertions on a
//! process's life, and the test table of the single-threaded suites (tests/process,
//! tests/windows; the appliance's tests include this file too).
#![allow(dead_code)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use pifork::StartMethod;

/// A test of the single-threaded suites.
#[derive(Clone, Copy)]
pub enum Test {
    /// Runs once.
    Once(&'static str, fn()),
    /// Runs once for each start method the suite covers, as `name[method]`.
    EachMethod(&'static str, fn(StartMethod)),
    /// A test that needs no second process: runs here, then in a child started by each
    /// method (`name[method]`), which finds the body by its full name through the suite's
    /// [`IN_CHILD`] entry; so its rules are seen to hold in a process of every start.
    InChildren(&'static str, fn()),
}

/// The entry a suite with [`Test::InChildren`] tests registers: given a test's full name, it
/// runs that test's body and answers whether it passed.
pub const IN_CHILD: &str = "suite.in_child";

/// Runs the `InChildren` test `name` (full name) in a child started by `m`: it must pass.
fn in_child(name: &str, m: StartMethod) {
    let mut p = pifork::Process::<bool>::entry(IN_CHILD, &name.to_string()).start_method(m);
    p.start().unwrap();
    assert_eq!(p.result(), Ok(true), "{name} in a child started by {m}");
}

/// The body of the `InChildren` test whose full name is `name`, among `groups`.
pub fn child_body(groups: &[(&str, Vec<Test>)], name: &str) -> Option<fn()> {
    groups.iter().find_map(|(group, tests)| {
        tests.iter().find_map(|t| match *t {
            Test::InChildren(n, f) if format!("{group}::{n}") == name => Some(f),
            _ => None,
        })
    })
}

/// What the [`IN_CHILD`] entry answers: whether the body `f` ran without a panic.
pub fn passes_in_child(f: Option<fn()>) -> bool {
    f.is_some_and(|f| catch_unwind(f).is_ok())
}

/// One run of a test: its full name (`group::name` or `group::name[method]`) and its body.
pub struct Case {
    /// The name the suite prints and filters on.
    pub name: String,
    run: Box<dyn Fn()>,
}

impl Case {
    /// Runs the test; false if it panicked.
    pub fn passes(&self) -> bool {
        catch_unwind(AssertUnwindSafe(&self.run)).is_ok()
    }
}

/// The runs of `tests`, named under `group`: one per test, or one per method of `methods`
/// for a test that runs for each start method.
pub fn cases(group: &str, tests: &[Test], methods: &[StartMethod]) -> Vec<Case> {
    let mut out = Vec::new();
    for test in tests {
        match *test {
            Test::Once(name, f) => {
                out.push(Case { name: format!("{group}::{name}"), run: Box::new(f) })
            }
            Test::EachMethod(name, f) => out.extend(methods.iter().map(|&m| Case {
                name: format!("{group}::{name}[{m}]"),
                run: Box::new(move || f(m)),
            })),
            Test::InChildren(name, f) => {
                let full = format!("{group}::{name}");
                out.push(Case { name: full.clone(), run: Box::new(f) });
                out.extend(methods.iter().map(|&m| {
                    let full = full.clone();
                    Case { name: format!("{full}[{m}]"), run: Box::new(move || in_child(&full, m)) }
                }));
            }
        }
    }
    out
}

/// In a spawned child: the entry named in its `PIFORK_SPAWN` (`v2;entry;...`).
pub fn spawned_entry() -> Option<String> {
    std::env::var("PIFORK_SPAWN").ok()?.split(';').nth(1).map(str::to_string)
}

/// Sleeps `ms` milliseconds.
pub fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Pids whose parent is `ppid`, from /proc/*/stat.
pub fn children_of(ppid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Some((_, parent)) = stat(pid)
            && parent == ppid
        {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// All processes below `pid` (children, grandchildren, ...).
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for child in children_of(p) {
            out.push(child);
            frontier.push(child);
        }
    }
    out.sort_unstable();
    out
}

/// (state, ppid) of `pid`, from /proc/<pid>/stat; None if it does not exist.
pub fn stat(pid: i32) -> Option<(char, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// True if `pid` is running (exists and is not a zombie).
pub fn alive(pid: i32) -> bool {
    matches!(stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// The descriptors open in this process (excluding the one used to list them).
pub fn open_fds() -> Vec<i32> {
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

/// Polls `cond` every 10 ms until it holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// True when the binary under test runs under an emulator (`PIFORK_RUNNER` set, as
/// `make test-aarch64` does).
pub fn emulated() -> bool {
    std::env::var_os("PIFORK_RUNNER").is_some_and(|r| !r.is_empty())
}

/// A finished command's stderr, as text.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `native` rounds of a loop that hunts a race, or a tenth of them under an emulator, where
/// every spawned child is a new emulator and costs a hundred times more.
pub fn rounds(native: u64) -> u64 {
    if emulated() { native / 10 } else { native }
}

/// After `close()`, every call on a process is `Error::Closed` (CPython's ValueError).
pub fn assert_closed<T: pifork::Message>(p: &mut pifork::Process<T>) {
    use pifork::Error::Closed;
    assert_eq!(p.is_alive(), Err(Closed));
    assert_eq!(p.exitcode(), Err(Closed));
    assert_eq!(p.pid(), Err(Closed));
    assert_eq!(p.join(), Err(Closed));
    assert_eq!(p.join_timeout(Duration::ZERO), Err(Closed));
    assert_eq!(p.start(), Err(Closed));
    assert_eq!(p.terminate(), Err(Closed));
    assert_eq!(p.kill(), Err(Closed));
    assert_eq!(p.sentinel().err(), Some(Closed));
    assert!(matches!(p.result(), Err(Closed)));
}

/// The life of a process that returns `expected`: nothing before start, a pid of its own
/// once started, exit code 0 and not alive once joined, and a result that can be read twice.
pub fn assert_lifecycle(p: &mut pifork::Process<f64>, expected: f64) {
    assert_eq!(p.exitcode().unwrap(), None);
    assert_eq!(p.pid().unwrap(), None);
    assert!(!p.is_alive().unwrap());
    p.start().unwrap();
    let pid = p.pid().unwrap().expect("started").as_raw();
    assert!(pid > 0 && pid as u32 != std::process::id());
    p.join().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(pifork::ExitCode::Exited(0)));
    assert!(!p.is_alive().unwrap());
    assert_eq!(p.result().unwrap(), expected);
    assert_eq!(p.result().unwrap(), expected, "the result can be read again");
}

/// Terminates `p`, a running process named `name`, and checks how it ended, as CPython reports
/// it: exit code -SIGTERM (-15), and a result error that names the process and the signal.
/// Ending it again then changes nothing.
pub fn assert_terminated<T: pifork::Message + std::fmt::Debug>(
    p: &mut pifork::Process<T>,
    name: &str,
) {
    use pifork::ExitCode;
    assert!(p.is_alive().unwrap());
    p.terminate().unwrap();
    p.join().unwrap();
    let code = p.exitcode().unwrap().unwrap();
    assert_eq!(code, ExitCode::Signaled(15));
    assert_eq!(code.code(), -15);
    assert_eq!(code.to_string(), "-SIGTERM");
    let err = p.result().unwrap_err();
    assert!(matches!(err, pifork::Error::ChildFailed { .. }), "{err:?}");
    assert!(err.to_string().contains(name) && err.to_string().contains("-SIGTERM"), "{err}");
    // Signalling a reaped process does nothing (and cannot hit a recycled pid).
    p.terminate().unwrap();
    p.kill().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Signaled(15)));
}

/// Runs a single-threaded suite's `cases` one after the other on this thread, as `cargo test`
/// would list and filter them (`--list`, a name filter), checking after each that it left no
/// child process behind (the fork server aside, which is stopped and checked at the end).
/// Exits non-zero if any failed.
#[cfg(target_os = "linux")]
pub fn run_suite(cases: Vec<Case>) {
    let me = std::process::id() as i32;
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for case in &cases {
            println!("{}: test", case.name);
        }
        return;
    }
    let filter = args.iter().find(|a| !a.starts_with('-'));
    println!("backend: {}", pifork::backend().as_str());
    let mut failed = Vec::new();
    let mut ran = 0;
    for case in cases.iter().filter(|c| filter.is_none_or(|f| c.name.contains(f.as_str()))) {
        ran += 1;
        let passed = case.passes();
        let server = pifork::forkserver::pid().map(|p| p.as_raw());
        let leftovers: Vec<i32> =
            children_of(me).into_iter().filter(|&p| Some(p) != server).collect();
        let ok = passed && leftovers.is_empty();
        println!("test {} ... {}", case.name, if ok { "ok" } else { "FAILED" });
        if !leftovers.is_empty() {
            println!("  left child processes behind: {leftovers:?}");
        }
        if !ok {
            failed.push(case.name.as_str());
        }
    }
    pifork::forkserver::stop();
    let leftovers = children_of(me);
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
