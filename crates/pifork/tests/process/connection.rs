//! Two-way connections (`pifork::pipe`, CPython's `Pipe()`) between a parent and a child,
//! under every start method: the child claims its end with `Connection::from_inherited`; a
//! conversation both ways, the end of the peer, `poll`, `wait()` on a connection beside a
//! sentinel, messages far larger than the socket's buffer, and no child but the one that
//! lists an end keeps it open.

use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use pifork::{Connection, ExitCode, Process, StartMethod, pipe, wait};

use crate::common::{Test, sleep_ms};

const DOUBLER: &str = "connection.doubler";
const CLOSER: &str = "connection.closer";
const NAPPER: &str = "connection.napper";
const ECHO: &str = "connection.echo";
const SLEEP: &str = "connection.sleep";

/// Registers this module's entry points (before `main_guard`).
pub fn register_entries() {
    // Answers each number with its double until the parent closes its end; returns how many.
    pifork::register(DOUBLER, |fd: i32| {
        let conn = Connection::<u64>::from_inherited(fd).unwrap();
        let mut answered = 0u64;
        while let Some(x) = conn.recv().unwrap() {
            conn.send(&(2 * x)).unwrap();
            answered += 1;
        }
        answered
    });
    // Sends two numbers, closes its end, then lives on for `ms` milliseconds.
    pifork::register(CLOSER, |(fd, ms): (i32, u64)| {
        let conn = Connection::<u64>::from_inherited(fd).unwrap();
        conn.send(&1).unwrap();
        conn.send(&2).unwrap();
        drop(conn);
        sleep_ms(ms);
    });
    // Sleeps as long as each message says, then sends it back, until the parent closes.
    pifork::register(NAPPER, |fd: i32| {
        let conn = Connection::<u64>::from_inherited(fd).unwrap();
        while let Some(ms) = conn.recv().unwrap() {
            sleep_ms(ms);
            conn.send(&ms).unwrap();
        }
    });
    // Sends every message back as it came, until the parent closes.
    pifork::register(ECHO, |fd: i32| {
        let conn = Connection::<Vec<u8>>::from_inherited(fd).unwrap();
        while let Some(bytes) = conn.recv().unwrap() {
            conn.send(&bytes).unwrap();
        }
    });
    pifork::register(SLEEP, sleep_ms);
}

pub const TESTS: &[Test] = &[
    Test::EachMethod("a_conversation_goes_both_ways", a_conversation_goes_both_ways),
    Test::EachMethod(
        "recv_ends_when_the_child_closes_its_end",
        recv_ends_when_the_child_closes_its_end,
    ),
    Test::EachMethod("recv_ends_when_the_child_exits", recv_ends_when_the_child_exits),
    Test::EachMethod("poll_and_wait_beside_a_sentinel", poll_and_wait_beside_a_sentinel),
    Test::EachMethod("large_messages_go_both_ways", large_messages_go_both_ways),
    Test::EachMethod("a_child_that_lists_no_end_keeps_none", a_child_that_lists_no_end_keeps_none),
];

/// Starts `p`, a child given `end` (listed in its `inherit_fds`), then closes the parent's
/// copy of `end`: only the child holds it.
fn start_holding<T>(p: Process<()>, end: Connection<T>) -> Process<()> {
    let mut p = p.inherit_fds([end.as_raw_fd()]);
    p.start().unwrap();
    p
}

fn a_conversation_goes_both_ways(m: StartMethod) {
    let (conn, child_end) = pipe::<u64>().unwrap();
    let fd = child_end.as_raw_fd();
    let mut p = Process::<u64>::entry(DOUBLER, &fd).start_method(m).inherit_fds([fd]);
    p.start().unwrap();
    drop(child_end);
    for x in [1u64, 21, u64::MAX / 2] {
        conn.send(&x).unwrap();
        assert_eq!(conn.recv().unwrap(), Some(2 * x));
    }
    // Several in flight before the first answer is read.
    for x in 0..100u64 {
        conn.send(&x).unwrap();
    }
    let answers: Vec<u64> = (0..100).map(|_| conn.recv().unwrap().unwrap()).collect();
    assert_eq!(answers, (0..100).map(|x| 2 * x).collect::<Vec<_>>());
    drop(conn);
    assert_eq!(p.result().unwrap(), 103, "the child saw the end once the parent closed");
}

