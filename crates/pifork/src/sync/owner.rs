//! Who holds a lock, and whether they still live: this process's identity (pid, start time,
//! a token per thread), cached so that the uncontended path makes no system call, and the
//! liveness of another process read from `/proc/<pid>/stat`.
//!
//! A holder is recorded as its pid in the lock word (so taking the lock and naming the holder
//! are one atomic step) and, just after, as its pid and start time in a 64-bit owner word
//! ([`Me::stamp`]), which tells a live holder from a new process that reuses a dead one's pid.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::sys;

/// Pids fit in 30 bits (the kernel's ceiling, `PID_MAX_LIMIT`, is 2^22).
pub(crate) const PID_MASK: u32 = (1 << 30) - 1;

/// Start times keep their low 42 bits in a stamp (clock ticks since boot: 10^12 ticks, over
/// a century at 100 per second).
const START_BITS: u32 = 42;

/// This process as a lock records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Me {
    /// The process id (the thread group's).
    pub(crate) pid: u32,
    /// The process's start time, in clock ticks since boot (`/proc/self/stat` field 22).
    start: u64,
}

impl Me {
    /// The owner word recording this process: pid and start time.
    pub(crate) fn stamp(&self) -> u64 {
        stamp(self.pid, self.start)
    }
}

fn stamp(pid: u32, start: u64) -> u64 {
    (u64::from(pid) << START_BITS) | (start & ((1 << START_BITS) - 1))
}

/// The fork generation the cache below was filled in (`u32::MAX`: never).
static CACHED_IN: AtomicU32 = AtomicU32::new(u32::MAX);
static CACHED_PID: AtomicU32 = AtomicU32::new(0);
static CACHED_START: AtomicU64 = AtomicU64::new(0);
static NEXT_THREAD: AtomicU32 = AtomicU32::new(1);

thread_local! {
    static THREAD: Cell<u32> = const { Cell::new(0) };
}

/// The calling process. After a fork the child's first call reads its own pid and
/// start time again (once); otherwise this is a few loads.
pub(crate) fn me() -> Me {
    let generation = sys::fork_generation();
    let (pid, start) = if CACHED_IN.load(Ordering::Acquire) == generation {
        (CACHED_PID.load(Ordering::Relaxed), CACHED_START.load(Ordering::Relaxed))
    } else {
        let pid = sys::getpid().as_raw() as u32;
        let start = own_start(pid);
        CACHED_PID.store(pid, Ordering::Relaxed);
        CACHED_START.store(start, Ordering::Relaxed);
        CACHED_IN.store(generation, Ordering::Release);
        (pid, start)
    };
    Me { pid, start }
}

/// This process's start time as other processes read it: from its main thread's entry
/// (`/proc/<pid>/task/<pid>/stat`), which an emulator such as qemu-user passes through, where
/// it fakes `/proc/self/stat` and `/proc/<own pid>/stat` (a start time of its own reckoning in
/// the main thread, 0 in others). 0 when `/proc` cannot say: the pid alone then names the
/// holder (see [`holder_died`]).
fn own_start(pid: u32) -> u64 {
    match std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/stat")) {
        Ok(text) => match parse_stat(&text) {
            Some(Liveness::Alive { start }) => start,
            _ => 0,
        },
        Err(_) => 0,
    }
}

/// A number for the calling thread, unique within its process (never 0): what an `RLock`
/// records beside the pid. A forked child's thread keeps its parent's number, which the
/// child's own pid tells apart.
pub(crate) fn thread_token() -> u32 {
    THREAD.with(|t| {
        if t.get() == 0 {
            t.set(NEXT_THREAD.fetch_add(1, Ordering::Relaxed).max(1));
        }
        t.get()
    })
}

/// The calling process as CPython's lock reprs name it: its name (`MainProcess`, or the name
/// its parent gave it), and with `thread`, `|` and the thread's name unless it is the main one.
pub(crate) fn label(thread: bool) -> String {
    let mut name = crate::process::current_process().name;
    let current = std::thread::current();
    if thread && current.name() != Some("main") {
        name.push('|');
        match current.name() {
            Some(t) => name.push_str(t),
            None => name.push_str(&format!("{:?}", current.id())),
        }
    }
    name
}

/// What `/proc` says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// No such process.
    Gone,
    /// Ended, not reaped yet (`Z`), or being torn down (`X`): it holds nothing any more.
    Zombie,
    /// Running (or sleeping, stopped...), started at `start` ticks after boot.
    Alive {
        /// `/proc/<pid>/stat` field 22.
        start: u64,
    },
    /// `/proc` could not say (not mounted, or hidden): taken as alive.
    Unknown,
}

/// The state of process `pid`. Note that `kill(pid, 0)` succeeds on a zombie, which is why
/// the state letter is read instead.
pub(crate) fn liveness(pid: u32) -> Liveness {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => parse_stat(&text).unwrap_or(Liveness::Unknown),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Liveness::Gone,
        // ESRCH: the process went away while being read.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Liveness::Gone,
        Err(_) => Liveness::Unknown,
    }
}

/// Fields 3 (state) and 22 (start time) of a `/proc/<pid>/stat` line. The command name (field
/// 2) is in parentheses and may hold anything, so fields are counted after the last `)`.
fn parse_stat(text: &str) -> Option<Liveness> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" || state == "x" {
        return Some(Liveness::Zombie);
    }
    let start = fields.nth(18)?.parse().ok()?;
    Some(Liveness::Alive { start })
}

/// The start time recorded in the owner word `owner` (0: its recorder could not read its own,
/// as under qemu-user, whose `/proc/self/stat` reads 0 there while other processes read the
/// real value).
fn recorded_start(owner: u64) -> u64 {
    owner & ((1 << START_BITS) - 1)
}

