//! Behaviours matched to CPython's own test suite: children starting children, a fork server
//! that survives its death and holds nothing of the parent's, descriptors that never leak into
//! siblings or spawned programs, flushed output, a child's own start method, and the
//! `current_process`, `parent_process`, `active_children` and `send_signal` API.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use pifork::{
    Backend, ExitCode, Process, Sender, StartMethod, Supervisor, channel, current_process,
    forkserver, parent_process, wait,
};

use crate::common::{Test, alive, eventually, open_fds, rounds, sleep_ms};

const TREE: &str = "parity.tree";
const NAP: &str = "parity.nap";
const FDS: &str = "parity.fds";
const OPEN: &str = "parity.open";
const PRINT: &str = "parity.print";
const WHO: &str = "parity.who";
const ORPHAN: &str = "parity.orphan";
const WATCHER: &str = "parity.watcher";

/// Registers this module's entry points (before `main_guard`).
pub fn register_entries() {
    pifork::register(TREE, tree);
    pifork::register(NAP, |ms: u64| {
        sleep_ms(ms);
        ms
    });
    pifork::register(FDS, |ms: u64| {
        // Counted while the siblings run.
        let fds = open_fds();
        sleep_ms(ms);
        fds
    });
    pifork::register(OPEN, |fd: i32| is_open(fd));
    pifork::register(PRINT, |text: String| print!("{text}"));
    pifork::register(WHO, who);
    pifork::register(ORPHAN, orphan);
    pifork::register(WATCHER, watcher);
}

pub const TESTS: &[Test] = &[
    Test::EachMethod("children_start_children_three_levels_deep", children_start_children),
    Test::Once("a_default_forkserver_nests", a_default_forkserver_nests),
    Test::Once("the_fork_server_ignores_sigint", the_fork_server_ignores_sigint),
    Test::Once("a_killed_fork_server_is_replaced", a_killed_fork_server_is_replaced),
    Test::Once("the_fork_server_holds_none_of_the_parents", fork_server_holds_none_of_the_parents),
    Test::EachMethod("siblings_hold_the_same_descriptors", siblings_hold_the_same_descriptors),
    Test::EachMethod("an_ended_childs_sentinel_is_ready_at_once", ended_sentinel_is_ready),
    Test::EachMethod("buffered_output_reaches_stdout", buffered_output_reaches_stdout),
    Test::EachMethod("unlisted_descriptors_stay_home", unlisted_descriptors_stay_home),
    Test::EachMethod("a_childs_default_method_is_its_own", a_childs_default_method_is_its_own),
    Test::EachMethod("current_process_knows_itself", current_process_knows_itself),
    Test::EachMethod("parent_process_is_the_starter", parent_process_is_the_starter),
    Test::EachMethod("active_children_lists_the_live_ones", active_children_lists_the_live_ones),
    Test::EachMethod("send_signal_and_interrupt", send_signal_and_interrupt),
];

fn is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only reads a descriptor's flags; an unused number gives EBADF.
    unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFD) >= 0 }
}

/// A process `depth` levels above the leaves: starts two children with its default start
/// method, which must be its own; returns the processes in its subtree and whether each of them
/// ran with `method` as its default.
fn tree((depth, method): (u32, String)) -> (u32, bool) {
    let mine = pifork::get_start_method();
    let mut ok = mine.as_str() == method && current_process().start_method == Some(mine);
    let mut count = 1;
    if depth > 0 {
        let mut kids: Vec<Process<(u32, bool)>> =
            (0..2).map(|_| Process::entry(TREE, &(depth - 1, method.clone()))).collect();
        for kid in &mut kids {
            kid.start().unwrap();
        }
        for kid in &mut kids {
            let (n, kid_ok) = kid.result().unwrap();
            count += n;
            ok &= kid_ok;
        }
    }
    (count, ok)
}

fn children_start_children(m: StartMethod) {
    let mut root = Process::<(u32, bool)>::entry(TREE, &(2u32, m.to_string())).start_method(m);
    root.start().unwrap();
    assert_eq!(root.result().unwrap(), (7, true), "{m}: three levels, all started with {m}");
}

fn a_default_forkserver_nests() {
    pifork::set_start_method(StartMethod::Forkserver);
    let mut root = Process::<(u32, bool)>::entry(TREE, &(1u32, "forkserver".to_string()));
    let started = root.start();
    pifork::set_start_method(StartMethod::Fork);
    started.unwrap();
    assert_eq!(root.result().unwrap(), (3, true));
}

