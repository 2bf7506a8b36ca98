//! Conditions shared by processes (`pifork::sync::Condition`), under every start method:
//! CPython's `_TestCondition` translated (notify, notify(n), notify_all, timeouts, wait_for),
//! the rules (no wait or notify without the lock; an RLock's every level released by a wait
//! and taken back), and what CPython cannot do: a waiter SIGKILLed while waiting does not
//! swallow the next notification.

use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use pifork::sync::{Condition, ConditionError, Lock, RLock, Semaphore};
use pifork::{ExitCode, Process, StartMethod, Value};

use crate::common::{Test, sleep_ms};
use crate::sync::child;

const WAITER: &str = "condition.waiter";
const WAIT_FOR: &str = "condition.wait_for";

/// Generous, for a loaded machine or an emulator.
const LONG: Duration = Duration::from_secs(20);

/// Registers this module's entry points (before `main_guard`).
pub fn register_entries() {
    // CPython's helper `f`: acquire, say so (`sleeping`), wait (`timeout_ms` < 0: no timeout),
    // say so (`woken`), release; what the wait returned.
    pifork::register(WAITER, |(c, l, sleeping, woken, timeout_ms): (i32, i32, i32, i32, i64)| {
        let cond = Condition::from_inherited(c, l).unwrap();
        let sleeping = Semaphore::from_inherited(sleeping).unwrap();
        let woken = Semaphore::from_inherited(woken).unwrap();
        let _held = cond.lock();
        sleeping.release().unwrap();
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        let notified = cond.wait(timeout).unwrap();
        woken.release().unwrap();
        notified
    });
    // CPython's test_waitfor child: sets the state to 0 and notifies, then waits for 4 (at
    // most `timeout_ms`); what wait_for returned, and after how long.
    pifork::register(WAIT_FOR, |(c, l, state, timeout_ms): (i32, i32, i32, u64)| {
        let cond = Condition::from_inherited(c, l).unwrap();
        let state = Value::<i64>::from_inherited(state).unwrap();
        let _held = cond.lock();
        state.set(0);
        cond.notify(1).unwrap();
        let start = Instant::now();
        let got = cond.wait_for(|| state.get() == 4, Some(Duration::from_millis(timeout_ms)));
        (got.unwrap(), start.elapsed().as_millis() as u64)
    });
}

pub const TESTS: &[Test] = &[
    Test::InChildren("rules_follow_cpython", rules_follow_cpython),
    Test::InChildren("an_rlock_is_released_at_every_level", an_rlock_is_released_at_every_level),
    Test::EachMethod("notify_wakes_one_at_a_time", notify_wakes_one_at_a_time),
    Test::EachMethod("notify_n_wakes_n", notify_n_wakes_n),
    Test::EachMethod("notify_all_after_timeouts", notify_all_after_timeouts),
    Test::EachMethod("wait_for_sees_the_state", wait_for_sees_the_state),
    Test::EachMethod("wait_for_times_out", wait_for_times_out),
    Test::EachMethod("over_a_plain_lock", over_a_plain_lock),
    Test::EachMethod("a_killed_waiter_does_not_swallow_a_notify", a_killed_waiter),
];

/// Counts as CPython's test does: processes that went to sleep, and that woke.
struct Counts {
    sleeping: Semaphore,
    woken: Semaphore,
}

impl Counts {
    fn new() -> Counts {
        Counts { sleeping: Semaphore::counter(0).unwrap(), woken: Semaphore::counter(0).unwrap() }
    }

    /// Starts a waiter on `cond` and returns once it waits (it said so holding the lock,
    /// which its wait releases).
    fn waiter(&self, cond: &Condition, m: StartMethod, timeout_ms: i64) -> Process<bool> {
        let [c, l] = cond.fds();
        let (s, w) = (self.sleeping.as_raw_fd(), self.woken.as_raw_fd());
        let fds: [RawFd; 4] = [c, l, s, w];
        let p = child(WAITER, &(c, l, s, w, timeout_ms), m, &fds);
        assert!(self.sleeping.acquire_timeout(LONG).is_some(), "the waiter went to sleep");
        p
    }

    /// Takes `n` wake-ups, waiting for each.
    fn woke(&self, n: usize) -> bool {
        (0..n).all(|_| self.woken.acquire_timeout(LONG).is_some())
    }

    /// No (further) waiter woke in a while.
    fn none_woke(&self) -> bool {
        sleep_ms(200);
        self.woken.get_value() == 0
    }
}

