//! Barriers shared by processes (`pifork::sync::Barrier`), under every start method: CPython's
//! `_TestBarrier` translated (passes in lockstep, one index 0 per pass, the action once per
//! pass before anyone goes on, abort, reset, timeouts breaking it for everyone), and a party's
//! death: one SIGKILLed inside breaks the barrier for the others, who learn it well before
//! their timeout; one SIGKILLed before it arrives leaves no one waiting past their timeout.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use pifork::sync::{Barrier, BrokenBarrier, Lock};
use pifork::{ExitCode, Process, RawValue, ShmError, StartMethod};

use crate::common::{self, Test, sleep_ms};
use crate::sync::child;

const PASSES: &str = "barrier.passes";
const BROKEN_THEN_PASS: &str = "barrier.broken_then_pass";
const ONE_WAIT: &str = "barrier.one_wait";
const IDLE: &str = "barrier.idle";

/// CPython's N.
const N: u32 = 5;

/// Generous, for a loaded machine or an emulator.
const LONG: Duration = Duration::from_secs(30);

/// Registers this module's entry points (before `main_guard`).
pub fn register_entries() {
    // `passes` waits, counting each pass's action (the last to arrive bumps `actions` under
    // `lock`); the indices it got, and whether every pass saw its action done before.
    pifork::register(PASSES, |(b, actions, lock, passes): (i32, i32, i32, u32)| {
        let actions = RawValue::<u32>::from_inherited(actions).unwrap();
        let lock = Lock::from_inherited(lock).unwrap();
        let (a, l) = (actions.clone(), lock.clone());
        let barrier = Barrier::from_inherited(b).unwrap().with_action(move || {
            let _g = l.lock();
            a.set(a.get() + 1);
        });
        let mut indices = Vec::new();
        let mut in_order = true;
        for pass in 0..passes {
            indices.push(barrier.wait(Some(LONG)).unwrap());
            let _g = lock.lock();
            in_order &= actions.get() == pass + 1;
        }
        (indices, in_order)
    });
    // A wait that the parent breaks (abort or reset), two waits on `sync` while the parent
    // resets, then a wait that passes: the two outcomes.
    pifork::register(BROKEN_THEN_PASS, |(b, sync): (i32, i32)| {
        let barrier = Barrier::from_inherited(b).unwrap();
        let sync = Barrier::from_inherited(sync).unwrap();
        let first = barrier.wait(Some(LONG)).is_err();
        sync.wait(Some(LONG)).unwrap();
        sync.wait(Some(LONG)).unwrap();
        let second = barrier.wait(Some(LONG)).is_ok();
        (first, second)
    });
    // One wait (`timeout_ms` 0: none): broken or not, and after how long.
    pifork::register(ONE_WAIT, |(b, timeout_ms): (i32, u64)| {
        let barrier = Barrier::from_inherited(b).unwrap();
        let timeout = (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms));
        let start = Instant::now();
        let got = barrier.wait(timeout);
        (got == Err(BrokenBarrier), start.elapsed().as_millis() as u64)
    });
    // A party that never arrives.
    pifork::register(IDLE, |_b: i32| sleep_ms(60_000));
}

pub const TESTS: &[Test] = &[
    Test::InChildren("rules_follow_cpython", rules_follow_cpython),
    Test::EachMethod("passes_in_lockstep", passes_in_lockstep),
    Test::EachMethod("a_thousand_passes", a_thousand_passes),
    Test::EachMethod("abort_breaks_then_reset_restores", abort_breaks_then_reset_restores),
    Test::EachMethod("reset_breaks_the_waiters", reset_breaks_the_waiters),
    Test::EachMethod("a_timeout_breaks_it_for_all", a_timeout_breaks_it_for_all),
    Test::EachMethod("a_party_killed_inside_breaks_it", a_party_killed_inside_breaks_it),
    Test::EachMethod("a_party_killed_before_it_arrives", a_party_killed_before_it_arrives),
];

fn done<T: pifork::Message>(p: &mut Process<T>) -> T {
    let got = p.result().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)));
    got
}

