//! The pool's worker: a loop over one inherited socket, run by the library's own entry point
//! (registered with the builtins, so a spawned or forkserver worker finds it by name too).
//!
//! Protocol, length-prefixed frames both ways. To the worker: `(0, function, [(id, args)])`, a
//! chunk of tasks, or `(1, ..)`, stop. From it: `(tag, id, status, payload)` — tag 0 ready,
//! 1 one task's result (status 0 value, 1 panic message, 2 failure message), 2 could not start
//! (status 0 other executable, 1 initializer failed). Results of a chunk go out one per task;
//! they are written when the worker has nothing more to read (or after every task when the
//! parent asks for it: task timeouts need to know which task runs).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};

use nix::errno::Errno;

use super::func::{self, EntryRunner, FuncRef};
use crate::message::Message;
use crate::sys;

/// The name of the worker's entry point.
pub(crate) const ENTRY: &str = "pifork.pool.worker";

/// Message tags from the worker.
pub(crate) const TAG_READY: u8 = 0;
/// A task's result.
pub(crate) const TAG_RESULT: u8 = 1;
/// The worker cannot start.
pub(crate) const TAG_FAILED: u8 = 2;

/// Statuses of a result.
pub(crate) const STATUS_VALUE: u8 = 0;
/// The task panicked.
pub(crate) const STATUS_PANIC: u8 = 1;
/// The task could not run.
pub(crate) const STATUS_FAILED: u8 = 2;

/// Executable identity: device, inode, size, mtime.
pub(crate) type ExeId = (u64, u64, u64, i64);

/// What a worker is started with.
pub(crate) type WorkerArgs = (i32, ExeId, Option<(FuncRef, Vec<u8>)>, u64, bool);

/// One frame to the worker.
pub(crate) type Request = (u8, FuncRef, Vec<(u64, Vec<u8>)>);

/// Appends `value` as one frame to `out`.
pub(crate) fn push_frame<M: Message>(out: &mut Vec<u8>, value: &M) {
    let start = begin_frame(out);
    value.encode(out);
    end_frame(out, start);
}

/// Starts a frame in `out` (its length comes at [`end_frame`]); where it starts.
pub(crate) fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    start
}

/// Ends the frame begun at `start`: writes its length.
pub(crate) fn end_frame(out: &mut [u8], start: usize) {
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Appends a byte string as [`Message`] encodes a `Vec<u8>` (a u64 length, the bytes), in
/// one copy.
pub(crate) fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Takes a u64 from the front of `input`.
pub(crate) fn take_u64(input: &mut &[u8]) -> Option<u64> {
    let (head, tail) = input.split_first_chunk::<8>()?;
    *input = tail;
    Some(u64::from_le_bytes(*head))
}

/// Takes a byte string (as [`push_bytes`] wrote it) from the front of `input`, borrowed.
pub(crate) fn take_bytes<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(take_u64(input)?).ok()?;
    if input.len() < len {
        return None;
    }
    let (head, tail) = input.split_at(len);
    *input = tail;
    Some(head)
}

/// One reply's fields, the payload borrowed from the frame (a frame is `(u8, u64, u8, Vec<u8>)` as [`Message`]
/// encodes it).
pub(crate) fn parse_reply(body: &[u8]) -> Option<(u8, u64, u8, &[u8])> {
    let (&tag, mut rest) = body.split_first()?;
    let id = take_u64(&mut rest)?;
    let (&status, mut rest) = rest.split_first()?;
    let payload = take_bytes(&mut rest)?;
    rest.is_empty().then_some((tag, id, status, payload))
}

/// A request's head: its tag, function, number of tasks and the encoded tasks, borrowed
/// (the wire form of [`Request`]).
fn parse_request(body: &[u8]) -> Option<(u8, FuncRef, u64, &[u8])> {
    let (&tag, mut rest) = body.split_first()?;
    let f = FuncRef::decode(&mut rest).ok()?;
    let n = take_u64(&mut rest)?;
    Some((tag, f, n, rest))
}

/// The next whole frame's body in `buf` from `*pos`, advancing it.
pub(crate) fn next_frame<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let head = buf.get(*pos..*pos + 4)?;
    let len = u32::from_le_bytes(head.try_into().ok()?) as usize;
    let body = buf.get(*pos + 4..*pos + 4 + len)?;
    *pos += 4 + len;
    Some(body)
}