fn notify(cond: &Condition, n: usize) {
    let _held = cond.lock();
    cond.notify(n).unwrap();
}

fn joined(p: &mut Process<bool>) -> bool {
    let got = p.result().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)));
    got
}

// test_timeout and test_wait_result (their first half): waiting, or notifying, takes the lock
// (CPython: RuntimeError); a wait nobody notifies returns false, after its timeout.
fn rules_follow_cpython() {
    let cond = Condition::new().unwrap();
    // CPython's repr: the lock's, and how many wait.
    assert_eq!(cond.to_string(), "<Condition(<RLock(None, 0)>, 0)>");
    let over_lock = Condition::with_lock(Lock::new().unwrap()).unwrap();
    assert_eq!(over_lock.to_string(), "<Condition(<Lock(owner=None)>, 0)>");
    let other = cond.clone();
    let waiter = std::thread::spawn(move || {
        let _held = other.lock();
        other.wait(Some(Duration::from_secs(20)))
    });
    let shown = crate::common::eventually(Duration::from_secs(10), || {
        cond.to_string() == "<Condition(<RLock(None, 0)>, 1)>"
    });
    assert!(shown, "one waiter shown: {cond}");
    {
        let _held = cond.lock();
        let me = pifork::current_process().name; // MainProcess, or Process-1 in a child
        assert_eq!(cond.to_string(), format!("<Condition(<RLock({me}, 1)>, 1)>"));
        cond.notify(1).unwrap();
    }
    assert_eq!(waiter.join().unwrap(), Ok(true));
    assert_eq!(cond.to_string(), "<Condition(<RLock(None, 0)>, 0)>");
    assert_eq!(cond.wait(Some(Duration::ZERO)), Err(ConditionError::NotHeld));
    assert_eq!(cond.notify(1), Err(ConditionError::NotHeld));
    assert_eq!(cond.notify_all(), Err(ConditionError::NotHeld));
    assert_eq!(cond.wait_for(|| false, None), Err(ConditionError::NotHeld));
    let held = cond.lock();
    assert_eq!(cond.wait(Some(Duration::ZERO)), Ok(false));
    let start = Instant::now();
    assert_eq!(cond.wait(Some(Duration::from_millis(100))), Ok(false));
    assert!(start.elapsed() >= Duration::from_millis(100), "after {:?}", start.elapsed());
    // Notifying nobody is fine; so is a predicate that holds at once.
    cond.notify(3).unwrap();
    assert_eq!(cond.wait_for(|| true, Some(Duration::ZERO)), Ok(true));
    assert_eq!(cond.wait_for(|| false, Some(Duration::from_millis(50))), Ok(false));
    // The wait gave the lock back: still held by this thread.
    assert!(matches!(cond.get_lock(), pifork::sync::ConditionLock::RLock(l) if l.is_owned()));
    drop(held);
    // Another thread holding the lock is not this one holding it.
    std::thread::scope(|s| {
        s.spawn(|| {
            let _g = cond.lock();
            assert_eq!(cond.notify(1), Ok(()));
        })
        .join()
        .unwrap()
    });
    let e = cond.wait(None).unwrap_err();
    assert_eq!(e.to_string(), "cannot wait on or notify a condition whose lock is not held");
}

fn an_rlock_is_released_at_every_level() {
    // Held twice: the wait releases both levels (another thread takes the lock meanwhile),
    // and takes both back.
    let lock = RLock::new().unwrap();
    let cond = Condition::with_rlock(lock.clone()).unwrap();
    let _ = cond.acquire();
    let _ = cond.acquire();
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            let g = lock.lock_timeout(LONG).expect("the wait released every level");
            cond.notify(1).unwrap();
            drop(g);
        });
        assert_eq!(cond.wait(Some(LONG)), Ok(true), "notified by the thread");
        t.join().unwrap();
    });
    assert!(lock.is_owned());
    lock.release().unwrap();
    assert!(lock.is_owned(), "at depth two again");
    lock.release().unwrap();
    assert!(!lock.is_owned());
}

// test_notify: two waiters; each notify wakes one more.
fn notify_wakes_one_at_a_time(m: StartMethod) {
    let cond = Condition::new().unwrap();
    let counts = Counts::new();
    let mut kids = vec![counts.waiter(&cond, m, -1), counts.waiter(&cond, m, -1)];
    assert!(counts.none_woke(), "nobody notified yet");
    notify(&cond, 1);
    assert!(counts.woke(1));
    assert!(counts.none_woke(), "one notify, one woken");
    notify(&cond, 1);
    assert!(counts.woke(1));
    for p in &mut kids {
        assert!(joined(p), "woken by a notify, not a timeout");
    }
}

