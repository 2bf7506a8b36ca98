//! Shared memory: `memfd_create`, segment files under `/dev/shm`, `ftruncate`, `fstat`, seals,
//! and a `MAP_SHARED` mapping ([`Mapping`]) read and written only through atomics, never
//! through plain references: other processes write the same bytes at any time.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering};

use nix::errno::Errno;

/// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)`: an anonymous file in memory, with no
/// name in any directory; it is gone when the last descriptor and mapping of it are.
pub fn memfd_create(name: &CStr) -> Result<OwnedFd, Errno> {
    // SAFETY: `name` is a valid NUL-terminated string for the call; the flags are constants.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    let fd = Errno::result(fd)?;
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates the file `path` for a named segment: `O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
/// O_CLOEXEC`, mode 0600 (an existing file, or a link, is an error: `EEXIST`).
pub fn shm_create(path: &CStr) -> Result<OwnedFd, Errno> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW;
    nix::fcntl::open(path, flags | OFlag::O_CLOEXEC, Mode::S_IRUSR | Mode::S_IWUSR)
}

/// Opens the existing segment file `path` for reading and writing (`O_NOFOLLOW`: a link is
/// refused with `ELOOP`).
pub fn shm_open_existing(path: &CStr) -> Result<OwnedFd, Errno> {
    use nix::fcntl::OFlag;
    let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    nix::fcntl::open(path, flags, nix::sys::stat::Mode::empty())
}

/// `unlink(2)` of a segment file.
pub fn shm_unlink(path: &CStr) -> Result<(), Errno> {
    nix::unistd::unlink(path)
}

/// `ftruncate(2)`: sets the file's size (new bytes read as zero).
pub fn ftruncate(fd: BorrowedFd<'_>, len: u64) -> Result<(), Errno> {
    let len = libc::off_t::try_from(len).map_err(|_| Errno::EFBIG)?;
    nix::unistd::ftruncate(fd, len)
}

/// `fstat(2)`: the file's size in bytes.
pub fn file_size(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    let st = nix::sys::stat::fstat(fd)?;
    u64::try_from(st.st_size).map_err(|_| Errno::EINVAL)
}

/// Seals a memfd's size (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`): no process can shrink
/// it under another's mapping (which would make reads there fault with `SIGBUS`).
pub fn seal_size(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: F_ADD_SEALS takes an integer argument and touches no memory of ours.
    let res = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) };
    Errno::result(res).map(drop)
}

