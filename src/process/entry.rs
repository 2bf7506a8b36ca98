//! Entry points for the spawn and forkserver start methods: targets that travel by name.
//!
//! A spawned child is a fresh run of the current executable. It learns which entry to run from
//! `PIFORK_SPAWN` in its environment and runs it from [`main_guard`], the equivalent of
//! Python's `if __name__ == "__main__":`, called at the top of `main` after the entries are
//! registered. A child whose program forgot the guard never starts processes of its own (no
//! fork bomb), and the parent's `start()` fails with [`Error::NoMainGuard`].

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::message::{self, Message};

/// The environment variable that marks a spawned child and describes its work.
pub(crate) const SPAWN_ENV: &str = "PIFORK_SPAWN";

/// The byte a spawned child sends first, from its guard, before running the entry.
pub(crate) const HANDSHAKE: u8 = b'R';

/// A registered entry: decodes its arguments, runs, encodes its result.
pub(crate) type EntryFn = Arc<dyn Fn(&[u8]) -> Result<Vec<u8>> + Send + Sync>;

static REGISTRY: Mutex<BTreeMap<String, EntryFn>> = Mutex::new(BTreeMap::new());
static GUARD_RAN: AtomicBool = AtomicBool::new(false);

/// Registers `f` under `name` as a target for any start method. Register every entry before
/// [`main_guard`]: a spawned child only knows what its `main` registered before the guard.
pub fn register<A, T, F>(name: &str, f: F)
where
    A: Message,
    T: Message,
    F: Fn(A) -> T + Send + Sync + 'static,
{
    let entry: EntryFn =
        Arc::new(move |bytes: &[u8]| Ok(message::to_bytes(&f(message::from_bytes::<A>(bytes)?))));
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), entry);
}

/// Entry points pifork itself provides, registered before the first lookup.
fn register_builtins() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        register_module_entries();
        register(NOOP_ENTRY, |(): ()| ());
    });
}

/// The entry points of pifork's pi engine and race, which exist on Linux only.
#[cfg(unix)]
fn register_module_entries() {
    crate::engine::register_entries();
    crate::race::register_entries();
}

/// Windows has neither the pi engine nor the race: no entries of theirs to register.
#[cfg(not(unix))]
fn register_module_entries() {}

/// An entry point that does nothing (for round-trip measurements).
pub const NOOP_ENTRY: &str = "pifork.noop";

/// The entry registered under `name`.
pub(crate) fn lookup(name: &str) -> Result<EntryFn> {
    register_builtins();
    let registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    registry.get(name).cloned().ok_or_else(|| Error::UnknownEntry {
        name: name.to_string(),
        known: registry.keys().cloned().collect::<Vec<_>>().join(", "),
    })
}

/// What a spawned child needs to know, carried in `PIFORK_SPAWN`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpawnSpec {
    /// The entry to run.
    pub entry: String,
    /// Inherited descriptor (or handle) the arguments arrive on.
    pub args: u64,
    /// Inherited descriptor (or handle) the handshake and the result go to.
    pub result: u64,
    /// A descriptor the child only holds open until it exits (the pipe sentinel), or 0.
    pub hold: u64,
    /// Whether the process is daemonic.
    pub daemon: bool,
}

impl SpawnSpec {
    /// The variable's value: `v1;entry;args;result;hold;daemon`.
    pub fn encode(&self) -> String {
        format!(
            "v1;{};{};{};{};{}",
            self.entry,
            self.args,
            self.result,
            self.hold,
            u8::from(self.daemon)
        )
    }

    /// Parses the variable's value.
    pub fn decode(text: &str) -> Option<SpawnSpec> {
        let mut parts = text.split(';');
        if parts.next()? != "v1" {
            return None;
        }
        let entry = parts.next()?.to_string();
        let args = parts.next()?.parse().ok()?;
        let result = parts.next()?.parse().ok()?;
        let hold = parts.next()?.parse().ok()?;
        let daemon = match parts.next()? {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        parts.next().is_none().then_some(SpawnSpec { entry, args, result, hold, daemon })
    }
}

/// Checks that an entry name can travel in `PIFORK_SPAWN`.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let ok =
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::UnknownEntry { name: name.to_string(), known: String::new() })
    }
}

/// True in a spawned child whose program never called [`main_guard`]: such a process must not
/// start processes of its own.
pub(crate) fn guard_missing() -> bool {
    !GUARD_RAN.load(Ordering::Relaxed) && std::env::var_os(SPAWN_ENV).is_some()
}

/// Turns a spawned child into its worker: runs the entry named in `PIFORK_SPAWN` with the
/// arguments from its parent, sends the result back and exits. Does nothing in any other
/// process. Call it at the top of `main`, after registering the entries.
pub fn main_guard() {
    if GUARD_RAN.swap(true, Ordering::Relaxed) {
        return;
    }
    register_builtins();
    let Some(value) = std::env::var_os(SPAWN_ENV) else { return };
    let Some(spec) = value.to_str().and_then(SpawnSpec::decode) else {
        eprintln!("pifork: malformed {SPAWN_ENV} in the environment: {value:?}");
        std::process::exit(2);
    };
    let mut result = crate::sys::inherited_file(spec.result);
    let mut args_file = crate::sys::inherited_file(spec.args);
    // This process's own children must not hold these open.
    super::imp::adopt_inherited(spec.result, spec.hold);
    if result.write_all(&[HANDSHAKE]).is_err() {
        // The parent is gone; nobody wants the work.
        crate::sys::exit_now(1);
    }
    let mut args = Vec::new();
    let read = args_file.read_to_end(&mut args);
    drop(args_file);
    super::set_in_daemon(spec.daemon);
    let (code, frame) = match (read, lookup(&spec.entry)) {
        (Ok(_), Ok(entry)) => {
            super::run_target(Vec::new(), |out| super::run_entry(&entry, &args, out))
        }
        (Err(e), _) => super::panic_frame(format!("cannot read the arguments: {e}")),
        (_, Err(e)) => super::panic_frame(e.to_string()),
    };
    let _ = result.write_all(&frame);
    drop(result);
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    crate::sys::exit_now(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips_and_rejects_garbage() {
        let spec =
            SpawnSpec { entry: "pi.worker".into(), args: 5, result: 7, hold: 0, daemon: true };
        assert_eq!(SpawnSpec::decode(&spec.encode()), Some(spec));
        for bad in
            ["", "v2;a;1;2;0;0", "v1;a;x;2;0;0", "v1;a;1;2;0;2", "v1;a;1;2;0;0;extra", "v1;a;1;2;0"]
        {
            assert_eq!(SpawnSpec::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("pifork.pi-worker:v1_2").is_ok());
        assert!(
            check_name("a;b").is_err() && check_name("").is_err() && check_name("a b").is_err()
        );
    }

    #[test]
    fn registered_entries_decode_and_encode() {
        register("test.double", |x: u64| x * 2);
        let entry = lookup("test.double").unwrap();
        assert_eq!(entry(&message::to_bytes(&21u64)).unwrap(), message::to_bytes(&42u64));
        assert!(entry(&[1, 2]).is_err(), "bad arguments are an error, not a panic");
        match lookup("test.missing") {
            Err(Error::UnknownEntry { known, .. }) => assert!(known.contains("test.double")),
            other => panic!("expected UnknownEntry, got {:?}", other.err()),
        }
    }
}