fn nap(ms: u64, daemon: bool) -> Process<u64> {
    Process::entry(NAP, &ms).start_method(StartMethod::Forkserver).daemon(daemon)
}

fn signal(pid: i32, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).unwrap();
}

fn the_fork_server_ignores_sigint() {
    forkserver::start().unwrap();
    let server = forkserver::pid().unwrap();
    let mut p = nap(300, false);
    p.start().unwrap();
    // Ctrl-C reaches the whole process group; the parent handles it, the server must not die.
    signal(server.as_raw(), nix::sys::signal::Signal::SIGINT);
    sleep_ms(100);
    assert!(alive(server.as_raw()), "the server died of SIGINT");
    assert_eq!(p.result().unwrap(), 300);
    assert_eq!(forkserver::pid(), Some(server));
}

fn a_killed_fork_server_is_replaced() {
    forkserver::start().unwrap();
    let old = forkserver::pid().unwrap();
    let mut worker = nap(500, false);
    let mut daemon = nap(60_000, true);
    worker.start().unwrap();
    daemon.start().unwrap();
    let worker_pid = worker.pid().unwrap().unwrap().as_raw();
    signal(old.as_raw(), nix::sys::signal::Signal::SIGKILL);
    // Nobody is left to report how they end: exit code 255, as in CPython.
    worker.join().unwrap();
    daemon.join().unwrap();
    assert_eq!(worker.exitcode().unwrap(), Some(ExitCode::Exited(255)));
    assert_eq!(daemon.exitcode().unwrap(), Some(ExitCode::Exited(255)));
    // The next start has a new server.
    let mut next = nap(1, false);
    next.start().unwrap();
    assert_eq!(next.result().unwrap(), 1);
    let new = forkserver::pid().unwrap();
    assert_ne!(new, old);
    // The orphaned non-daemon finishes its work on its own.
    assert!(eventually(Duration::from_secs(5), || !alive(worker_pid)));
}