// test_single_thread, the default timeout, and what CPython refuses.
fn rules_follow_cpython() {
    assert_eq!(Barrier::new(0).unwrap_err(), ShmError::InvalidParties);
    let one = Barrier::new(1).unwrap();
    assert_eq!(one.wait(None), Ok(0));
    assert_eq!(one.wait(None), Ok(0));
    assert_eq!((one.parties(), one.n_waiting(), one.broken()), (1, 0, false));
    let three = Barrier::new(3).unwrap();
    // CPython's repr (with the Rust path for the module, the segment's address for the id).
    let repr = three.to_string();
    let at = repr.strip_prefix("<pifork::sync::Barrier at 0x").and_then(|r| r.split_once(':'));
    let (addr, rest) = at.unwrap_or_else(|| panic!("{repr}"));
    assert!(u64::from_str_radix(addr, 16).is_ok_and(|a| a != 0), "{repr}");
    assert_eq!(rest, " waiters=0/3>");
    assert_eq!(three.clone().to_string(), repr, "a clone is the same barrier");
    three.abort();
    assert_eq!(three.to_string(), format!("<pifork::sync::Barrier at 0x{addr}: broken>"));
    // test_default_timeout, in one process: the handle's default applies.
    let two = Barrier::new(2).unwrap().with_timeout(Duration::from_millis(100));
    let start = Instant::now();
    assert_eq!(two.wait(None), Err(BrokenBarrier));
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert!(two.broken());
    assert_eq!(two.wait(Some(LONG)), Err(BrokenBarrier), "broken until reset: at once");
    two.reset();
    assert!(!two.broken());
    // Two threads pass; an action runs once.
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let r = ran.clone();
    let two = Barrier::new(2).unwrap().with_action(move || {
        r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    let mut got = std::thread::scope(|s| {
        let t = s.spawn(|| two.wait(Some(LONG)).unwrap());
        let mine = two.wait(Some(LONG)).unwrap();
        vec![mine, t.join().unwrap()]
    });
    got.sort();
    assert_eq!(got, [0, 1]);
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);
    two.abort();
    assert!(two.broken());
    assert_eq!(two.wait(None), Err(BrokenBarrier));
    // An action that panics breaks the barrier; the panic goes on in its party.
    let boom = Barrier::new(1).unwrap().with_action(|| panic!("action failed"));
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| boom.wait(None)));
    std::panic::set_hook(hook);
    assert!(unwound.is_err());
    assert!(boom.broken());
    assert_eq!(BrokenBarrier.to_string(), "the barrier is broken");
}

// test_barrier_10, test_wait_return and test_action: N parties (N - 1 children and the
// parent), 10 passes; each pass hands out the indices 0..N once, and its action ran once,
// before anyone went on.
fn passes_in_lockstep(m: StartMethod) {
    lockstep(m, 10);
}

// test_thousand: N parties, a thousand passes (a hundred under an emulator), in order.
fn a_thousand_passes(m: StartMethod) {
    lockstep(m, common::rounds(1000) as u32);
}

fn lockstep(m: StartMethod, passes: u32) {
    let actions = RawValue::new(0u32).unwrap();
    let lock = Lock::new().unwrap();
    let (a, l) = (actions.clone(), lock.clone());
    let barrier = Barrier::new(N).unwrap().with_action(move || {
        let _g = l.lock();
        a.set(a.get() + 1);
    });
    let fds = [barrier.as_raw_fd(), actions.as_raw_fd(), lock.as_raw_fd()];
    let mut kids: Vec<Process<(Vec<u32>, bool)>> =
        (0..N - 1).map(|_| child(PASSES, &(fds[0], fds[1], fds[2], passes), m, &fds)).collect();
    let mut per_pass: Vec<Vec<u32>> = vec![Vec::new(); passes as usize];
    for (pass, indices) in per_pass.iter_mut().enumerate() {
        indices.push(barrier.wait(Some(LONG)).unwrap());
        let _g = lock.lock();
        assert_eq!(actions.get(), pass as u32 + 1, "the action ran before anyone went on");
    }
    for p in &mut kids {
        let (indices, in_order) = done(p);
        assert!(in_order, "each pass saw its action done");
        assert_eq!(indices.len(), passes as usize);
        for (pass, i) in indices.into_iter().enumerate() {
            per_pass[pass].push(i);
        }
    }
    for (pass, mut indices) in per_pass.into_iter().enumerate() {
        indices.sort();
        assert_eq!(indices, (0..N).collect::<Vec<_>>(), "pass {pass}: one of each index");
    }
    assert_eq!(actions.get(), passes, "one action a pass");
    assert_eq!((barrier.n_waiting(), barrier.broken()), (0, false));
}

