//! Entry points for the spawn and forkserver start methods: targets that travel by name, and
//! the description of a spawned child's work that travels in its environment.
//!
//! A spawned child is a fresh run of the current executable. It learns which entry to run from
//! `PIFORK_SPAWN` in its environment and runs it from `main_guard`, the equivalent of
//! Python's `if __name__ == "__main__":`, called at the top of `main` after the entries are
//! registered. A child whose program forgot the guard never starts processes of its own (no
//! fork bomb), and the parent's `start()` fails with [`Error::NoMainGuard`].

use std::collections::BTreeMap;
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
/// `main_guard`: a spawned child only knows what its `main` registered before the guard.
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

/// The one entry point the library itself provides, registered before the first lookup.
pub(crate) fn register_builtins() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        register(NOOP_ENTRY, |(): ()| ());
        register_pool_worker();
    });
}

/// The pool's worker loop, an entry point of its own so that spawned workers find it too.
#[cfg(target_os = "linux")]
fn register_pool_worker() {
    use crate::pool::worker;
    register(worker::ENTRY, |args: worker::WorkerArgs| {
        worker::run(args, &|name: &str, bytes: &[u8]| {
            lookup(name).and_then(|entry| entry(bytes)).map_err(|e| e.to_string())
        })
    });
}

/// No pool on this platform.
#[cfg(windows)]
fn register_pool_worker() {}

/// Whether an entry is registered under `name`.
#[cfg(target_os = "linux")]
pub(crate) fn is_registered(name: &str) -> bool {
    lookup(name).is_ok()
}

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
    /// Inherited descriptor (or handle value) the arguments arrive on.
    pub args: WireFd,
    /// Inherited descriptor (or handle value) the handshake and the result go to.
    pub result: WireFd,
    /// A descriptor the child only holds open until it exits (the pipe sentinel), or -1.
    pub hold: WireFd,
    /// Whether the process is daemonic.
    pub daemon: bool,
    /// The descriptors (handle values) listed with `inherit_fds`, claimable by the entry.
    pub inherit: Vec<WireFd>,
    /// The parent's pid.
    pub parent: i32,
    /// The process's name.
    pub name: String,
}

/// A descriptor number on Linux, a handle's value on Windows: an integer either way.
pub(crate) type WireFd = i64;

impl SpawnSpec {
    /// The variable's value: `v2;entry;args;result;hold;daemon;inherit,...;parent;name`, the
    /// name in hexadecimal (it may hold any character).
    pub fn encode(&self) -> String {
        let inherit: Vec<String> = self.inherit.iter().map(i64::to_string).collect();
        let name: String = self.name.bytes().map(|b| format!("{b:02x}")).collect();
        format!(
            "v2;{};{};{};{};{};{};{};{name}",
            self.entry,
            self.args,
            self.result,
            self.hold,
            u8::from(self.daemon),
            inherit.join(","),
            self.parent,
        )
    }

    /// Parses the variable's value.
    pub fn decode(text: &str) -> Option<SpawnSpec> {
        let mut parts = text.split(';');
        if parts.next()? != "v2" {
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
        let inherit = match parts.next()? {
            "" => Vec::new(),
            list => list.split(',').map(|n| n.parse().ok()).collect::<Option<Vec<_>>>()?,
        };
        let parent = parts.next()?.parse().ok()?;
        let hex = parts.next()?;
        if hex.len() % 2 != 0 {
            return None;
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        let name = String::from_utf8(bytes).ok()?;
        parts.next().is_none().then_some(SpawnSpec {
            entry,
            args,
            result,
            hold,
            daemon,
            inherit,
            parent,
            name,
        })
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

/// Records that the program called `main_guard`; true if it had already.
pub(crate) fn mark_guard_ran() -> bool {
    GUARD_RAN.swap(true, Ordering::Relaxed)
}

/// True in a spawned child whose program never called `main_guard`: such a process must not
/// start processes of its own.
pub(crate) fn guard_missing() -> bool {
    !GUARD_RAN.load(Ordering::Relaxed) && std::env::var_os(SPAWN_ENV).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips_and_rejects_garbage() {
        let spec = SpawnSpec {
            entry: "pi.worker".into(),
            args: 5,
            result: 7,
            hold: -1,
            daemon: true,
            inherit: vec![9, 12],
            parent: 77,
            name: "worker; 1 ✓".into(),
        };
        assert_eq!(SpawnSpec::decode(&spec.encode()), Some(spec.clone()));
        let none = SpawnSpec { inherit: Vec::new(), ..spec };
        assert_eq!(SpawnSpec::decode(&none.encode()), Some(none));
        for bad in [
            "",
            "v1;a;1;2;0;0",
            "v2;a;x;2;0;0;;7;61",
            "v2;a;1;2;0;2;;7;61",
            "v2;a;1;2;0;0;;7;61;extra",
            "v2;a;1;2;0;0;;7",
            "v2;a;1;2;0;0;3,x;7;61",
            "v2;a;1;2;0;0;;7;6",
            "v2;a;1;2;0;0;;7;zz",
        ] {
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
