//! Futexes on process-shared words (no `FUTEX_PRIVATE_FLAG`: the word may live in memory
//! several processes map, and the kernel keys the wait on the file and offset), and the count
//! of forks this process has gone through, which per-process caches compare against.

use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use nix::errno::Errno;

/// `FUTEX_WAIT` on `word` while it holds `expected`, for at most `timeout` (`None`: until
/// woken). The timeout is relative and measured on `CLOCK_MONOTONIC`. `Ok` when woken;
/// `EAGAIN` if the word no longer held `expected`, `ETIMEDOUT`, or `EINTR`: callers look at
/// the word again in every case.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Result<(), Errno> {
    let ts = timeout.map(|d| libc::timespec {
        // Clamped to 68 years, which fits a 32-bit `time_t` too (the type is named by
        // inference: musl's libc marks the `time_t` alias deprecated).
        tv_sec: d.as_secs().min(i32::MAX as u64) as _,
        tv_nsec: d.subsec_nanos() as _,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned 4-byte atomic for the call; the kernel only reads it
    // and the timespec (null or a live local); the other arguments are unused by FUTEX_WAIT.
    let res = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    Errno::result(res).map(drop)
}

/// `FUTEX_WAKE`: wakes up to `n` waiters on `word` (in any process); returns how many woke.
pub fn futex_wake(word: &AtomicU32, n: u32) -> Result<usize, Errno> {
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    // SAFETY: FUTEX_WAKE only uses the word's address as a key; it reads no memory of ours.
    let res = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    Errno::result(res).map(|n| n as usize)
}

/// Forks this process has been through (it is 0 in a program that never forked and goes up by
/// one in each child): a cache of the process's identity stays valid while this does not
/// change. The first call registers the `pthread_atfork` handler that counts.
pub fn fork_generation() -> u32 {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: registers a child handler that only increments an atomic, which is
        // async-signal-safe; the other two handlers are none.
        let res = unsafe { libc::pthread_atfork(None, None, Some(count_fork)) };
        if res != 0 {
            log::warn!("pthread_atfork failed ({res}): identities cached across a fork go stale");
        }
    });
    FORKS.load(Ordering::Acquire)
}

static FORKS: AtomicU32 = AtomicU32::new(0);

extern "C" fn count_fork() {
    FORKS.fetch_add(1, Ordering::AcqRel);
}
