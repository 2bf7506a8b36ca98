//! The entry registry of a program outside the appliance: it registers one entry ("x") and
//! sees only that one and the library's own (the no-op, and on Linux the pool's worker),
//! whatever the start method reports the unknown name. Its own `main` (no harness): a spawned child must find the same registrations.

use pifork::{Error, Process, StartMethod};

#[cfg(target_os = "linux")]
const EXPECTED: &str =
    "no entry point named \"nope\" is registered (registered: pifork.noop, pifork.pool.worker, x)";
#[cfg(not(target_os = "linux"))]
const EXPECTED: &str = "no entry point named \"nope\" is registered (registered: pifork.noop, x)";

fn main() {
    pifork::register("x", |(): ()| ());
    pifork::main_guard();

    // spawn: the child looks the name up and reports it as its panic.
    let mut p = Process::<()>::entry("nope", &()).start_method(StartMethod::Spawn);
    p.start().unwrap();
    match p.result() {
        Err(Error::ChildPanicked { message, .. }) => assert_eq!(message, EXPECTED),
        other => panic!("spawn: expected the child's report, got {other:?}"),
    }
    #[cfg(target_os = "linux")]
    {
        // fork: refused before the fork.
        let mut p = Process::<()>::entry("nope", &()).start_method(StartMethod::Fork);
        assert_eq!(p.start().unwrap_err().to_string(), EXPECTED);
        // forkserver: refused by the server, which knows the same entries.
        let mut p = Process::<()>::entry("nope", &()).start_method(StartMethod::Forkserver);
        match p.start() {
            Err(Error::Forkserver { reason }) => assert_eq!(reason, EXPECTED),
            other => panic!("forkserver: expected the server's refusal, got {other:?}"),
        }
        pifork::forkserver::stop();
    }
    println!("registry: ok");
}
