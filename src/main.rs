//! `pifork`: computes pi with one pinned worker process per core, races workers, reports
//! what the system offers. The command line is Linux's (`main/linux.rs`); on Windows, where
//! pifork is a library with the spawn start method, this program only serves as a spawned
//! child and otherwise says where the command line runs.

#[cfg(unix)]
#[path = "main/linux.rs"]
mod linux;

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    linux::main()
}

#[cfg(windows)]
fn main() -> std::process::ExitCode {
    // A spawned child runs its entry point here and exits.
    pifork::main_guard();
    eprintln!("pifork: the command line runs on Linux; on Windows pifork is a library");
    std::process::ExitCode::from(2)
}
