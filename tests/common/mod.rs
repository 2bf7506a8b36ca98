//! Helpers of the appliance's integration tests: the library's test helpers (process-table
//! inspection, the single-threaded test table), and the `pifork` binary under test.
#![allow(dead_code)]

use std::process::Command;

#[path = "../../crates/pifork/tests/common/mod.rs"]
mod library;
pub use library::*;

/// Waits for workers that were just seen to appear to be ready for work: a pool worker is
/// listed from its fork, but holds chunks only once it has said it is ready (microseconds
/// natively, up to tens of milliseconds under emulation). A worker killed before that holds
/// nothing, and the pool just replaces it; the tests that kill one mean a worker at work.
pub fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(if emulated() { 1000 } else { 200 }));
}

/// The binary under test; `PIFORK_RUNNER` (e.g. `qemu-aarch64-static`) runs a cross-built one.
pub fn pifork() -> Command {
    let bin = env!("CARGO_BIN_EXE_pifork");
    match std::env::var("PIFORK_RUNNER").ok().filter(|r| !r.is_empty()) {
        Some(runner) => {
            let mut parts = runner.split_whitespace();
            let mut cmd = Command::new(parts.next().expect("runner"));
            cmd.args(parts).arg(bin);
            cmd
        }
        None => Command::new(bin),
    }
}
