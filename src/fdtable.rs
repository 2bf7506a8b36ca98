//! Bookkeeping descriptors that pifork creates (sentinels, result pipes, channels) are recorded
//! here, so that a freshly forked child can close the ones that are not its own: no child holds
//! another child's pipe end, so end-of-file and hang-up arrive when they should.
//!
//! The table is a fixed array of atomics: reading it in a forked child takes no lock.
//!
//! A second, smaller table lists the descriptors this process's parent handed down to it (a
//! `Process`'s `inherit_fds`): each can be claimed once, safely, with [`take_inherited`].

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use crate::error::{Error, Result};

const SLOTS: usize = 4096;
const FREE: i32 = -1;

static TABLE: [AtomicI32; SLOTS] = [const { AtomicI32::new(FREE) }; SLOTS];

/// One past the highest slot ever used: scans stop there instead of reading all `SLOTS`.
static USED: AtomicUsize = AtomicUsize::new(0);

/// The slots that may hold a descriptor.
fn used() -> &'static [AtomicI32] {
    &TABLE[..USED.load(Ordering::Acquire).min(SLOTS)]
}

fn register(fd: RawFd) {
    // A descriptor handed down by the parent may be recorded already (a forked child keeps the
    // records of what it kept): once is enough.
    if used().iter().any(|slot| slot.load(Ordering::Acquire) == fd) {
        return;
    }
    for (i, slot) in TABLE.iter().enumerate() {
        if slot.load(Ordering::Relaxed) != FREE {
            continue;
        }
        // Raised before the descriptor lands in the slot, so a scan never stops short of it.
        if USED.load(Ordering::Relaxed) <= i {
            USED.fetch_max(i + 1, Ordering::AcqRel);
        }
        if slot.compare_exchange(FREE, fd, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            return;
        }
    }
    log::warn!("descriptor table full: fd {fd} will be inherited by later children");
}

fn unregister(fd: RawFd) {
    for slot in used() {
        if slot.compare_exchange(fd, FREE, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            return;
        }
    }
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
    for slot in used() {
        let fd = slot.load(Ordering::Acquire);
        if fd != FREE && !keep(fd) {
            // SAFETY: the table lists only descriptors owned by pifork objects of the parent;
            // their copies in this freshly forked child are never used or dropped (the child
            // leaves through `_exit`), so closing the numbers here leaves no owner behind.
            unsafe { crate::sys::close_raw(fd) };
            slot.store(FREE, Ordering::Release);
        }
    }
}

/// In a freshly forked child: forgets and closes the recorded descriptor `fd`, whose owner the
/// child never uses or drops (it leaves through `_exit`). Lock-free and allocation-free.
pub(crate) fn close_in_child(fd: RawFd) {
    unregister(fd);
    // SAFETY: as in `close_others_in_child`: the owner of this copy is never used or dropped in
    // the child, so closing the number leaves no owner behind.
    unsafe { crate::sys::close_raw(fd) };
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
    // SAFETY: the parent handed this open descriptor down for this process to own, and the
    // claim above succeeds only once per handed-down number, so there is no other owner.
    Ok(unsafe { crate::sys::own_fd(fd) })
}
