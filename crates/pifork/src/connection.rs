//! Two-way connections between processes, CPython's `multiprocessing.Pipe()`: [`pipe`] makes
//! two [`Connection`]s on a Unix stream socket pair, each end sending and receiving
//! length-prefixed [`Message`]s. Both ends are pifork-owned descriptors: a child keeps one only
//! if its `Process` inherits it. An end is made from a socket this process owns
//! (`From<OwnedFd>`), or claimed in a child by the number its parent handed down
//! ([`Connection::from_inherited`]).
//!
//! ```standalone_crate
//! let (parent, child) = pifork::connection::pipe::<String>()?;
//! parent.send(&"ping".to_string())?;
//! assert_eq!(child.recv()?.as_deref(), Some("ping"));
//! child.send(&"pong".to_string())?;
//! assert!(parent.poll(None)?);
//! assert_eq!(parent.recv()?.as_deref(), Some("pong"));
//! drop(child);
//! assert_eq!(parent.recv()?, None); // the peer is gone
//! # Ok::<(), pifork::Error>(())
//! ```
//!
//! `SOCK_STREAM` rather than `SOCK_SEQPACKET`: a packet may not outgrow the socket's buffer,
//! a stream carries messages of any size in as many pieces as it takes (the frames mark where
//! each message ends), as CPython's connections do over the same kind of socket.
//!
//! CPython's `Pipe(duplex=False)` is [`channel()`](crate::channel()): a pipe whose ends are a
//! [`Receiver`](crate::Receiver) and a [`Sender`](crate::Sender). There the direction is in the
//! types, so sending on the receiving end is refused when compiling, not when running:
//!
//! ```compile_fail,E0599
//! let (tx, rx) = pifork::channel::<u8>()?;
//! rx.send(&1)?; // a Receiver has no `send`
//! # Ok::<(), pifork::Error>(())
//! ```

use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fdtable::{Tracked, take_inherited};
use crate::frame;
use crate::message::Message;
use crate::sys;

/// One end of a two-way connection: sends and receives messages of type `T`.
///
/// Sending and receiving take `&self`; two threads may use one end, but two sending at once
/// (or two receiving at once) could interleave their frames: give each its own connection.
#[derive(Debug)]
pub struct Connection<T> {
    fd: Tracked,
    _t: PhantomData<fn(T) -> T>,
}

/// Two connected ends: what one sends, the other receives (CPython's `Pipe()`).
pub fn pipe<T: Message>() -> Result<(Connection<T>, Connection<T>)> {
    let (a, b) = sys::stream_pair().map_err(Error::sys("socketpair"))?;
    Ok((Connection::from(a), Connection::from(b)))
}

impl<T: Message> Connection<T> {
    /// Sends one message; blocks while the socket is full (the peer reads the rest as it comes),
    /// so a message may be larger than the socket's buffer. A closed peer is an error
    /// (`EPIPE`), never a `SIGPIPE`.
    pub fn send(&self, value: &T) -> Result<()> {
        frame::send(self.fd.as_fd(), value, sys::send_nosignal, "send")
    }

    /// Receives one message, waiting for it; `None` once the peer end is closed (everywhere:
    /// dropped, or its process ended).
    pub fn recv(&self) -> Result<Option<T>> {
        frame::recv(self.fd.as_fd())
    }

    /// Whether a message (or the end) is waiting, waiting up to `timeout` for one (`None`:
    /// as long as it takes). Takes nothing: the next [`recv`](Self::recv) does.
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        frame::readable(self.fd.as_fd(), timeout)
    }
}

impl<T> Connection<T> {
    /// Takes the end the parent handed down under the number `fd` (listed in its
    /// `Process::inherit_fds`); each can be taken once. Else [`Error::NotInherited`].
    pub fn from_inherited(fd: RawFd) -> Result<Connection<T>> {
        Ok(Connection::from(take_inherited(fd)?))
    }
}

