//! Length-prefixed frames over a stream descriptor (a pipe, a stream socket): a `u32`
//! little-endian length, then the [`Message`]'s encoding. The writer keeps writing until the
//! whole frame is out and the reader keeps reading until it is all in, however small the
//! kernel's buffer: a message may be far larger than the pipe or socket holds at once.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};

use crate::error::{Error, Result};
use crate::message::Message;
use crate::sys;

/// The most body bytes reserved ahead of their arrival: a corrupt length prefix cannot make
/// the reader allocate gigabytes before the peer has sent anything.
const RESERVE_STEP: usize = 1 << 20;

/// One write call on a descriptor, returning how much it took: `write(2)` on a pipe,
/// `send(2)` on a socket.
pub(crate) type WriteOnce = fn(BorrowedFd<'_>, &[u8]) -> std::result::Result<usize, Errno>;

/// Sends `value` as one frame through `write` (named `op` in errors). Blocks while the
/// descriptor is full, also when it was made non-blocking.
pub(crate) fn send<T: Message>(
    fd: BorrowedFd<'_>,
    value: &T,
    write: WriteOnce,
    op: &'static str,
) -> Result<()> {
    let mut frame = vec![0u8; 4];
    value.encode(&mut frame);
    let len =
        u32::try_from(frame.len() - 4).map_err(|_| Error::Decode { reason: "message too long" })?;
    frame[..4].copy_from_slice(&len.to_le_bytes());
    let mut rest = &frame[..];
    while !rest.is_empty() {
        match write(fd, rest) {
            Ok(0) => return Err(Error::sys(op)(Errno::EPIPE)),
            Ok(n) => rest = &rest[n..],
            Err(Errno::EAGAIN) => writable(fd)?,
            Err(errno) => return Err(Error::sys(op)(errno)),
        }
    }
    Ok(())
}

/// Receives one frame and decodes it; `None` at end-of-file between frames. End-of-file
/// inside a frame is [`Error::Decode`] ("truncated").
pub(crate) fn recv<T: Message>(fd: BorrowedFd<'_>) -> Result<Option<T>> {
    let mut len = [0u8; 4];
    if !read_exact(fd, &mut len, true)? {
        return Ok(None);
    }
    let len = u32::from_le_bytes(len) as usize;
    let mut body = Vec::new();
    while body.len() < len {
        let got = body.len();
        body.resize(len.min(got + RESERVE_STEP), 0);
        read_exact(fd, &mut body[got..], false)?;
    }
    crate::message::from_bytes(&body).map(Some)
}

/// Whether `fd` has something to read (data, or end-of-file), waiting up to `timeout`
/// (`None`: until it has).
pub(crate) fn readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> Result<bool> {
    Ok(!crate::wait::wait(&[fd], timeout)?.is_empty())
}

/// Fills `buf`; false on end-of-file before the first byte (when `eof_ok`).
fn read_exact(fd: BorrowedFd<'_>, buf: &mut [u8], eof_ok: bool) -> Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match sys::read(fd, &mut buf[got..]) {
            Ok(0) if got == 0 && eof_ok => return Ok(false),
            Ok(0) => return Err(Error::Decode { reason: "truncated" }),
            Ok(n) => got += n,
            Err(Errno::EAGAIN) => {
                readable(fd, None)?;
            }
            Err(errno) => return Err(Error::sys("read")(errno)),
        }
    }
    Ok(true)
}

/// Waits until `fd` takes more bytes (or has failed: the next write reports why).
fn writable(fd: BorrowedFd<'_>) -> Result<()> {
    let mut pollfd = [PollFd::new(fd, PollFlags::POLLOUT)];
    loop {
        match sys::poll(&mut pollfd, -1) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(Error::sys("poll")(errno)),
        }
    }
}
