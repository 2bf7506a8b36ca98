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
        let start = match liveness(pid) {
            Liveness::Alive { start } => start,
            // No /proc: pid reuse cannot be told apart; the pid alone still names the holder.
            _ => 0,
        };
        CACHED_PID.store(pid, Ordering::Relaxed);
        CACHED_START.store(start, Ordering::Relaxed);
        CACHED_IN.store(generation, Ordering::Release);
        (pid, start)
    };
    Me { pid, start }
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

/// Whether the holder recorded as pid `pid` in a lock word (and, once it got that far, in
/// the owner word `stamp`) has ended: gone, a zombie, or its pid now names a process started
/// at another time. A holder that is still between taking the lock word and writing its stamp
/// is judged by its pid alone.
pub(crate) fn holder_died(pid: u32, owner: u64, me: &Me) -> bool {
    if pid == 0 {
        return false;
    }
    if pid == me.pid {
        // Held by this process, unless by an earlier one whose pid this one reuses.
        return owner >> START_BITS == u64::from(pid) && owner != me.stamp() && me.start != 0;
    }
    match liveness(pid) {
        Liveness::Gone | Liveness::Zombie => true,
        Liveness::Alive { start } => {
            owner >> START_BITS == u64::from(pid) && owner != stamp(pid, start) && start != 0
        }
        Liveness::Unknown => false,
    }
}

/// Whether the process recorded in the owner word `owner` has ended (for the semaphore's
/// holder slots, which hold stamps only).
pub(crate) fn stamp_died(owner: u64, me: &Me) -> bool {
    let pid = (owner >> START_BITS) as u32;
    pid != 0 && (pid != me.pid || owner != me.stamp()) && {
        match liveness(pid) {
            Liveness::Gone | Liveness::Zombie => true,
            Liveness::Alive { start } => owner != stamp(pid, start),
            Liveness::Unknown => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_stamped() {
        let me = me();
        assert_eq!(me.pid, std::process::id());
        assert!(matches!(liveness(me.pid), Liveness::Alive { start } if start == me.start));
        assert!(!holder_died(me.pid, me.stamp(), &me));
        assert!(!stamp_died(me.stamp(), &me));
        assert_ne!(thread_token(), 0);
        assert_eq!(thread_token(), thread_token());
        let other = std::thread::spawn(thread_token).join().unwrap();
        assert_ne!(other, thread_token(), "each thread has its own token");
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
