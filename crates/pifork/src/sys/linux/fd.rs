//! Descriptors: pipes, reads and writes, copies, taking ownership by number, `poll`.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// `pipe2(O_CLOEXEC)`: returns (read end, write end).
pub fn pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
}

/// `pipe2(O_CLOEXEC)` whose read end is non-blocking (the write end blocks). A fresh read
/// end's status flags are only `O_RDONLY`, so one `F_SETFL` sets them without reading them.
pub fn pipe_nonblocking_read() -> Result<(OwnedFd, OwnedFd), Errno> {
    use nix::fcntl::{F_SETFL, OFlag, fcntl};
    let (r, w) = pipe()?;
    fcntl(&r, F_SETFL(OFlag::O_NONBLOCK))?;
    Ok((r, w))
}

/// Sets or clears `O_NONBLOCK` on `fd`.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> Result<(), Errno> {
    use nix::fcntl::{F_GETFL, F_SETFL, OFlag, fcntl};
    let mut flags = OFlag::from_bits_truncate(fcntl(fd, F_GETFL)?);
    flags.set(OFlag::O_NONBLOCK, on);
    fcntl(fd, F_SETFL(flags)).map(drop)
}

/// `read(2)`, retrying on EINTR.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        match nix::unistd::read(fd, buf) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// `read(2)` appended to `buf`, into its spare capacity (`grow` more bytes are reserved when
/// there is none): no scratch buffer to zero or copy from. Retries on EINTR; returns the bytes
/// read, 0 only at end-of-file.
pub fn read_append(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, grow: usize) -> Result<usize, Errno> {
    if buf.capacity() == buf.len() {
        buf.reserve(grow.max(1));
    }
    let spare = buf.spare_capacity_mut();
    loop {
        // SAFETY: the kernel writes at most `spare.len()` bytes into the vector's allocated,
        // unused tail; the borrowed fd stays open for the call.
        let res = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
        match Errno::result(res) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(n) => {
                let n = n as usize;
                // SAFETY: `read` initialised the first `n` bytes of the spare capacity.
                unsafe { buf.set_len(buf.len() + n) };
                return Ok(n);
            }
        }
    }
}

