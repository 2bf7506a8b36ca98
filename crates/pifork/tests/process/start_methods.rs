//! What differs between the start methods: contexts bind one, closures need fork, a program
//! must call `main_guard` for spawn, and the backend (pidfd or pipe) follows the environment.

use std::time::{Duration, Instant};

use pifork::{Backend, Error, Process, StartMethod, get_context};

use crate::common::Test;

/// The entry that main.rs runs without the guard, as a program that forgot it would.
pub const UNGUARDED: &str = "test.unguarded";
const MUL: &str = "start_methods.mul";

/// Registers this module's entry points (before `main_guard`).
pub fn register_entries() {
    pifork::register(MUL, |(a, b): (f64, f64)| a * b);
}

pub const TESTS: &[Test] = &[
    Test::EachMethod("contexts_bind_their_start_method", contexts_bind_their_start_method),
    Test::Once("closures_need_the_fork_method", closures_need_the_fork_method),
    Test::Once(
        "a_program_without_main_guard_gets_a_clear_error",
        a_program_without_main_guard_gets_a_clear_error,
    ),
    Test::Once("backend_follows_the_environment", backend_follows_the_environment),
];

fn contexts_bind_their_start_method(m: StartMethod) {
    let ctx = get_context(m);
    assert_eq!(ctx.start_method(), m);
    let mut p: Process<f64> = ctx.entry(MUL, &(2.0f64, 3.0f64));
    assert_eq!(p.get_start_method(), m);
    p.start().unwrap();
    assert_eq!(p.result().unwrap(), 6.0);
}

fn closures_need_the_fork_method() {
    for m in [StartMethod::Spawn, StartMethod::Forkserver] {
        let mut p = Process::new(|| 1u8).start_method(m);
        assert_eq!(p.start(), Err(Error::NeedsEntry { method: m }));
        let mut q = get_context(m).process(|| 1u8);
        assert_eq!(q.start(), Err(Error::NeedsEntry { method: m }));
        // The refused process keeps its closure: it can still be started with fork.
        let mut q = q.start_method(StartMethod::Fork);
        q.start().unwrap();
        assert_eq!(q.result().unwrap(), 1);
    }
}

fn a_program_without_main_guard_gets_a_clear_error() {
    // The test runner skips the guard for this entry, as a program that forgot it would.
    let start = Instant::now();
    let mut p = Process::<()>::entry(UNGUARDED, &()).start_method(StartMethod::Spawn);
    assert_eq!(p.start(), Err(Error::NoMainGuard));
    assert!(start.elapsed() < Duration::from_secs(20), "the child ended; no need to time out");
}

fn backend_follows_the_environment() {
    let forced = std::env::var("PIFORK_BACKEND").ok();
    let b = pifork::backend();
    match forced.as_deref() {
        Some("pipe") => assert_eq!(b, Backend::Pipe),
        _ => assert_eq!(b == Backend::Pidfd, pifork::probe_pidfd().is_ok()),
    }
}