/// Writes all of `buf` to the blocking socket; false if the parent is gone.
fn write_all(fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> bool {
    let mut rest = &buf[..];
    while !rest.is_empty() {
        match sys::send_nosignal(fd, rest) {
            Ok(0) => return false,
            Ok(n) => rest = &rest[n..],
            Err(Errno::EAGAIN) => {
                let _ = crate::wait::wait(&[], Some(std::time::Duration::from_millis(1)));
            }
            Err(_) => return false,
        }
    }
    buf.clear();
    true
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Runs one function, catching its panic: (status, payload).
fn run_one(f: &FuncRef, args: &[u8], entry: EntryRunner<'_>) -> (u8, Vec<u8>) {
    let mut out = Vec::new();
    match catch_unwind(AssertUnwindSafe(|| func::call(f, args, &mut out, entry))) {
        Ok(Ok(())) => (STATUS_VALUE, out),
        Ok(Err(reason)) => (STATUS_FAILED, reason.into_bytes()),
        Err(payload) => (STATUS_PANIC, panic_text(payload).into_bytes()),
    }
}

/// Runs one task, appending its result frame (`(TAG_RESULT, id, status, payload)`, in
/// [`parse_reply`]'s form) to `out`: the function encodes its value straight into the frame.
fn run_into(out: &mut Vec<u8>, id: u64, f: &FuncRef, args: &[u8], entry: EntryRunner<'_>) {
    let start = begin_frame(out);
    out.push(TAG_RESULT);
    out.extend_from_slice(&id.to_le_bytes());
    let status_at = out.len();
    out.push(STATUS_VALUE);
    let len_at = out.len();
    out.extend_from_slice(&[0; 8]);
    let body = out.len();
    let status = match catch_unwind(AssertUnwindSafe(|| func::call(f, args, out, entry))) {
        Ok(Ok(())) => STATUS_VALUE,
        Ok(Err(reason)) => {
            out.truncate(body);
            out.extend_from_slice(reason.as_bytes());
            STATUS_FAILED
        }
        Err(payload) => {
            out.truncate(body);
            out.extend_from_slice(panic_text(payload).as_bytes());
            STATUS_PANIC
        }
    };
    out[status_at] = status;
    let len = (out.len() - body) as u64;
    out[len_at..body].copy_from_slice(&len.to_le_bytes());
    end_frame(out, start);
}

/// The worker's loop (the body of its entry point); `entry` runs registered entries by name.
pub(crate) fn run(args: WorkerArgs, entry: EntryRunner<'_>) {
    let (fd, exe, init, max_tasks, flush_each) = args;
    let sock: OwnedFd = match crate::fdtable::take_inherited(fd) {
        Ok(sock) => sock,
        Err(e) => panic!("pool worker: {e}"),
    };
    let sock = sock.as_fd();
    let _ = sys::set_nonblocking(sock, false);
    // Task panics are results, reported to the parent: not printed here (as CPython's pool).
    std::panic::set_hook(Box::new(|_| {}));
    let mut out = Vec::new();
    if sys::executable_identity().ok() != Some(exe) {
        push_frame(&mut out, &(TAG_FAILED, 0u64, 0u8, Vec::<u8>::new()));
        write_all(sock, &mut out);
        return;
    }
    if let Some((f, a)) = init {
        let (status, payload) = run_one(&f, &a, entry);
        if status != STATUS_VALUE {
            push_frame(&mut out, &(TAG_FAILED, 0u64, 1u8, payload));
            write_all(sock, &mut out);
            return;
        }
    }
    push_frame(&mut out, &(TAG_READY, 0u64, 0u8, Vec::<u8>::new()));
    if !write_all(sock, &mut out) {
        return;
    }
    let mut inbuf: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut done = 0u64;
    loop {
        let mut pos = 0;
        while let Some(body) = next_frame(&inbuf, &mut pos) {
            let Some((tag, f, n, mut tasks)) = parse_request(body) else {
                return;
            };
            if tag != 0 {
                write_all(sock, &mut out);
                return;
            }
            for _ in 0..n {
                let (Some(id), Some(a)) = (take_u64(&mut tasks), take_bytes(&mut tasks)) else {
                    write_all(sock, &mut out);
                    return;
                };
                run_into(&mut out, id, &f, a, entry);
                if (flush_each || out.len() > 1 << 16) && !write_all(sock, &mut out) {
                    return;
                }
            }
            done += 1;
            if max_tasks > 0 && done >= max_tasks {
                write_all(sock, &mut out);
                return;
            }
        }
        inbuf.drain(..pos);
        if !write_all(sock, &mut out) {
            return;
        }
        if inbuf.capacity() - inbuf.len() < 4096 {
            inbuf.reserve(1 << 16);
        }
        match sys::read_append(sock, &mut inbuf, 1 << 16) {
            Ok(0) => return,
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}
