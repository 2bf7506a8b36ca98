//! `main_guard`: where a spawned child becomes its worker, like Python's
//! `if __name__ == "__main__":`.

use std::io::{Read, Write};

use super::entry::{HANDSHAKE, SPAWN_ENV, SpawnSpec, lookup, mark_guard_ran, register_builtins};
use super::identity::become_child;
use super::imp::adopt_inherited;
use super::method::set_own_method;
use super::target::{panic_frame, run_entry, run_target, set_in_daemon};
use crate::status::{Pid, StartMethod};
use crate::sys;

/// Turns a spawned child into its worker: runs the entry named in `PIFORK_SPAWN` with the
/// arguments from its parent, sends the result back and exits. Does nothing in any other
/// process. Call it at the top of `main`, after registering the entries.
pub fn main_guard() {
    if mark_guard_ran() {
        return;
    }
    register_builtins();
    let Some(value) = std::env::var_os(SPAWN_ENV) else { return };
    let Some(spec) = value.to_str().and_then(SpawnSpec::decode) else {
        eprintln!("pifork: malformed {SPAWN_ENV} in the environment: {value:?}");
        std::process::exit(2);
    };
    if !sys::is_inherited_open(spec.result) || !sys::is_inherited_open(spec.args) {
        eprintln!(
            "pifork: {SPAWN_ENV} names descriptors {} and {} that are not open here: it is meant \
             only for the processes pifork's spawn start method starts",
            spec.args, spec.result
        );
        std::process::exit(2);
    }
    #[allow(unsafe_code)] // owning handed-down numbers (see sys/mod.rs)
    // SAFETY: the parent handed these two descriptors (handles) down for this process to own,
    // under the numbers in `PIFORK_SPAWN`, and nothing else in this process refers to them.
    let (mut result, mut args_file) =
        unsafe { (sys::inherited_file(spec.result), sys::inherited_file(spec.args)) };
    // This process's own children must not hold its pipe ends open; the entry may take the
    // descriptors listed with `inherit_fds`.
    adopt_inherited(&spec);
    if result.write_all(&[HANDSHAKE]).is_err() {
        // The parent is gone; nobody wants the work.
        let _ = writeln!(std::io::stderr(), "pifork: {}: its parent is gone", spec.name);
        sys::exit_now(1);
    }
    let mut args = Vec::new();
    let read = args_file.read_to_end(&mut args);
    drop(args_file);
    set_in_daemon(spec.daemon);
    become_child(&spec.name, Pid(spec.parent), StartMethod::Spawn);
    set_own_method(StartMethod::Spawn);
    let (code, frame) = match (read, lookup(&spec.entry)) {
        (Ok(_), Ok(entry)) => run_target(Vec::new(), |out| run_entry(&entry, &args, out)),
        (Err(e), _) => panic_frame(format!("cannot read the arguments: {e}")),
        (_, Err(e)) => panic_frame(e.to_string()),
    };
    let _ = result.write_all(&frame);
    drop(result);
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    sys::exit_now(code)
}
