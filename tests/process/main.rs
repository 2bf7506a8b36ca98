//! The Process model against CPython's semantics, one module per concern; most tests run once
//! for each start method (`name[fork]`, `name[spawn]`, `name[forkserver]`). A plain `main`
//! runs the tests one after the other on the main thread: forking is only safe from a
//! single-threaded process, and the standard harness runs every test on a thread of its own.
//! After every test the runner checks that no child process (running or zombie) is left.
//!
//! `cargo test --test process -- FILTER` runs the tests whose name contains FILTER (such as
//! `lifecycle::`, `[spawn]` or `close_rules`); `--list` lists them.

#[path = "../common/mod.rs"]
mod common;
mod connection;
mod descriptors;
mod engine;
mod forkserver;
mod lifecycle;
mod parity;
mod signals;
mod start_methods;
mod threads;
mod wait;

use common::{Case, Test, cases, children_of};
use pifork::{Error, NOOP_ENTRY, Process, StartMethod};

/// Every test, by concern.
fn all_cases() -> Vec<Case> {
    let groups: [(&str, Vec<Test>); 10] = [
        ("lifecycle", lifecycle::tests()),
        ("wait", wait::tests()),
        ("start_methods", start_methods::TESTS.to_vec()),
        ("forkserver", forkserver::TESTS.to_vec()),
        ("descriptors", descriptors::TESTS.to_vec()),
        ("connection", connection::TESTS.to_vec()),
        ("threads", threads::TESTS.to_vec()),
        ("engine", engine::TESTS.to_vec()),
        ("parity", parity::TESTS.to_vec()),
        ("signals", signals::TESTS.to_vec()),
    ];
    groups.iter().flat_map(|(group, tests)| cases(group, tests, &StartMethod::ALL)).collect()
}

/// Entry points of every module, registered before `main_guard`.
fn register_entries() {
    lifecycle::register_entries();
    wait::register_entries();
    start_methods::register_entries();
    forkserver::register_entries();
    descriptors::register_entries();
    connection::register_entries();
    threads::register_entries();
    parity::register_entries();
    signals::register_entries();
}

fn my_pid() -> i32 {
    std::process::id() as i32
}

fn main() {
    register_entries();
    pifork::app::register_entries();
    if common::spawned_entry().as_deref() == Some(start_methods::UNGUARDED) {
        // Play a program whose main forgot the guard: it tries to start a process of its own,
        // which must be refused (no fork bomb), and exits without running any entry.
        let mut p = Process::<()>::entry(NOOP_ENTRY, &()).start_method(StartMethod::Spawn);
        std::process::exit(if p.start() == Err(Error::NoMainGuard) { 3 } else { 4 });
    }
    pifork::main_guard();
    let cases = all_cases();
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
            children_of(my_pid()).into_iter().filter(|&p| Some(p) != server).collect();
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
    let leftovers = children_of(my_pid());
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