/// `write(2)` once, retrying on EINTR. Returns the bytes written, which may be fewer than `buf`.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> Result<usize, Errno> {
    loop {
        match nix::unistd::write(fd, buf) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// `write(2)` of the whole buffer, retrying on EINTR and short writes.
pub fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(0) => return Err(Errno::EPIPE),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `dup2(2)`: makes descriptor number `to` a copy of `from` (closing what `to` was), without
/// close-on-exec.
///
/// # Safety
/// Whatever `to` referred to is closed: no live `OwnedFd` (or other owner) in this process may
/// refer to the number `to`, and the caller takes ownership of the new descriptor.
pub unsafe fn dup2_onto(from: BorrowedFd<'_>, to: RawFd) -> Result<(), Errno> {
    // SAFETY: plain syscall on integers; `from` is open for the call, and the caller vouches
    // that nothing else owns `to`.
    let res = unsafe { libc::dup2(from.as_raw_fd(), to) };
    Errno::result(res).map(drop)
}

/// `fcntl(F_DUPFD_CLOEXEC, min)`: an owned copy of `fd` numbered at least `min`.
pub fn dup_above(fd: BorrowedFd<'_>, min: RawFd) -> Result<OwnedFd, Errno> {
    let new = nix::fcntl::fcntl(fd, nix::fcntl::F_DUPFD_CLOEXEC(min))?;
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Takes ownership of the descriptor numbered `fd`.
///
/// # Safety
/// `fd` must be open and owned by nobody else in this process (for example, handed down by the
/// parent for this process to own), and nothing may close it behind the returned `OwnedFd`.
pub unsafe fn own_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: forwarded to the caller (see above).
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A descriptor handed down by a parent across `exec` (its number travelled in the
/// environment), as a `File`.
///
/// # Safety
/// As for [`own_fd`]: `fd` must be open and owned by nobody else in this process.
pub unsafe fn inherited_file(fd: i64) -> std::fs::File {
    // SAFETY: forwarded to the caller (see above).
    std::fs::File::from(unsafe { own_fd(fd as RawFd) })
}

/// Whether the descriptor whose number travelled in the environment is open here.
pub fn is_inherited_open(fd: i64) -> bool {
    RawFd::try_from(fd).is_ok_and(is_open)
}

/// Whether `fd` is an open descriptor in this process (`fcntl(F_GETFD)`); touches nothing.
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags; an unused number gives EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// `close(2)` of a descriptor by number. Async-signal-safe.
///
/// # Safety
/// No owner (`OwnedFd`, `File`, ...) of `fd` in this process may use or close it afterwards:
/// used in a freshly forked child on copies of the parent's bookkeeping descriptors, whose
/// owners the child never drops (it leaves only through [`exit_now`](super::exit_now)).
pub unsafe fn close_raw(fd: RawFd) {
    // SAFETY: forwarded to the caller (see above); closing a number touches no memory.
    unsafe {
        libc::close(fd);
    }
}

/// `poll(2)` once. Returns the number of ready entries (EINTR is returned to the caller, who
/// owns the deadline).
pub fn poll(fds: &mut [nix::poll::PollFd<'_>], timeout_ms: i32) -> Result<usize, Errno> {
    let timeout =
        nix::poll::PollTimeout::try_from(timeout_ms).unwrap_or(nix::poll::PollTimeout::NONE);
    nix::poll::poll(fds, timeout).map(|n| n as usize)
}

/// `close_range(2)` over `first..=last` (`cloexec`: mark them close-on-exec instead of closing).
fn close_range(first: RawFd, last: RawFd, cloexec: bool) -> Result<(), Errno> {
    let flags = if cloexec { libc::CLOSE_RANGE_CLOEXEC } else { 0 };
    // SAFETY: a plain syscall on integers; what it closes is the caller's contract (see
    // `close_all_except`).
    let res = unsafe {
        libc::syscall(libc::SYS_close_range, first as libc::c_uint, last as libc::c_uint, flags)
    };
    Errno::result(res).map(drop)
}

/// Closes (`cloexec`: marks close-on-exec) every descriptor from 3 up that is not in `keep`,
/// which must be sorted: `close_range(2)` over the gaps, or, on kernels without it (before 5.9;
/// 5.11 for `cloexec`), `close(2)` of each number below `limit`. Async-signal-safe: no
/// allocation, no lock.
///
/// # Safety
/// Whatever the closed numbers referred to is gone: no owner of them in this process may use or
/// close them afterwards (a freshly forked child that leaves only through `exit_now` or
/// `execve` never does).
pub unsafe fn close_all_except(keep: &[RawFd], limit: RawFd, cloexec: bool) {
    let mut first = 3;
    let mut ranges_work = true;
    for &fd in keep.iter().filter(|&&fd| fd >= 3).chain(std::iter::once(&RawFd::MAX)) {
        if fd > first {
            let last = if fd == RawFd::MAX { RawFd::MAX } else { fd - 1 };
            if ranges_work && close_range(first, last, cloexec).is_err() {
                ranges_work = false;
            }
            if !ranges_work {
                for n in first..=last.min(limit - 1) {
                    if cloexec {
                        // SAFETY: F_SETFD on a number only changes that descriptor's flags.
                        unsafe { libc::fcntl(n, libc::F_SETFD, libc::FD_CLOEXEC) };
                    } else {
                        // SAFETY: forwarded to the caller (see above).
                        unsafe { libc::close(n) };
                    }
                }
            }
        }
        first = first.max(fd.saturating_add(1));
    }
}

/// One past the highest descriptor number this process may open (`RLIMIT_NOFILE`, at most
/// 2^16): where a descriptor-by-descriptor sweep stops.
pub fn descriptor_limit() -> RawFd {
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    RawFd::try_from(limit.min(1 << 16)).unwrap_or(1 << 16)
}
