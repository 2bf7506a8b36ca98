//! One-way channels between processes: a pipe carrying length-prefixed [`Message`]s.
//! Both ends are pifork-owned descriptors: a child keeps one only if its `Process` inherits it.

use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::message::{self, Message};
use crate::process::Tracked;
use crate::sys;

/// The sending end of a channel.
#[derive(Debug)]
pub struct Sender<T> {
    fd: Tracked,
    _t: PhantomData<fn(T)>,
}

/// The receiving end of a channel.
#[derive(Debug)]
pub struct Receiver<T> {
    fd: Tracked,
    _t: PhantomData<fn() -> T>,
}

/// A new channel; messages up to `PIPE_BUF` (4096 bytes) are written atomically.
pub fn channel<T: Message>() -> Result<(Sender<T>, Receiver<T>)> {
    let (r, w) = sys::pipe().map_err(Error::sys("pipe"))?;
    Ok((
        Sender { fd: Tracked::new(w), _t: PhantomData },
        Receiver { fd: Tracked::new(r), _t: PhantomData },
    ))
}

impl<T: Message> Sender<T> {
    /// Sends one message (blocks while the pipe is full).
    pub fn send(&self, value: &T) -> Result<()> {
        let body = message::to_bytes(value);
        let len =
            u32::try_from(body.len()).map_err(|_| Error::Decode { reason: "message too long" })?;
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&body);
        sys::write_all(self.fd.as_fd(), &frame).map_err(Error::sys("write"))
    }
}

impl<T: Message> Receiver<T> {
    /// Receives one message; `None` once every sender is gone.
    pub fn recv(&self) -> Result<Option<T>> {
        let mut len = [0u8; 4];
        if !self.read_exact(&mut len, true)? {
            return Ok(None);
        }
        let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
        if !self.read_exact(&mut body, false)? {
            return Err(Error::Decode { reason: "truncated" });
        }
        message::from_bytes(&body).map(Some)
    }

    /// Fills `buf`; false on end-of-file before the first byte (when `eof_ok`).
    fn read_exact(&self, buf: &mut [u8], eof_ok: bool) -> Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            match sys::read(self.fd.as_fd(), &mut buf[got..]) {
                Ok(0) if got == 0 && eof_ok => return Ok(false),
                Ok(0) => {
                    return Err(Error::Decode { reason: "truncated" });
                }
                Ok(n) => got += n,
                Err(Errno::EAGAIN) => {
                    crate::wait::wait(&[self.fd.as_fd()], None)?;
                }
                Err(errno) => return Err(Error::sys("read")(errno)),
            }
        }
        Ok(true)
    }
}

impl<T> Sender<T> {
    /// Takes ownership of a sending end handed down by the parent under the number `fd`.
    pub fn inherited(fd: i32) -> Sender<T> {
        Sender { fd: Tracked::new(sys::inherited_file(fd as u64).into()), _t: PhantomData }
    }
}

impl<T> Receiver<T> {
    /// Takes ownership of a receiving end handed down by the parent under the number `fd`.
    pub fn inherited(fd: i32) -> Receiver<T> {
        Receiver { fd: Tracked::new(sys::inherited_file(fd as u64).into()), _t: PhantomData }
    }
}

impl<T> AsFd for Sender<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl<T> AsRawFd for Sender<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl<T> AsFd for Receiver<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl<T> AsRawFd for Receiver<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_messages_in_order_then_eof() {
        let (tx, rx) = channel::<(u64, f64)>().unwrap();
        tx.send(&(1, 0.5)).unwrap();
        tx.send(&(2, -1.0)).unwrap();
        drop(tx);
        assert_eq!(rx.recv().unwrap(), Some((1, 0.5)));
        assert_eq!(rx.recv().unwrap(), Some((2, -1.0)));
        assert_eq!(rx.recv().unwrap(), None);
    }
}
