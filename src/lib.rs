//! pifork-pi, the pi appliance, built only on the public API of the `pifork` library: the
//! Leibniz kernel and the chunk plan, a pool of pinned worker processes, the engine and the race
//! on top of it, the systemd service with its durable state, the benchmarks, and the reports the
//! `pifork` program prints.
//!
//! ```text
//! pi, plan        the series: partial sums, remainder, chunks, combination
//! kernel/         the division-free group sums, one module per instruction set
//! pool/, pace     pinned worker processes that sum chunks, as typed events; late workers
//! engine, race    one run over the series; the first of several runners
//! service/        `pifork serve`: state file, systemd notification, retries; `pifork status`
//! bench/          measurements: the kernel, the round trips, the scaling
//! report/         the reports, text and JSON, one module per command
//! suite           `pifork bench` in order, its phases named on a terminal
//! cli/            the command line of both programs: argument shim, counts, limits, exit codes
//! info, logging   `pifork info`'s facts; env_logger set up for a terminal or the journal
//! progress        the self-updating line a terminal shows during long work
//! cluster         the ranks' shares of the plan and records of `pifork-mpi`
//! ```
//!
//! The appliance runs on Linux: on other systems this crate is empty, and the `pifork` program
//! only serves the spawned children of the library's Windows backend. `unsafe` appears only in
//! the kernel's per-instruction-set files (`kernel/x86.rs`, `kernel/aarch64.rs`) and in the
//! bare fork the benchmark compares the start methods with (`bench/bare_fork.rs`).

#![cfg(target_os = "linux")]
#![deny(unsafe_code)]

pub mod bench;
pub mod cli;
pub mod cluster;
pub mod engine;
pub mod error;
pub mod info;
pub mod kernel;
pub mod logging;
pub mod pace;
pub mod pi;
pub mod plan;
pub mod pool;
pub mod progress;
pub mod race;
pub mod report;
pub mod service;
pub mod suite;
pub mod via;

pub use error::{Error, Result};

/// Registers the appliance's entry points (the race's runner and the `--via` workers; the pi
/// pool's task is a plain `fn`, which needs none). A program calls it at the top of `main`,
/// before `main_guard`, so that spawned and forkserver children know them.
pub fn register_entries() {
    race::register_entries();
    via::register_entries();
}
