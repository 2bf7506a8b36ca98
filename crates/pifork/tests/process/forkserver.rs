//! The fork server itself: started on demand and stopped, it serves only its parent, and it
//! dies with its parent (and so do its daemonic workers).

use std::os::fd::AsRawFd;
use std::time::Duration;

use pifork::{Process, Sender, StartMethod, channel, forkserver};

use crate::common::{Test, alive, eventually, sleep_ms};

const MUL: &str = "forkserver.mul";
const SLEEP: &str = "forkserver.sleep";
const MIDDLE: &str = "forkserver.middle";
const SEND_SEVEN: &str = "forkserver.send_seven";

/// Registers this module's entry points (before `main_guard`).
pub fn register_entries() {
    pifork::register(MUL, |(a, b): (f64, f64)| a * b);
    pifork::register(SLEEP, sleep_ms);
    pifork::register(MIDDLE, middle);
    pifork::register(SEND_SEVEN, |fd: i32| {
        Sender::<u64>::from_inherited(fd).unwrap().send(&7).unwrap()
    });
}

pub const TESTS: &[Test] = &[
    Test::Once("forkserver_starts_on_demand_and_stops", forkserver_starts_on_demand_and_stops),
    Test::Once("forkserver_refuses_strangers", forkserver_refuses_strangers),
    Test::Once("forkserver_dies_with_its_parent", forkserver_dies_with_its_parent),
    Test::Once(
        "forkserver_places_descriptors_under_a_small_descriptor_limit",
        forkserver_places_descriptors_under_a_small_descriptor_limit,
    ),
];

fn forkserver_places_descriptors_under_a_small_descriptor_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    // The usual soft limit is 1024 (also systemd's for services); a server started under a
    // smaller one must still place a worker's descriptors.
    setrlimit(Resource::RLIMIT_NOFILE, 256.min(hard), hard).unwrap();
    forkserver::stop();
    let outcome = std::panic::catch_unwind(|| {
        let (tx, rx) = channel::<u64>().unwrap();
        let fd = tx.as_raw_fd();
        let mut p = Process::<()>::entry(SEND_SEVEN, &fd)
            .start_method(StartMethod::Forkserver)
            .inherit_fds([fd]);
        p.start().unwrap();
        drop(tx);
        assert_eq!(rx.recv().unwrap(), Some(7));
        p.join().unwrap();
        assert_eq!(p.exitcode().unwrap(), Some(pifork::ExitCode::Exited(0)));
    });
    forkserver::stop();
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn mul(a: f64, b: f64) -> Process<f64> {
    Process::entry(MUL, &(a, b)).start_method(StartMethod::Forkserver)
}

fn forkserver_starts_on_demand_and_stops() {
    forkserver::stop();
    assert_eq!(forkserver::pid(), None);
    let mut p = mul(2.0, 5.0);
    p.start().unwrap();
    let server = forkserver::pid().expect("started by the first forkserver process");
    assert_eq!(p.result().unwrap(), 10.0);
    forkserver::start().unwrap();
    assert_eq!(forkserver::pid(), Some(server), "a running server is kept");
    forkserver::stop();
    assert_eq!(forkserver::pid(), None);
    assert!(!alive(server.as_raw()), "stopped and reaped");
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
    let mut p = mul(1.0, 7.0);
    p.start().unwrap();
    assert_eq!(p.result().unwrap(), 7.0);
}

/// Starts a fork server and a daemonic worker through it, sends both pids on the inherited
/// descriptor `fd`, then sleeps.
fn middle(fd: i32) {
    let tx = Sender::<i32>::from_inherited(fd).unwrap();
    forkserver::start().unwrap();
    let mut w =
        Process::<()>::entry(SLEEP, &60_000u64).daemon(true).start_method(StartMethod::Forkserver);
    w.start().unwrap();
    tx.send(&forkserver::pid().unwrap().as_raw()).unwrap();
    tx.send(&w.pid().unwrap().unwrap().as_raw()).unwrap();
    sleep_ms(60_000);
}

fn forkserver_dies_with_its_parent() {
    let (tx, rx) = channel::<i32>().unwrap();
    let keep = [tx.as_raw_fd()];
    // Whatever started the parent: a forked one inherits the slot of this process's server and
    // must forget it, a spawned one starts from nothing.
    for m in [StartMethod::Fork, StartMethod::Spawn] {
        let mut middle = Process::<()>::entry(MIDDLE, &keep[0]).start_method(m).inherit_fds(keep);
        middle.start().unwrap();
        let server = rx.recv().unwrap().unwrap();
        let worker = rx.recv().unwrap().unwrap();
        assert!(alive(server) && alive(worker), "{m}");
        middle.kill().unwrap();
        middle.join().unwrap();
        assert!(
            eventually(Duration::from_secs(2), || !alive(server) && !alive(worker)),
            "{m}: server {server} or worker {worker} survived"
        );
    }
}