/// A `MAP_SHARED` read-write mapping of a whole file, unmapped on drop. Its bytes are shared
/// with every process that maps the same file, so they are reached only through atomics
/// ([`atomic_u32`](Self::atomic_u32) and its kind, [`read`](Self::read), [`write`](Self::write)):
/// no `&[u8]` to them exists, since another process may change them at any moment.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory reached only through atomic operations; it may be used
// and unmapped from any thread.
unsafe impl Send for Mapping {}
// SAFETY: every access through `&Mapping` is atomic (see the methods), so sharing it between
// threads is as sound as sharing an atomic.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)`; `len` must be non-zero and
    /// no more than the file's size.
    pub fn map_shared(fd: BorrowedFd<'_>, len: usize) -> Result<Mapping, Errno> {
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        // SAFETY: a fresh mapping chosen by the kernel (NULL hint) overlaps nothing of ours;
        // `fd` is open for the call; the result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(Errno::EINVAL)?;
        Ok(Mapping { ptr, len })
    }

    /// The mapping's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The mapping's address in this process (what a repr prints as the object's address).
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// The address of `size` bytes at `offset`, aligned to `size`; panics otherwise (a bug
    /// of the caller, whose layouts are fixed).
    fn at(&self, offset: usize, size: usize) -> *mut u8 {
        assert!(
            offset.checked_add(size).is_some_and(|end| end <= self.len)
                && offset.is_multiple_of(size),
            "{size}-byte atomic at offset {offset} of a {}-byte mapping",
            self.len
        );
        // SAFETY: `offset + size <= len`, so the result stays within the mapping.
        unsafe { self.ptr.as_ptr().add(offset) }
    }

    /// The byte at `offset`, as an atomic.
    pub fn atomic_u8(&self, offset: usize) -> &AtomicU8 {
        let p = self.at(offset, 1);
        // SAFETY: in bounds (checked by `at`); the memory lives as long as `&self`; every
        // access to it from this process is atomic.
        unsafe { AtomicU8::from_ptr(p) }
    }

    /// The 2-byte word at `offset` (2-aligned), as an atomic.
    pub fn atomic_u16(&self, offset: usize) -> &AtomicU16 {
        let p = self.at(offset, 2);
        // SAFETY: in bounds and aligned (checked by `at`; the mapping is page-aligned); the
        // memory lives as long as `&self`; every access to it from this process is atomic.
        unsafe { AtomicU16::from_ptr(p.cast()) }
    }

    /// The 4-byte word at `offset` (4-aligned), as an atomic; also a futex word.
    pub fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        let p = self.at(offset, 4);
        // SAFETY: as for `atomic_u16`.
        unsafe { AtomicU32::from_ptr(p.cast()) }
    }

    /// The 8-byte word at `offset` (8-aligned), as an atomic.
    pub fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        let p = self.at(offset, 8);
        // SAFETY: as for `atomic_u16`.
        unsafe { AtomicU64::from_ptr(p.cast()) }
    }

    /// Copies `buf.len()` bytes from `offset` into `buf` (relaxed atomic loads, a word at a
    /// time where aligned): bytes another process writes meanwhile may be old or new, one by
    /// one. Panics if the range is outside the mapping.
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        self.check_range(offset, buf.len());
        let base = self.ptr.as_ptr();
        let mut i = 0;
        while i < buf.len() {
            let at = offset + i;
            if at.is_multiple_of(8) && buf.len() - i >= 8 {
                // SAFETY: `at + 8 <= len` (the range was checked) and `at` is 8-aligned (the
                // mapping is page-aligned): a live, aligned word of the mapping.
                let word = unsafe { AtomicU64::from_ptr(base.add(at).cast()) };
                buf[i..i + 8].copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
                i += 8;
            } else {
                // SAFETY: `at < len` (the range was checked): a live byte of the mapping.
                let byte = unsafe { AtomicU8::from_ptr(base.add(at)) };
                buf[i] = byte.load(Ordering::Relaxed);
                i += 1;
            }
        }
    }

    /// Copies `data` into the mapping at `offset` (relaxed atomic stores, a word at a time
    /// where aligned). Panics if the range is outside the mapping.
    pub fn write(&self, offset: usize, data: &[u8]) {
        self.check_range(offset, data.len());
        let base = self.ptr.as_ptr();
        let mut i = 0;
        while i < data.len() {
            let at = offset + i;
            if at.is_multiple_of(8) && data.len() - i >= 8 {
                let word = u64::from_ne_bytes(data[i..i + 8].try_into().expect("8 bytes"));
                // SAFETY: as in `read`: a live, aligned word of the mapping.
                unsafe { AtomicU64::from_ptr(base.add(at).cast()) }.store(word, Ordering::Relaxed);
                i += 8;
            } else {
                // SAFETY: as in `read`: a live byte of the mapping.
                unsafe { AtomicU8::from_ptr(base.add(at)) }.store(data[i], Ordering::Relaxed);
                i += 1;
            }
        }
    }

    /// Copies `buf.len()` bytes from `offset` into `buf` in one `memcpy`, for a range that no
    /// process writes during the copy (the caller's protocol keeps it so, as a queue keeps
    /// its committed frames under the getters' mutex). Bytes written meanwhile by a process
    /// that breaks the protocol arrive torn, nothing worse: no reference to them is made.
    /// Panics if the range is outside the mapping.
    pub fn read_owned(&self, offset: usize, buf: &mut [u8]) {
        self.check_range(offset, buf.len());
        // SAFETY: the source range lies within the mapping (checked) and is read through a
        // raw pointer only; `buf` is private memory that cannot overlap a shared mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
    }

    /// Appends `len` bytes from `offset` to `out` in one `memcpy` (no zero-filling first), on
    /// the terms of [`read_owned`](Self::read_owned).
    pub fn extend_owned(&self, offset: usize, len: usize, out: &mut Vec<u8>) {
        self.check_range(offset, len);
        out.reserve(len);
        let at = out.len();
        // SAFETY: the source lies within the mapping (checked) and is read through a raw
        // pointer only; `reserve` made room for `len` more bytes after `at`, all of which the
        // copy initialises before `set_len` counts them; a private `Vec` cannot overlap a
        // shared mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                out.as_mut_ptr().add(at),
                len,
            );
            out.set_len(at + len);
        }
    }

    /// Copies `data` into the mapping at `offset` in one `memcpy`, for a range that no other
    /// process reads or writes during the copy (the caller's protocol keeps it so, as a
    /// queue keeps its free bytes under the putters' mutex). Panics if the range is outside
    /// the mapping.
    pub fn write_owned(&self, offset: usize, data: &[u8]) {
        self.check_range(offset, data.len());
        // SAFETY: the destination lies within the mapping (checked) and is written through a
        // raw pointer only; `data` is private memory that cannot overlap a shared mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(offset), data.len())
        };
    }

    fn check_range(&self, offset: usize, len: usize) {
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.len),
            "{len} bytes at offset {offset} of a {}-byte mapping",
            self.len
        );
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the region was mapped by `map_shared` with this length and is unmapped once;
        // nothing borrows it any more (every borrow is tied to `&self`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
