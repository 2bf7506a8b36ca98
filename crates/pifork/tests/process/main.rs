//! The Process model against CPython's semantics, one module per concern; most tests run once
//! for each start method (`name[fork]`, `name[spawn]`, `name[forkserver]`). A plain `main`
//! runs the tests one after the other on the main thread: forking is only safe from a
//! single-threaded process, and the standard harness runs every test on a thread of its own.
//! After every test the runner (`common::run_suite`) checks that no child process (running or
//! zombie) is left.
//!
//! `cargo test --test process -- FILTER` runs the tests whose name contains FILTER (such as
//! `lifecycle::`, `[spawn]` or `close_rules`); `--list` lists them.

mod barrier;
#[path = "../common/mod.rs"]
mod common;
mod condition;
mod connection;
mod derive;
mod descriptors;
mod forkserver;
mod lifecycle;
mod parity;
mod pool;
mod queue;
mod shareable;
mod shared;
mod signals;
mod start_methods;
mod sync;
mod threads;
mod wait;

use common::{Case, Test, cases};
use pifork::{Error, NOOP_ENTRY, Process, StartMethod};

/// Every test, by concern.
fn groups() -> [(&'static str, Vec<Test>); 17] {
    [
        ("lifecycle", lifecycle::tests()),
        ("wait", wait::tests()),
        ("start_methods", start_methods::TESTS.to_vec()),
        ("forkserver", forkserver::TESTS.to_vec()),
        ("descriptors", descriptors::TESTS.to_vec()),
        ("connection", connection::TESTS.to_vec()),
        ("threads", threads::TESTS.to_vec()),
        ("parity", parity::TESTS.to_vec()),
        ("signals", signals::TESTS.to_vec()),
        ("shared", shared::TESTS.to_vec()),
        ("shareable", shareable::TESTS.to_vec()),
        ("sync", sync::TESTS.to_vec()),
        ("condition", condition::TESTS.to_vec()),
        ("barrier", barrier::TESTS.to_vec()),
        ("queue", queue::TESTS.to_vec()),
        ("derive", derive::TESTS.to_vec()),
        ("pool", pool::TESTS.to_vec()),
    ]
}

/// Every run of every test.
fn all_cases() -> Vec<Case> {
    groups().iter().flat_map(|(group, tests)| cases(group, tests, &StartMethod::ALL)).collect()
}

/// Entry points of every module, registered before `main_guard`.
fn register_entries() {
    pifork::register(common::IN_CHILD, |name: String| {
        common::passes_in_child(common::child_body(&groups(), &name))
    });
    lifecycle::register_entries();
    wait::register_entries();
    start_methods::register_entries();
    forkserver::register_entries();
    descriptors::register_entries();
    connection::register_entries();
    threads::register_entries();
    parity::register_entries();
    signals::register_entries();
    shared::register_entries();
    shareable::register_entries();
    sync::register_entries();
    condition::register_entries();
    barrier::register_entries();
    queue::register_entries();
    derive::register_entries();
    pool::register_entries();
}

fn main() {
    register_entries();
    if common::spawned_entry().as_deref() == Some(start_methods::UNGUARDED) {
        // Play a program whose main forgot the guard: it tries to start a process of its own,
        // which must be refused (no fork bomb), and exits without running any entry.
        let mut p = Process::<()>::entry(NOOP_ENTRY, &()).start_method(StartMethod::Spawn);
        std::process::exit(if p.start() == Err(Error::NoMainGuard) { 3 } else { 4 });
    }
    pool::orphan_helper();
    pifork::main_guard();
    common::run_suite(all_cases());
}