/// Whether the owner word `owner`, naming pid `pid`, was recorded by an earlier process than
/// the one now alive under that pid, started at `start`. When either start time is unknown
/// (0) the pid alone decides: a live process under that pid is taken as the recorder.
fn reused(owner: u64, pid: u32, start: u64) -> bool {
    owner >> START_BITS == u64::from(pid)
        && recorded_start(owner) != 0
        && start != 0
        && owner != stamp(pid, start)
}

/// Whether the holder recorded as pid `pid` in a lock word (and, once it got that far, in
/// the owner word `owner`) has ended: gone, a zombie, or its pid now names a process started
/// at another time. A holder that is still between taking the lock word and writing its stamp,
/// or whose start time is unknown on either side, is judged by its pid alone.
pub(crate) fn holder_died(pid: u32, owner: u64, me: &Me) -> bool {
    if pid == 0 {
        return false;
    }
    if pid == me.pid {
        // Held by this process, unless by an earlier one whose pid this one reuses.
        return reused(owner, pid, me.start);
    }
    match liveness(pid) {
        Liveness::Gone | Liveness::Zombie => true,
        Liveness::Alive { start } => reused(owner, pid, start),
        Liveness::Unknown => false,
    }
}

/// Whether the process recorded in the owner word `owner` has ended (for the semaphore's
/// holder slots, which hold stamps only). An unknown start time on either side: the pid alone
/// decides, as in [`holder_died`].
pub(crate) fn stamp_died(owner: u64, me: &Me) -> bool {
    holder_died((owner >> START_BITS) as u32, owner, me)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_stamped() {
        let me = me();
        assert_eq!(me.pid, std::process::id());
        assert_ne!(me.start, 0, "/proc tells this process's start time");
        // Natively /proc/self/stat tells the same; under qemu-user it is faked (zeros where
        // the parent, process group and session are, and a start time of qemu's reckoning;
        // the state reads 0 in some versions, a letter in others), which is why the start is
        // read elsewhere. The fake is told by those ids, which the task entry tells truly.
        let ids = |path: String| {
            let text = std::fs::read_to_string(path).unwrap();
            let rest = &text[text.rfind(')').unwrap() + 1..];
            rest.split_whitespace().skip(1).take(3).map(str::to_owned).collect::<Vec<_>>()
        };
        let faked =
            ids("/proc/self/stat".into()) != ids(format!("/proc/{0}/task/{0}/stat", me.pid));
        if !faked {
            assert_eq!(liveness(me.pid), Liveness::Alive { start: me.start });
        }
        // Another process reads it so too.
        let out = std::process::Command::new("cat")
            .arg(format!("/proc/{}/stat", me.pid))
            .output()
            .unwrap();
        let seen = parse_stat(std::str::from_utf8(&out.stdout).unwrap());
        assert_eq!(seen, Some(Liveness::Alive { start: me.start }), "as others see it");
        assert!(!holder_died(me.pid, me.stamp(), &me));
        assert!(!stamp_died(me.stamp(), &me));
        assert_ne!(thread_token(), 0);
        assert_eq!(thread_token(), thread_token());
        let other = std::thread::spawn(thread_token).join().unwrap();
        assert_ne!(other, thread_token(), "each thread has its own token");
    }

    #[test]
    fn an_unknown_start_is_judged_by_the_pid_alone() {
        let me = me();
        // A stamp recorded without a start time (its recorder could not read it): a live
        // process under that pid is the holder, whatever its start.
        assert!(!holder_died(me.pid, stamp(me.pid, 0), &me));
        assert!(!stamp_died(stamp(me.pid, 0), &me));
        assert!(!holder_died(1, stamp(1, 0), &me));
        assert!(!stamp_died(stamp(1, 0), &me));
        // This process with an unknown start of its own (qemu-user): a stamp with any start
        // under its pid is its own.
        let blind = Me { pid: me.pid, start: 0 };
        assert!(!holder_died(me.pid, stamp(me.pid, 12345), &blind));
        assert!(!stamp_died(stamp(me.pid, 12345), &blind));
        // Both known and different: a reused pid.
        let sighted = Me { pid: me.pid, start: 777 };
        assert!(holder_died(me.pid, stamp(me.pid, 12345), &sighted));
        assert!(stamp_died(stamp(me.pid, 12345), &sighted));
        assert!(!reused(stamp(42, 5), 42, 0));
        assert!(!reused(stamp(42, 0), 42, 5));
        assert!(reused(stamp(42, 6), 42, 5));
        assert!(!reused(stamp(42, 5), 42, 5));
        // A pid with no process is dead, start or not.
        assert!(holder_died(PID_MASK, stamp(PID_MASK, 0), &me));
        assert!(stamp_died(stamp(PID_MASK, 0), &me));
    }

    #[test]
    fn stat_lines_are_read_after_the_name() {
        let line = "42 (a) b) Z) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 0 0";
        assert_eq!(parse_stat(line), Some(Liveness::Alive { start: 123456 }));
        let zombie = "42 (x) Z 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 7 0 0";
        assert_eq!(parse_stat(zombie), Some(Liveness::Zombie));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_reused_pid_is_not_the_holder() {
        let me = me();
        // Pid 1 lives, but not since the start time recorded here.
        let forged = stamp(1, 999_999_999);
        assert!(holder_died(1, forged, &me) || liveness(1) == Liveness::Unknown);
        assert!(stamp_died(forged, &me) || liveness(1) == Liveness::Unknown);
        // A pid no process has.
        assert!(holder_died(PID_MASK, 0, &me));
    }
}