fn recv_ends_when_the_child_closes_its_end(m: StartMethod) {
    let (conn, child_end) = pipe::<u64>().unwrap();
    let fd = child_end.as_raw_fd();
    let child = Process::entry(CLOSER, &(fd, 60_000u64)).start_method(m).daemon(true);
    let mut p = start_holding(child, child_end);
    assert_eq!(conn.recv().unwrap(), Some(1));
    assert_eq!(conn.recv().unwrap(), Some(2));
    assert_eq!(conn.recv().unwrap(), None, "the end, while the child still runs");
    assert!(p.is_alive().unwrap(), "exit code {:?}", p.exitcode());
    let err = conn.send(&3).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPIPE), "{err}");
    p.terminate().unwrap();
    p.join().unwrap();
}

fn recv_ends_when_the_child_exits(m: StartMethod) {
    let (conn, child_end) = pipe::<u64>().unwrap();
    let fd = child_end.as_raw_fd();
    let mut p = start_holding(Process::entry(CLOSER, &(fd, 0u64)).start_method(m), child_end);
    p.join().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)));
    // Both ready at once: the connection (messages, then the end) and the sentinel.
    let ready = wait(&[conn.as_fd(), p.sentinel().unwrap()], Some(Duration::ZERO)).unwrap();
    assert_eq!(ready, vec![0, 1]);
    assert_eq!(conn.recv().unwrap(), Some(1));
    assert_eq!(conn.recv().unwrap(), Some(2));
    assert_eq!(conn.recv().unwrap(), None);
}

fn poll_and_wait_beside_a_sentinel(m: StartMethod) {
    let (conn, child_end) = pipe::<u64>().unwrap();
    let fd = child_end.as_raw_fd();
    let mut p = start_holding(Process::entry(NAPPER, &fd).start_method(m), child_end);
    assert!(!conn.poll(Some(Duration::ZERO)).unwrap(), "nothing sent yet");
    let start = Instant::now();
    assert!(!conn.poll(Some(Duration::from_millis(40))).unwrap());
    assert!(start.elapsed() >= Duration::from_millis(40), "poll waited out its timeout");

    // The answer comes while the child lives on: the connection is ready, the sentinel not.
    conn.send(&50).unwrap();
    let ready = wait(&[p.sentinel().unwrap(), conn.as_fd()], None).unwrap();
    assert_eq!(ready, vec![1]);
    assert!(conn.poll(None).unwrap());
    assert!(conn.poll(Some(Duration::ZERO)).unwrap(), "poll takes nothing");
    assert_eq!(conn.recv().unwrap(), Some(50));
    assert!(!conn.poll(Some(Duration::ZERO)).unwrap());

    // A wait that times out on both, then one that sees the answer first.
    conn.send(&200).unwrap();
    let sentinels = [p.sentinel().unwrap(), conn.as_fd()];
    assert!(wait(&sentinels, Some(Duration::from_millis(20))).unwrap().is_empty());
    assert_eq!(wait(&sentinels, None).unwrap(), vec![1]);
    assert_eq!(conn.recv().unwrap(), Some(200));

    drop(conn);
    assert_eq!(wait(&[p.sentinel().unwrap()], None).unwrap(), vec![0], "closing ends the child");
    p.join().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)));
}

fn large_messages_go_both_ways(m: StartMethod) {
    let (conn, child_end) = pipe::<Vec<u8>>().unwrap();
    let fd = child_end.as_raw_fd();
    let mut p = start_holding(Process::entry(ECHO, &fd).start_method(m), child_end);
    // Far beyond a socket's buffer (a few hundred KiB): each send blocks until the child has
    // read most of it.
    for size in [6 << 20, 1, 3 << 20] {
        let big: Vec<u8> =
            (0..size).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        conn.send(&big).unwrap();
        let back = conn.recv().unwrap().expect("the child answers");
        assert!(
            back == big,
            "{} bytes sent, {} came back, or different ones",
            big.len(),
            back.len()
        );
    }
    drop(conn);
    p.join().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)));
}

fn a_child_that_lists_no_end_keeps_none(m: StartMethod) {
    let (conn, other_end) = pipe::<u64>().unwrap();
    let mut bystander = Process::<()>::entry(SLEEP, &60_000u64).start_method(m).daemon(true);
    bystander.start().unwrap();
    drop(other_end);
    // Only this process held the other end: its close is the end, though the bystander lives.
    assert!(conn.poll(Some(Duration::from_secs(5))).unwrap());
    assert_eq!(conn.recv().unwrap(), None);
    assert!(bystander.is_alive().unwrap());
    bystander.terminate().unwrap();
    bystander.join().unwrap();
}
