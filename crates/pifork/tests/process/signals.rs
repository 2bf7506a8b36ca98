//! Signals sent at any moment after `start()` returns act on the child with their default
//! disposition, even when the parent catches them: the child never runs the parent's handlers.
//! Each test runs in a child of its own (started with fork), which installs the handlers, so
//! the rest of the suite keeps the default dispositions.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use pifork::{ExitCode, Process, StartMethod};

use crate::common::{Test, rounds, sleep_ms};

const SLEEP: &str = "signals.sleep";

/// Registers this module's entry points (before `main_guard`).
pub fn register_entries() {
    pifork::register(SLEEP, sleep_ms);
}

pub const TESTS: &[Test] = &[Test::EachMethod(
    "signal_right_after_start_acts_despite_a_handling_parent",
    signal_right_after_start_acts_despite_a_handling_parent,
)];

/// Signals a supervising parent typically handles, and some it rarely does (a realtime one
/// included): with the parent's handler run instead, the child would sleep on and exit 0.
fn signals() -> [i32; 6] {
    [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGVTALRM,
        libc::SIGRTMIN() + 3,
    ]
}

fn signal_right_after_start_acts_despite_a_handling_parent(m: StartMethod) {
    // 300 terminate() calls, then the other signals in turn.
    let (terminates, others) = (rounds(300), rounds(120));
    let mut outer = Process::with_args(
        move |(method, terminates, others): (String, u64, u64)| {
            let m: StartMethod = method.parse().unwrap();
            let caught = Arc::new(AtomicBool::new(false));
            let signals = signals();
            for &signal in &signals {
                signal_hook::flag::register(signal, Arc::clone(&caught)).unwrap();
            }
            let mut lost = Vec::new();
            for i in 0..terminates + others {
                let mut p = Process::<()>::entry(SLEEP, &2_000u64).daemon(true).start_method(m);
                p.start().unwrap();
                let signal = if i < terminates {
                    p.terminate().unwrap();
                    libc::SIGTERM
                } else {
                    let signal = signals[1 + i as usize % (signals.len() - 1)];
                    p.send_signal(signal).unwrap();
                    signal
                };
                p.join().unwrap();
                let code = p.exitcode().unwrap().unwrap();
                if code != ExitCode::Signaled(signal) {
                    lost.push(format!("start {i}: signal {signal} gave {code}"));
                }
            }
            lost
        },
        (m.to_string(), terminates, others),
    )
    .start_method(StartMethod::Fork);
    outer.start().unwrap();
    let lost = outer.result().unwrap();
    let starts = terminates + others;
    assert!(
        lost.is_empty(),
        "{} of {starts} signals lost, first: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}