impl<T> From<OwnedFd> for Connection<T> {
    /// A connection on one end of a connected stream socket (no other child inherits it).
    fn from(fd: OwnedFd) -> Connection<T> {
        Connection { fd: Tracked::new(fd), _t: PhantomData }
    }
}

impl<T> AsFd for Connection<T> {
    /// The socket, to wait on with [`wait()`](crate::wait()) (ready when a message or the end
    /// is waiting).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl<T> AsRawFd for Connection<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn both_ends_send_and_receive_in_order() {
        let (a, b) = pipe::<(u64, String)>().unwrap();
        a.send(&(1, "one".into())).unwrap();
        a.send(&(2, "two".into())).unwrap();
        b.send(&(3, "three".into())).unwrap();
        assert_eq!(b.recv().unwrap(), Some((1, "one".into())));
        assert_eq!(b.recv().unwrap(), Some((2, "two".into())));
        assert_eq!(a.recv().unwrap(), Some((3, "three".into())));
    }

    #[test]
    fn recv_is_none_once_the_peer_is_closed() {
        let (a, b) = pipe::<u8>().unwrap();
        b.send(&9).unwrap();
        drop(b);
        assert_eq!(a.recv().unwrap(), Some(9), "what was sent before the close arrives");
        assert_eq!(a.recv().unwrap(), None);
        assert_eq!(a.recv().unwrap(), None);
    }

    #[test]
    fn send_to_a_closed_peer_is_epipe() {
        let (a, b) = pipe::<u8>().unwrap();
        drop(b);
        let err = a.send(&1).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE), "{err}");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn poll_waits_for_a_message_and_takes_none() {
        let (a, b) = pipe::<u32>().unwrap();
        assert!(!a.poll(Some(Duration::ZERO)).unwrap());
        let start = Instant::now();
        assert!(!a.poll(Some(Duration::from_millis(30))).unwrap());
        assert!(start.elapsed() >= Duration::from_millis(30));
        b.send(&5).unwrap();
        assert!(a.poll(Some(Duration::from_millis(30))).unwrap());
        assert!(a.poll(None).unwrap(), "polling takes nothing");
        assert_eq!(a.recv().unwrap(), Some(5));
        assert!(!a.poll(Some(Duration::ZERO)).unwrap());
        drop(b);
        assert!(a.poll(Some(Duration::ZERO)).unwrap(), "the end is something to read");
    }

    #[test]
    fn messages_larger_than_the_socket_buffer_go_both_ways() {
        let (a, b) = pipe::<Vec<u8>>().unwrap();
        let big: Vec<u8> = (0..5 << 20).map(|i: u32| (i % 251) as u8).collect();
        let echo = std::thread::spawn(move || {
            while let Some(msg) = b.recv().unwrap() {
                b.send(&msg).unwrap();
            }
        });
        a.send(&big).unwrap();
        assert_eq!(a.recv().unwrap().as_ref(), Some(&big));
        drop(a);
        echo.join().unwrap();
    }

    #[test]
    fn a_frame_cut_short_is_a_decode_error() {
        let (a, b) = pipe::<u64>().unwrap();
        // The length says eight bytes; three come, then the end.
        sys::write_all(b.as_fd(), &[8, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(b);
        assert_eq!(a.recv(), Err(Error::Decode { reason: "truncated" }));
    }

    #[test]
    fn a_descriptor_not_handed_down_cannot_be_claimed() {
        let (a, _b) = pipe::<u8>().unwrap();
        let fd = a.as_raw_fd();
        assert_eq!(Connection::<u8>::from_inherited(fd).err(), Some(Error::NotInherited { fd }));
    }

    #[test]
    fn a_non_blocking_end_still_sends_and_receives_whole_messages() {
        let (a, b) = pipe::<Vec<u8>>().unwrap();
        sys::set_nonblocking(a.as_fd(), true).unwrap();
        sys::set_nonblocking(b.as_fd(), true).unwrap();
        let big = vec![7u8; 3 << 20];
        let reader = std::thread::spawn(move || b.recv().unwrap());
        a.send(&big).unwrap();
        assert_eq!(reader.join().unwrap(), Some(big));
    }
}
