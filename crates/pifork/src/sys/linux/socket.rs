//! Unix socket pairs: the fork server's `SOCK_SEQPACKET` pair (credentials, descriptors passed
//! along) and the connections' `SOCK_STREAM` pairs.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)`.
pub fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd), Errno> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
}

/// `socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)`.
pub fn stream_pair() -> Result<(OwnedFd, OwnedFd), Errno> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
}

/// `send(2)` with `MSG_NOSIGNAL` (a closed peer is `EPIPE`, never `SIGPIPE`), retrying on
/// EINTR. Returns the bytes sent, which may be fewer than `bytes`.
pub fn send_nosignal(sock: BorrowedFd<'_>, bytes: &[u8]) -> Result<usize, Errno> {
    use nix::sys::socket::{MsgFlags, send};
    loop {
        match send(sock.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// `sendmsg(2)` of `parts` one after the other, with `MSG_NOSIGNAL`, retrying on EINTR
/// (a frame sent from where its pieces are, without first copying them together). Returns
/// the bytes sent, which may be fewer than all.
pub fn send_parts_nosignal(sock: BorrowedFd<'_>, parts: &[&[u8]]) -> Result<usize, Errno> {
    use nix::sys::socket::{MsgFlags, sendmsg};
    let iov: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &[], MsgFlags::MSG_NOSIGNAL, None) {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// `setsockopt(SO_PASSCRED)`: every message received carries the sender's credentials, as
/// the kernel knows them.
pub fn set_passcred(sock: BorrowedFd<'_>) -> Result<(), Errno> {
    nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::PassCred, &true)
}

/// `sendmsg(2)` of one message with descriptors attached (`SCM_RIGHTS`).
pub fn send_with_fds(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[RawFd]) -> Result<(), Errno> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let iov = [IoSlice::new(bytes)];
    let cmsgs = if fds.is_empty() { vec![] } else { vec![ControlMessage::ScmRights(fds)] };
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), None) {
            Err(Errno::EINTR) => continue,
            other => return other.map(drop),
        }
    }
}

/// One message received by [`recv_with_fds`].
#[derive(Debug)]
pub struct Received {
    /// Bytes of the message (0 at end-of-file).
    pub len: usize,
    /// Descriptors that came with it, now owned by us.
    pub fds: Vec<OwnedFd>,
    /// The sender's pid, when `SO_PASSCRED` is on.
    pub sender: Option<i32>,
}

/// `recvmsg(2)` of one message, taking ownership of attached descriptors (`MSG_CMSG_CLOEXEC`).
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Received, Errno> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixCredentials, recvmsg};
    let mut space = nix::cmsg_space!([RawFd; 64], UnixCredentials);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            other => other?,
        };
        let mut received = Received { len: msg.bytes, fds: Vec::new(), sender: None };
        for cmsg in msg.cmsgs()? {
            match cmsg {
                ControlMessageOwned::ScmRights(fds) => {
                    for fd in fds {
                        // SAFETY: SCM_RIGHTS installed these descriptors in this process just
                        // now; nothing else owns them.
                        received.fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                    }
                }
                ControlMessageOwned::ScmCredentials(creds) => received.sender = Some(creds.pid()),
                _ => {}
            }
        }
        return Ok(received);
    }
}