// test_notify_n: notify(2) wakes two of three, notify(4) the last, notify(3) with nobody
// waiting nothing.
fn notify_n_wakes_n(m: StartMethod) {
    let cond = Condition::new().unwrap();
    let counts = Counts::new();
    let mut kids: Vec<_> = (0..3).map(|_| counts.waiter(&cond, m, -1)).collect();
    notify(&cond, 2);
    assert!(counts.woke(2));
    assert!(counts.none_woke(), "exactly two");
    notify(&cond, 4);
    assert!(counts.woke(1));
    notify(&cond, 3);
    assert!(counts.none_woke());
    for p in &mut kids {
        assert!(joined(p));
    }
}

// test_notify_all: three waiters time out (false) with nobody notifying; three more wait
// without a timeout and notify_all wakes them all.
fn notify_all_after_timeouts(m: StartMethod) {
    let cond = Condition::new().unwrap();
    let counts = Counts::new();
    let mut timed: Vec<_> = (0..3).map(|_| counts.waiter(&cond, m, 100)).collect();
    assert!(counts.woke(3), "they time out");
    for p in &mut timed {
        assert!(!joined(p), "timed out: false");
    }
    let mut kids: Vec<_> = (0..3).map(|_| counts.waiter(&cond, m, -1)).collect();
    assert!(counts.none_woke());
    {
        let _held = cond.lock();
        cond.notify_all().unwrap();
    }
    assert!(counts.woke(3));
    for p in &mut kids {
        assert!(joined(p));
    }
}

fn wait_for_child(m: StartMethod, timeout_ms: u64, increments: i64) -> (bool, u64) {
    let cond = Condition::new().unwrap();
    let state = Value::new(-1i64).unwrap();
    let [c, l] = cond.fds();
    let fds = [c, l, state.as_raw_fd()];
    let mut p = child::<(bool, u64)>(WAIT_FOR, &(c, l, fds[2], timeout_ms), m, &fds);
    {
        let _held = cond.lock();
        assert_eq!(cond.wait_for(|| state.get() == 0, Some(LONG)), Ok(true));
    }
    for _ in 0..increments {
        sleep_ms(10);
        let _held = cond.lock();
        state.set(state.get() + 1);
        cond.notify(1).unwrap();
    }
    let got = p.result().unwrap();
    assert_eq!(p.exitcode().unwrap(), Some(ExitCode::Exited(0)));
    got
}

// test_waitfor: the child's wait_for sees the state reach 4.
fn wait_for_sees_the_state(m: StartMethod) {
    let (got, _) = wait_for_child(m, LONG.as_millis() as u64, 4);
    assert!(got, "the child saw the state reach 4");
}

// test_waitfor_timeout: three increments only: false, after the timeout.
fn wait_for_times_out(m: StartMethod) {
    let (got, ms) = wait_for_child(m, 300, 3);
    assert!(!got, "the state never reached 4");
    assert!(ms >= 300, "after {ms} ms");
}

fn over_a_plain_lock(m: StartMethod) {
    // Over a Lock: held by this process counts; a child waits and is notified.
    let lock = Lock::new().unwrap();
    let cond = Condition::with_lock(lock.clone()).unwrap();
    assert_eq!(cond.notify(1), Err(ConditionError::NotHeld));
    let counts = Counts::new();
    let mut p = counts.waiter(&cond, m, -1);
    let _ = lock.acquire();
    cond.notify(1).unwrap();
    lock.release().unwrap();
    assert!(counts.woke(1));
    assert!(joined(&mut p));
}

// A waiter SIGKILLed while waiting: the next notify goes to the live waiter behind it.
fn a_killed_waiter(m: StartMethod) {
    let cond = Condition::new().unwrap();
    let counts = Counts::new();
    let mut doomed = counts.waiter(&cond, m, -1);
    let mut live = counts.waiter(&cond, m, -1);
    doomed.kill().unwrap();
    doomed.join().unwrap();
    assert_eq!(doomed.exitcode().unwrap(), Some(ExitCode::Signaled(9)));
    notify(&cond, 1);
    assert!(counts.woke(1), "the live waiter was notified");
    assert!(joined(&mut live));
    // And the condition works as before: no slot is lost.
    let mut again = counts.waiter(&cond, m, -1);
    notify(&cond, 1);
    assert!(counts.woke(1));
    assert!(joined(&mut again));
}