fn fork_server_holds_none_of_the_parents() {
    forkserver::stop();
    let path = std::env::temp_dir().join(format!("pifork-parity-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    // Close-on-exec, at a number of its own, opened before the server starts.
    let at_50 = nix::fcntl::fcntl(&listener, nix::fcntl::F_DUPFD_CLOEXEC(50)).unwrap();
    // SAFETY: F_DUPFD_CLOEXEC just returned this new descriptor; nothing else owns it.
    let at_50 = unsafe { OwnedFd::from_raw_fd(at_50) };
    forkserver::start().unwrap();
    let mut p =
        Process::<bool>::entry(OPEN, &at_50.as_raw_fd()).start_method(StartMethod::Forkserver);
    p.start().unwrap();
    assert!(!p.result().unwrap(), "the worker holds the parent's listening socket");
    drop((listener, at_50));
    let refused = std::os::unix::net::UnixStream::connect(&path).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "the server holds it");
    std::fs::remove_file(&path).unwrap();
}

fn siblings_hold_the_same_descriptors(m: StartMethod) {
    let mut sup: Supervisor<Vec<i32>> = Supervisor::new();
    for i in 0..5u64 {
        sup.start(Process::entry(FDS, &(400 - 50 * i)).start_method(m)).unwrap();
    }
    let counts: Vec<usize> =
        sup.processes_mut().iter_mut().map(|p| p.result().unwrap().len()).collect();
    assert!(counts.iter().all(|&c| c == counts[0]), "{m}: {counts:?}");
    if m != StartMethod::Fork {
        // A fresh program or a server's worker: stdio and its own pipe ends, nothing else.
        let own = match pifork::backend() {
            Backend::Pidfd => 1,
            Backend::Pipe => 2,
        };
        assert_eq!(counts[0], 3 + own, "{m}");
    }
}

fn ended_sentinel_is_ready(m: StartMethod) {
    // A sibling runs throughout; 1000 children come and go beside it (100 under an emulator).
    let mut slow = nap_with(m, 60_000);
    slow.start().unwrap();
    for round in 0..rounds(1000) {
        let mut quick = nap_with(m, 0);
        quick.start().unwrap();
        quick.join().unwrap();
        let ready = wait(&[quick.sentinel().unwrap()], Some(Duration::ZERO)).unwrap();
        assert_eq!(ready, vec![0], "{m}, round {round}: a joined child's sentinel is ready");
    }
    slow.terminate().unwrap();
    slow.join().unwrap();
}

fn nap_with(m: StartMethod, ms: u64) -> Process<u64> {
    Process::entry(NAP, &ms).start_method(m).daemon(true)
}

fn buffered_output_reaches_stdout(m: StartMethod) {
    // The parent's stdout, and so the children's (and a new fork server's), goes to a file.
    let file = tempfile(&format!("print-{m}"));
    std::io::stdout().flush().unwrap();
    forkserver::stop();
    // SAFETY: descriptor 1 stays open throughout (a copy of the file, then of the saved one);
    // `saved` is a new descriptor of this test's own, closed below.
    let saved = unsafe {
        let saved = nix::libc::dup(1);
        assert!(saved >= 0 && nix::libc::dup2(file.as_raw_fd(), 1) == 1);
        saved
    };
    let text = format!("no newline from {m}");
    let mut p = Process::<()>::entry(PRINT, &text).start_method(m);
    let outcome = p.start().and_then(|()| p.join());
    forkserver::stop();
    std::io::stdout().flush().unwrap();
    // SAFETY: as above; `saved` is closed once copied back.
    unsafe {
        assert_eq!(nix::libc::dup2(saved, 1), 1);
        nix::libc::close(saved);
    }
    outcome.unwrap();
    let mut written = String::new();
    std::fs::File::open(file.path()).unwrap().read_to_string(&mut written).unwrap();
    assert_eq!(written, text);
}

/// A file under the temp dir, removed on drop.
struct TempFile {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl TempFile {
    fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl AsRawFd for TempFile {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn tempfile(tag: &str) -> TempFile {
    let path = std::env::temp_dir().join(format!("pifork-{}-{tag}", std::process::id()));
    TempFile { file: std::fs::File::create(&path).unwrap(), path }
}

fn unlisted_descriptors_stay_home(m: StartMethod) {
    // Without close-on-exec, at a number of its own: a fork child inherits it (as in CPython),
    // a spawned or forkserver child must not.
    forkserver::stop();
    let (r, _w) = nix::unistd::pipe().unwrap();
    let at_60 = nix::fcntl::fcntl(&r, nix::fcntl::F_DUPFD(60)).unwrap();
    // SAFETY: F_DUPFD just returned this new descriptor; nothing else owns it.
    let at_60 = unsafe { OwnedFd::from_raw_fd(at_60) };
    let (listed, _listed_w) = nix::unistd::pipe().unwrap();
    let mut p = Process::<bool>::entry(OPEN, &at_60.as_raw_fd()).start_method(m);
    p.start().unwrap();
    assert_eq!(p.result().unwrap(), m == StartMethod::Fork, "{m}");
    let mut q = Process::<bool>::entry(OPEN, &listed.as_raw_fd())
        .start_method(m)
        .inherit_fds([listed.as_raw_fd()]);
    q.start().unwrap();
    assert!(q.result().unwrap(), "{m}: a listed descriptor crosses");
    forkserver::stop();
}

fn a_childs_default_method_is_its_own(m: StartMethod) {
    for default in StartMethod::ALL {
        pifork::set_start_method(default);
        let mut p = Process::<(String, u32, String)>::entry(WHO, &()).start_method(m);
        let started = p.start();
        pifork::set_start_method(StartMethod::Fork);
        started.unwrap();
        let (_, _, method) = p.result().unwrap();
        assert_eq!(method, m.as_str(), "default {default}, started with {m}");
    }
}

/// The child's name, its parent's pid and its default start method.
fn who((): ()) -> (String, u32, String) {
    let me = current_process();
    assert_eq!(me.pid.as_raw() as u32, std::process::id());
    assert_eq!(me.start_method, Some(pifork::get_start_method()));
    let parent = parent_process().expect("a child has a parent");
    (me.name, parent.pid().as_raw() as u32, pifork::get_start_method().as_str().to_string())
}

fn current_process_knows_itself(m: StartMethod) {
    let main = current_process();
    assert_eq!(main.name, "MainProcess");
    assert_eq!(main.start_method, None);
    assert!(!main.daemon);
    assert_eq!(main.pid.as_raw() as u32, std::process::id());
    assert!(parent_process().is_none(), "the main process has no pifork parent");
    let mut p = Process::<(String, u32, String)>::entry(WHO, &()).start_method(m).name("kid; 1");
    p.start().unwrap();
    let (name, parent, method) = p.result().unwrap();
    assert_eq!(
        (name.as_str(), parent, method.as_str()),
        ("kid; 1", std::process::id(), m.as_str())
    );
}

/// Starts a watcher of its own parent (this process), then waits to be killed.
fn orphan((fd, method): (i32, String)) {
    let m: StartMethod = method.parse().unwrap();
    let mut w = Process::<()>::entry(WATCHER, &fd).start_method(m).inherit_fds([fd]);
    w.start().unwrap();
    sleep_ms(60_000);
}

/// Reports its pid on the inherited channel once it watches its parent (and the parent is
/// there), then waits until the parent is gone (at most 10 s) and says whether it saw that.
fn watcher(fd: i32) {
    let tx = Sender::<i32>::from_inherited(fd).unwrap();
    let parent = parent_process().unwrap();
    let sentinel = parent.sentinel().unwrap();
    assert!(wait(&[sentinel.sentinel()], Some(Duration::ZERO)).unwrap().is_empty());
    tx.send(&(std::process::id() as i32)).unwrap();
    let ready = wait(&[sentinel.sentinel()], Some(Duration::from_secs(10))).unwrap();
    tx.send(&if ready == [0] { 1 } else { 0 }).unwrap();
}

fn parent_process_is_the_starter(m: StartMethod) {
    let (tx, rx) = channel::<i32>().unwrap();
    let keep = [tx.as_raw_fd()];
    let mut middle =
        Process::<()>::entry(ORPHAN, &(keep[0], m.to_string())).start_method(m).inherit_fds(keep);
    middle.start().unwrap();
    drop(tx);
    let watcher = rx.recv().unwrap().unwrap();
    middle.kill().unwrap();
    middle.join().unwrap();
    assert_eq!(rx.recv().unwrap(), Some(1), "{m}: the parent's sentinel fired");
    assert!(eventually(Duration::from_secs(5), || !alive(watcher)));
}

fn active_children_lists_the_live_ones(m: StartMethod) {
    assert!(pifork::active_children().is_empty());
    let mut slow = nap_with(m, 60_000).name("slow");
    let mut quick = nap_with(m, 0).name("quick");
    slow.start().unwrap();
    quick.start().unwrap();
    let slow_pid = slow.pid().unwrap().unwrap();
    let quick_pid = quick.pid().unwrap().unwrap();
    assert!(eventually(Duration::from_secs(5), || {
        let live = pifork::active_children();
        live.iter().all(|c| c.pid != quick_pid) && live.iter().any(|c| c.pid == slow_pid)
    }));
    let live = pifork::active_children();
    assert_eq!(live.len(), 1, "{m}: {live:?}");
    assert_eq!(live[0].name, "slow");
    // Reaped (or found ended) on the way: its Process still tells how it ended.
    quick.join().unwrap();
    assert_eq!(quick.exitcode().unwrap(), Some(ExitCode::Exited(0)), "{m}");
    assert_eq!(quick.result().unwrap(), 0);
    slow.terminate().unwrap();
    slow.join().unwrap();
    assert!(pifork::active_children().is_empty(), "{m}");
}

fn send_signal_and_interrupt(m: StartMethod) {
    let mut usr1 = nap_with(m, 60_000);
    let mut int = nap_with(m, 60_000);
    usr1.start().unwrap();
    int.start().unwrap();
    usr1.send_signal(10).unwrap();
    int.interrupt().unwrap();
    usr1.join().unwrap();
    int.join().unwrap();
    assert_eq!(usr1.exitcode().unwrap().unwrap().to_string(), "-SIGUSR1", "{m}");
    assert_eq!(int.exitcode().unwrap().unwrap().to_string(), "-SIGINT", "{m}");
    assert!(usr1.send_signal(10).is_ok(), "{m}: a reaped child is not signalled");
    let mut p = nap_with(m, 60_000);
    p.start().unwrap();
    let err = p.send_signal(999).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(nix::libc::EINVAL), "{m}: {err}");
    p.kill().unwrap();
    p.join().unwrap();
}
