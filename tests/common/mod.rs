//! Helpers of the appliance's integration tests: the library's test helpers (process-table
//! inspection, the single-threaded test table), and the `pifork` binary under test.
#![allow(dead_code)]

use std::process::Command;

#[path = "../../crates/pifork/tests/common/mod.rs"]
mod library;
pub use library::*;

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