/// N - 1 children wait; once they all do, the parent breaks the barrier with `break_it`;
/// then all N pass after a reset (test_abort_and_reset, test_reset).
fn broken_then_restored(m: StartMethod, break_it: impl Fn(&Barrier)) {
    let barrier = Barrier::new(N).unwrap();
    let sync = Barrier::new(N).unwrap();
    let fds = [barrier.as_raw_fd(), sync.as_raw_fd()];
    let mut kids: Vec<Process<(bool, bool)>> =
        (0..N - 1).map(|_| child(BROKEN_THEN_PASS, &(fds[0], fds[1]), m, &fds)).collect();
    assert!(common::eventually(LONG, || barrier.n_waiting() == N - 1), "all four wait");
    break_it(&barrier);
    sync.wait(Some(LONG)).unwrap();
    barrier.reset();
    assert!(!barrier.broken());
    sync.wait(Some(LONG)).unwrap();
    assert!(barrier.wait(Some(LONG)).is_ok(), "all five pass after the reset");
    for p in &mut kids {
        assert_eq!(done(p), (true, true), "broken first, then through");
    }
}

fn abort_breaks_then_reset_restores(m: StartMethod) {
    broken_then_restored(m, |b| {
        b.abort();
        assert!(b.broken());
    });
}

fn reset_breaks_the_waiters(m: StartMethod) {
    // A reset while parties wait breaks their wait, but leaves the barrier unbroken.
    broken_then_restored(m, |b| {
        b.reset();
        assert!(!b.broken());
    });
}

// test_timeout: the others wait 0.5 s for a party 1 s late: every one of the N, the late
// one included, is told the barrier is broken.
fn a_timeout_breaks_it_for_all(m: StartMethod) {
    let barrier = Barrier::new(N).unwrap();
    let fd = barrier.as_raw_fd();
    let mut kids: Vec<Process<(bool, u64)>> =
        (0..N - 1).map(|_| child(ONE_WAIT, &(fd, 500u64), m, &[fd])).collect();
    // Late: after at least one child's timeout (each waits 0.5 s).
    assert!(common::eventually(LONG, || barrier.broken()), "a timeout broke it");
    assert_eq!(barrier.wait(Some(LONG)), Err(BrokenBarrier));
    for p in &mut kids {
        let (broken, ms) = done(p);
        assert!(broken);
        assert!(ms < LONG.as_millis() as u64, "not past the timeout: {ms} ms");
    }
}

// A party SIGKILLed while it waits inside: the others learn it (broken) long before their
// timeout, and after a reset the barrier works again.
fn a_party_killed_inside_breaks_it(m: StartMethod) {
    let barrier = Barrier::new(4).unwrap();
    let fd = barrier.as_raw_fd();
    let mut doomed = child::<(bool, u64)>(ONE_WAIT, &(fd, 0u64), m, &[fd]);
    let mut other = child::<(bool, u64)>(ONE_WAIT, &(fd, LONG.as_millis() as u64), m, &[fd]);
    assert!(common::eventually(LONG, || barrier.n_waiting() == 2), "both wait");
    assert!(barrier.to_string().ends_with(": waiters=2/4>"), "{barrier}");
    doomed.kill().unwrap();
    doomed.join().unwrap();
    let start = Instant::now();
    assert_eq!(barrier.wait(Some(LONG)), Err(BrokenBarrier));
    assert!(start.elapsed() < LONG / 2, "told of the death, not by the timeout");
    let (broken, ms) = done(&mut other);
    assert!(broken);
    assert!(ms < LONG.as_millis() as u64 / 2 + 10_000, "{ms} ms");
    assert!(common::eventually(LONG, || barrier.n_waiting() == 0));
    barrier.reset();
    assert!(!barrier.broken(), "usable again");
}

// A party SIGKILLed before it arrives cannot be told from a late one: the others wait for it
// until their timeout, not past it, and are told the barrier is broken.
fn a_party_killed_before_it_arrives(m: StartMethod) {
    let barrier = Barrier::new(3).unwrap();
    let fd = barrier.as_raw_fd();
    let mut doomed = child::<()>(IDLE, &fd, m, &[fd]);
    let mut other = child::<(bool, u64)>(ONE_WAIT, &(fd, 2000u64), m, &[fd]);
    doomed.kill().unwrap();
    doomed.join().unwrap();
    let start = Instant::now();
    assert_eq!(barrier.wait(Some(Duration::from_secs(2))), Err(BrokenBarrier));
    let waited = start.elapsed();
    assert!(waited < Duration::from_secs(15), "not much past its timeout: {waited:?}");
    let (broken, ms) = done(&mut other);
    assert!(broken);
    assert!(ms < 15_000, "not much past its timeout: {ms} ms");
}
