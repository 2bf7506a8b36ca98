//! Bookkeeping descriptors that pifork creates (sentinels, result pipes, channels) are recorded
//! here, so that a freshly forked child can close the ones that are not its own: no child holds
//! another child's pipe end, so end-of-file and hang-up arrive when they should.
//!
//! The table is a bitmap indexed by descriptor number, in segments allocated as higher numbers
//! show up (up to the kernel's own ceiling, `fs.nr_open`, 2^20 by default): it grows with the
//! process's descriptors, and reading it in a forked child takes no lock and allocates nothing.
//!
//! A second, smaller table lists the descriptors this process's parent handed down to it (a
//! `Process`'s `inherit_fds`): each can be claimed once, safely, with [`take_inherited`].

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};

use crate::error::{Error, Result};

const FREE: i32 = -1;

/// Descriptors per segment: 64 words of 64 bits.
const SEGMENT_FDS: usize = 4096;
/// Segments: 256 x 4096 = 2^20 descriptors, Linux's default `fs.nr_open`.
const SEGMENTS: usize = 256;

type Segment = [AtomicU64; SEGMENT_FDS / 64];

/// Bit `fd % 4096` of segment `fd / 4096` is set while descriptor `fd` is recorded. A segment
/// is allocated (in the parent, by [`register`]) the first time a number in its range is
/// recorded, and never freed.
static TABLE: [OnceLock<Box<Segment>>; SEGMENTS] = [const { OnceLock::new() }; SEGMENTS];

/// One past the highest segment ever allocated: scans stop there.
static USED: AtomicUsize = AtomicUsize::new(0);

/// The word and bit of `fd`, if the table can hold it.
fn position(fd: RawFd) -> Option<(usize, usize, u64)> {
    let fd = usize::try_from(fd).ok()?;
    (fd < SEGMENTS * SEGMENT_FDS).then(|| {
        let (segment, offset) = (fd / SEGMENT_FDS, fd % SEGMENT_FDS);
        (segment, offset / 64, 1u64 << (offset % 64))
    })
}

fn register(fd: RawFd) {
    let Some((segment, word, bit)) = position(fd) else {
        log::warn!("descriptor {fd} is beyond the table: later children will inherit it");
        return;
    };
    let words =
        TABLE[segment].get_or_init(|| Box::new([const { AtomicU64::new(0) }; SEGMENT_FDS / 64]));
    USED.fetch_max(segment + 1, Ordering::AcqRel);
    // Recording twice is harmless: a descriptor handed down by the parent may be recorded
    // already (a forked child keeps the records of what it kept).
    words[word].fetch_or(bit, Ordering::AcqRel);
}

fn unregister(fd: RawFd) {
    if let Some((segment, word, bit)) = position(fd)
        && let Some(words) = TABLE[segment].get()
    {
        words[word].fetch_and(!bit, Ordering::AcqRel);
    }
}

/// Whether `fd` is recorded.
#[cfg(test)]
fn is_recorded(fd: RawFd) -> bool {
    position(fd).is_some_and(|(segment, word, bit)| {
        TABLE[segment].get().is_some_and(|words| words[word].load(Ordering::Acquire) & bit != 0)
    })
}

/// Records a descriptor that lives as long as the process (owned elsewhere), so that
/// children do not inherit it.
pub(crate) fn track_forever(fd: &impl AsRawFd) {
    register(fd.as_raw_fd());
}

/// In a freshly forked child: closes every recorded descriptor that `keep` rejects; the kept
/// ones stay recorded (so the child's own children close them in turn). Lock-free and
/// allocation-free, hence safe right after `fork`.
pub(crate) fn close_others_in_child(keep: impl Fn(RawFd) -> bool) {
    for (segment, words) in TABLE[..USED.load(Ordering::Acquire)].iter().enumerate() {
        let Some(words) = words.get() else { continue };
        for (w, word) in words.iter().enumerate() {
            let mut bits = word.load(Ordering::Acquire);
            while bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let fd = (segment * SEGMENT_FDS + w * 64 + bit) as RawFd;
                if !keep(fd) {
                    #[allow(unsafe_code)] // closing by number in a forked child (see sys/mod.rs)
                    // SAFETY: the table lists only descriptors owned by pifork objects of the
                    // parent; their copies in this freshly forked child are never used or
                    // dropped (the child leaves through `_exit`), so closing the numbers here
                    // leaves no owner behind.
                    unsafe {
                        crate::sys::close_raw(fd)
                    };
                    word.fetch_and(!(1u64 << bit), Ordering::Release);
                }
            }
        }
    }
}

/// An owned descriptor recorded in the table for as long as it lives.
#[derive(Debug)]
pub(crate) struct Tracked(Option<OwnedFd>);

impl Tracked {
    /// Records `fd` and takes ownership of it.
    pub(crate) fn new(fd: OwnedFd) -> Tracked {
        register(fd.as_raw_fd());
        Tracked(Some(fd))
    }
}

impl AsFd for Tracked {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_ref().expect("present until drop").as_fd()
    }
}

impl AsRawFd for Tracked {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(fd) = self.0.take() {
            // Forget the number first: once closed it may be reused by an unrelated open.
            unregister(fd.as_raw_fd());
            drop(fd);
        }
    }
}

/// Descriptors handed down to this process by its parent, not claimed yet.
static INHERITED: [AtomicI32; INHERITED_SLOTS] = [const { AtomicI32::new(FREE) }; INHERITED_SLOTS];

/// How many handed-down descriptors are remembered.
const INHERITED_SLOTS: usize = 64;

/// In a new child (a forked one, or a spawned one in its guard): records the descriptors its
/// parent handed down, each claimable once with [`take_inherited`]. Lock- and allocation-free.
pub(crate) fn set_inherited(fds: &[RawFd]) {
    for (slot, &fd) in INHERITED.iter().zip(fds.iter().chain(std::iter::repeat(&FREE))) {
        slot.store(fd, Ordering::Release);
    }
    if fds.len() > INHERITED_SLOTS {
        log::warn!("more than {INHERITED_SLOTS} inherited descriptors: the rest cannot be taken");
    }
}

/// Takes ownership of descriptor `fd`, which this process's parent handed down with
/// `Process::inherit_fds`; each can be taken once. Anything else is
/// [`Error::NotInherited`].
pub fn take_inherited(fd: RawFd) -> Result<OwnedFd> {
    let claimed = fd != FREE
        && INHERITED.iter().any(|slot| {
            slot.compare_exchange(fd, FREE, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        });
    if !claimed || !crate::sys::is_open(fd) {
        return Err(Error::NotInherited { fd });
    }
    #[allow(unsafe_code)] // owning a handed-down number (see sys/mod.rs)
    // SAFETY: the parent handed this open descriptor down for this process to own, and the
    // claim above succeeds only once per handed-down number, so there is no other owner.
    let owned = unsafe { crate::sys::own_fd(fd) };
    Ok(owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_beyond_the_first_segment_are_recorded_and_forgotten() {
        for fd in [3, 4095, 4096, 70_000, (SEGMENTS * SEGMENT_FDS - 1) as RawFd] {
            register(fd);
            assert!(is_recorded(fd), "{fd}");
            assert!(USED.load(Ordering::Acquire) > fd as usize / SEGMENT_FDS);
            unregister(fd);
            assert!(!is_recorded(fd), "{fd}");
        }
        // Beyond the kernel's default ceiling, and negative numbers: not recorded, no panic.
        for fd in [(SEGMENTS * SEGMENT_FDS) as RawFd, -1] {
            register(fd);
            assert!(!is_recorded(fd));
            unregister(fd);
        }
    }
}
