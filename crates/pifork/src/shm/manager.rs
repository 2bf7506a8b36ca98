//! [`SharedMemoryManager`]: CPython's `multiprocessing.managers.SharedMemoryManager`, which
//! makes named segments and lists and unlinks them all when it is shut down, without the
//! server process CPython starts for it.

use std::sync::Mutex;

use super::list::{Item, ShareableList};
use super::memory::{SharedMemory, ShmError};

/// Makes named [`SharedMemory`] segments and [`ShareableList`]s under fresh random names
/// (`psm_…`, which other programs may attach to) and unlinks every one of them at
/// [`shutdown`](Self::shutdown), or when it is dropped (CPython's `with SharedMemoryManager()
/// as smm:` block).
///
/// CPython runs a server process for this; here the manager is a list of names in the
/// process that made it, so there is nothing to start, to signal or to lose. Only that
/// process unlinks: a forked child that drops its copy leaves the segments alone. A manager
/// whose process is SIGKILLed unlinks nothing (no process is left to do it); where nothing
/// outside the process tree needs a name, anonymous segments ([`SharedMemory::new`],
/// [`ShareableList::new`]) cannot leak at all.
///
/// ```standalone_crate
/// use pifork::shm::{SharedMemory, SharedMemoryManager};
///
/// let smm = SharedMemoryManager::new();
/// let shm = smm.shared_memory(128)?;
/// let name = shm.name().unwrap().to_string();
/// assert!(SharedMemory::attach(&name).is_ok());
/// smm.shutdown()?;
/// assert!(SharedMemory::attach(&name).is_err()); // unlinked
/// # Ok::<(), pifork::ShmError>(())
/// ```
#[derive(Debug)]
pub struct SharedMemoryManager {
    owner: u32,
    /// The names made, `None` once shut down.
    names: Mutex<Option<Vec<String>>>,
}

impl SharedMemoryManager {
    /// A manager, ready to make segments (CPython's `SharedMemoryManager()` then `start()`).
    pub fn new() -> SharedMemoryManager {
        SharedMemoryManager { owner: std::process::id(), names: Mutex::new(Some(Vec::new())) }
    }

    /// A new named segment of `size` zero bytes (CPython's `smm.SharedMemory(size)`).
    pub fn shared_memory(&self, size: usize) -> Result<SharedMemory, ShmError> {
        self.make(|| SharedMemory::create_unique(size))
    }

    /// A new named list of `items` (CPython's `smm.ShareableList(sequence)`).
    pub fn shareable_list<T: Into<Item>>(
        &self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<ShareableList, ShmError> {
        self.make(|| ShareableList::create_unique(items))
    }

    /// The names of the segments made so far and not yet unlinked by the manager.
    pub fn names(&self) -> Vec<String> {
        self.lock().clone().unwrap_or_default()
    }

    /// Unlinks every segment the manager made (one already unlinked by someone else is
    /// skipped) and makes no more: later calls are [`ShmError::ManagerShutDown`]. A second
    /// shutdown does nothing. The first failure to unlink is returned after every other name
    /// was tried.
    pub fn shutdown(&self) -> Result<(), ShmError> {
        let Some(names) = self.lock().take() else { return Ok(()) };
        if std::process::id() != self.owner {
            return Ok(());
        }
        let mut first = Ok(());
        for name in names {
            match SharedMemory::unlink_name(&name) {
                Ok(()) | Err(ShmError::NotFound { .. }) => {}
                Err(e) => first = first.and(Err(e)),
            }
        }
        first
    }

    fn make<T: Named>(&self, make: impl FnOnce() -> Result<T, ShmError>) -> Result<T, ShmError> {
        let mut names = self.lock();
        let Some(names) = names.as_mut() else { return Err(ShmError::ManagerShutDown) };
        let made = make()?;
        names.push(made.segment_name().to_string());
        Ok(made)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<String>>> {
        // A panic elsewhere cannot leave the list of names half-changed.
        self.names.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for SharedMemoryManager {
    fn default() -> SharedMemoryManager {
        SharedMemoryManager::new()
    }
}

impl Drop for SharedMemoryManager {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            log::warn!("shared memory manager: {e}");
        }
    }
}

/// What a manager makes: something with a segment name.
trait Named {
    fn segment_name(&self) -> &str;
}

impl Named for SharedMemory {
    fn segment_name(&self) -> &str {
        self.name().expect("a manager's segments are named")
    }
}

impl Named for ShareableList {
    fn segment_name(&self) -> &str {
        self.name().expect("a manager's lists are named")
    }
}
