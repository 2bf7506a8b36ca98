//! One-way channels between processes: a pipe carrying length-prefixed [`Message`]s, CPython's
//! `Pipe(duplex=False)` (for two-way traffic, [`connection::pipe`](crate::connection::pipe)).
//! Both ends are pifork-owned descriptors: a child keeps one only if its `Process` inherits it.
//! An end is made from a pipe end this process owns (`From<OwnedFd>`), or claimed in a child by
//! the number its parent handed down (`from_inherited`).
//! The direction is in the types: a [`Receiver`] has no `send`, a [`Sender`] no `recv`.

use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fdtable::{Tracked, take_inherited};
use crate::frame;
use crate::message::Message;
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
    Ok((Sender::from(w), Receiver::from(r)))
}

impl<T: Message> Sender<T> {
    /// Sends one message (blocks while the pipe is full).
    pub fn send(&self, value: &T) -> Result<()> {
        frame::send(self.fd.as_fd(), value, sys::write, "write")
    }
}

impl<T: Message> Receiver<T> {
    /// Receives one message; `None` once every sender is gone.
    pub fn recv(&self) -> Result<Option<T>> {
        frame::recv(self.fd.as_fd())
    }

    /// Whether a message (or the end) is waiting, waiting up to `timeout` for one (`None`:
    /// as long as it takes); CPython's `Connection.poll`.
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        frame::readable(self.fd.as_fd(), timeout)
    }
}

impl<T> Sender<T> {
    /// Takes the sending end the parent handed down under the number `fd` (listed in its
    /// `Process::inherit_fds`); each can be taken once. Else [`Error::NotInherited`].
    pub fn from_inherited(fd: RawFd) -> Result<Sender<T>> {
        Ok(Sender::from(take_inherited(fd)?))
    }
}

impl<T> Receiver<T> {
    /// Takes the receiving end the parent handed down under the number `fd` (listed in its
    /// `Process::inherit_fds`); each can be taken once. Else [`Error::NotInherited`].
    pub fn from_inherited(fd: RawFd) -> Result<Receiver<T>> {
        Ok(Receiver::from(take_inherited(fd)?))
    }
}

impl<T> From<OwnedFd> for Sender<T> {
    /// A sending end on a pipe's write end (no other child inherits it).
    fn from(fd: OwnedFd) -> Sender<T> {
        Sender { fd: Tracked::new(fd), _t: PhantomData }
    }
}

impl<T> From<OwnedFd> for Receiver<T> {
    /// A receiving end on a pipe's read end (no other child inherits it).
    fn from(fd: OwnedFd) -> Receiver<T> {
        Receiver { fd: Tracked::new(fd), _t: PhantomData }
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

    #[test]
    fn poll_sees_a_message_without_taking_it() {
        let (tx, rx) = channel::<u8>().unwrap();
        assert!(!rx.poll(Some(Duration::ZERO)).unwrap());
        tx.send(&7).unwrap();
        assert!(rx.poll(None).unwrap());
        assert!(rx.poll(Some(Duration::ZERO)).unwrap());
        assert_eq!(rx.recv().unwrap(), Some(7));
        drop(tx);
        assert!(rx.poll(Some(Duration::ZERO)).unwrap(), "the end is something to read");
    }
}
