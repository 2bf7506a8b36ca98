//! The pool's worker: a loop over one inherited socket, run by the library's own entry point
//! (registered with the builtins, so a spawned or forkserver worker finds it by name too).
//!
//! Protocol, length-prefixed frames both ways (integers little-endian). To the worker:
//! `[0][function][n: u64][sizes][arguments]`, a chunk of `n` tasks, their encoded arguments
//! end to end; or `[1]`, stop. From it: `[0]` ready; `[2][status][payload]` could not start
//! (status 0 other executable, 1 initializer failed); `[1][n: u32][length: u64][data][sizes]`,
//! the outcomes of the next `n` tasks in the order they were sent (across chunks), their
//! bytes end to end in `data` (a value, or a panic or failure message). `sizes` says where
//! each item is: `[0][size: u32]`, every one `size` bytes (and every outcome a value), or
//! `[1]` and per item its length (u32), for outcomes after its status (0 value, 1 panic,
//! 2 failure).
//!
//! A worker gathers outcomes and writes them when it has nothing more to read, when they
//! pass [`REPLY_BYTES`], when the first of them has waited [`FLUSH_AFTER`] (so a long task is
//! reported as it ends, and a worker's death loses at most that much of short ones), or after
//! every task when the parent asks for it (task timeouts need to know which task runs).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::func::{self, EntryRunner, FuncRef};
pub(crate) use super::items::{Items, STATUS_FAILED, STATUS_PANIC, STATUS_VALUE};
use crate::message::Message;
use crate::sys;

/// The name of the worker's entry point.
pub(crate) const ENTRY: &str = "pifork.pool.worker";

/// Message tags from the worker.
pub(crate) const TAG_READY: u8 = 0;
/// Outcomes of tasks.
pub(crate) const TAG_RESULTS: u8 = 1;
/// The worker cannot start.
pub(crate) const TAG_FAILED: u8 = 2;

/// Executable identity: device, inode, size, mtime.
pub(crate) type ExeId = (u64, u64, u64, i64);

/// What a worker is started with.
pub(crate) type WorkerArgs = (i32, ExeId, Option<(FuncRef, Vec<u8>)>, u64, bool);

/// A request's tag: a chunk of tasks.
pub(crate) const REQ_CHUNK: u8 = 0;
/// A request's tag: stop.
pub(crate) const REQ_STOP: u8 = 1;

/// Outcomes held longer than this are written out.
pub(crate) const FLUSH_AFTER: Duration = Duration::from_micros(200);

/// Outcomes past this many bytes are written out.
pub(crate) const REPLY_BYTES: usize = 1 << 18;

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

/// Takes a u64 from the front of `input`.
pub(crate) fn take_u64(input: &mut &[u8]) -> Option<u64> {
    let (head, tail) = input.split_first_chunk::<8>()?;
    *input = tail;
    Some(u64::from_le_bytes(*head))
}

/// Takes a byte string (a u64 length, the bytes, as [`Message`] encodes a `Vec<u8>`) from the front of `input`, borrowed.
pub(crate) fn take_bytes<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(take_u64(input)?).ok()?;
    if input.len() < len {
        return None;
    }
    let (head, tail) = input.split_at(len);
    *input = tail;
    Some(head)
}

/// The next whole frame's body in `buf` from `*pos`, advancing it.
pub(crate) fn next_frame<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let head = buf.get(*pos..*pos + 4)?;
    let len = u32::from_le_bytes(head.try_into().ok()?) as usize;
    let body = buf.get(*pos + 4..*pos + 4 + len)?;
    *pos += 4 + len;
    Some(body)
}

/// Bytes read from a socket, not yet all taken: frames are taken from the front without
/// moving the rest, which moves down only when room runs out (not after every read).
#[derive(Default)]
pub(crate) struct InBuf {
    buf: Vec<u8>,
    taken: usize,
}

impl InBuf {
    /// One read of what `fd` has, room made first: what [`sys::read_append`] gives.
    pub fn read(&mut self, fd: BorrowedFd<'_>) -> Result<usize, Errno> {
        if self.buf.capacity() - self.buf.len() < 1 << 16 {
            self.buf.drain(..self.taken);
            self.taken = 0;
            if self.buf.capacity() - self.buf.len() < 1 << 16 {
                self.buf.reserve(1 << 18);
            }
        }
        sys::read_append(fd, &mut self.buf, 1 << 18)
    }

    /// The bytes not taken yet.
    pub fn rest(&self) -> &[u8] {
        &self.buf[self.taken..]
    }

    /// Takes `n` more bytes from the front.
    pub fn take(&mut self, n: usize) {
        self.taken += n;
        if self.taken >= self.buf.len() {
            self.buf.clear();
            self.taken = 0;
        }
    }
}

/// Writes all of `buf` to the blocking socket; false if the parent is gone.
fn write_all(fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> bool {
    let mut rest = &buf[..];
    while !rest.is_empty() {
        match sys::send_nosignal(fd, rest) {
            Ok(0) => return false,
            Ok(n) => rest = &rest[n..],
            Err(Errno::EAGAIN) => {
                let _ = crate::wait::wait(&[], Some(Duration::from_millis(1)));
            }
            Err(_) => return false,
        }
    }
    buf.clear();
    true
}

/// Appends the stop request to `out`.
pub(crate) fn push_stop(out: &mut Vec<u8>) {
    let start = begin_frame(out);
    out.push(REQ_STOP);
    end_frame(out, start);
}

/// Appends `[0][size]`: every item of `size` bytes.
pub(crate) fn push_same_size(out: &mut Vec<u8>, size: usize) {
    out.push(0);
    out.extend_from_slice(&(size as u32).to_le_bytes());
}

/// A frame from the worker, borrowed.
pub(crate) enum Reply<'a> {
    /// Started and ready.
    Ready,
    /// Could not start: a status and a message.
    Failed(u8, &'a [u8]),
    /// Outcomes of the next tasks.
    Results(Items<'a>),
}

/// Reads one frame from the worker.
pub(crate) fn parse_reply(body: &[u8]) -> Option<Reply<'_>> {
    let (&tag, mut rest) = body.split_first()?;
    match tag {
        TAG_READY => rest.is_empty().then_some(Reply::Ready),
        TAG_FAILED => {
            let (&status, mut rest) = rest.split_first()?;
            let payload = take_bytes(&mut rest)?;
            rest.is_empty().then_some(Reply::Failed(status, payload))
        }
        TAG_RESULTS => {
            let (n, tail) = rest.split_first_chunk::<4>()?;
            rest = tail;
            let len = usize::try_from(take_u64(&mut rest)?).ok()?;
            if rest.len() < len {
                return None;
            }
            let (data, sizes) = rest.split_at(len);
            Items::parse(u32::from_le_bytes(*n) as usize, data, sizes, true).map(Reply::Results)
        }
        _ => None,
    }
}

/// A request to the worker, borrowed.
enum Request<'a> {
    Chunk(FuncRef, Items<'a>),
    Stop,
}

fn parse_request(body: &[u8]) -> Option<Request<'_>> {
    let (&tag, mut rest) = body.split_first()?;
    if tag == REQ_STOP {
        return Some(Request::Stop);
    }
    let f = FuncRef::decode(&mut rest).ok()?;
    let n = usize::try_from(take_u64(&mut rest)?).ok()?;
    let sizes_len = match rest.first()? {
        0 => 5,
        _ => n.checked_mul(4)?.checked_add(1)?,
    };
    if rest.len() < sizes_len {
        return None;
    }
    let (sizes, data) = rest.split_at(sizes_len);
    Some(Request::Chunk(f, Items::parse(n, data, sizes, false)?))
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
    let mut ends = Vec::new();
    let mut args = Items::one(args);
    match catch_unwind(AssertUnwindSafe(|| func::call(f, &mut args, &mut out, &mut ends, entry))) {
        Ok(Ok(())) => (STATUS_VALUE, out),
        Ok(Err(reason)) => (STATUS_FAILED, reason.into_bytes()),
        Err(payload) => (STATUS_PANIC, panic_text(payload).into_bytes()),
    }
}

/// Outcomes gathered into one frame (`[1][n][length][data][sizes]`) until written.
struct Outgoing {
    out: Vec<u8>,
    /// Where the open frame starts.
    frame: Option<usize>,
    n: u32,
    /// While every outcome is a value of one size: that size.
    same: Option<u32>,
    /// Each outcome's status and length, once they differ.
    each: Vec<(u8, u32)>,
    /// Where the values of a run end in `out`.
    ends: func::Ends,
}

/// The frame's head: its length, tag, count and data length.
const HEAD: usize = 4 + 1 + 4 + 8;

impl Outgoing {
    /// Runs the tasks, their outcomes going straight into the frame: the function encodes
    /// its values there.
    fn run(&mut self, f: &FuncRef, tasks: func::Args<'_, '_>, entry: EntryRunner<'_>) {
        if self.frame.is_none() {
            let start = begin_frame(&mut self.out);
            self.out.push(TAG_RESULTS);
            self.out.extend_from_slice(&[0; 12]);
            self.frame = Some(start);
            self.n = 0;
            self.same = None;
            self.each.clear();
        }
        let mut ends = std::mem::take(&mut self.ends);
        loop {
            let mut prev = self.out.len();
            ends.clear();
            let out = &mut self.out;
            let result =
                catch_unwind(AssertUnwindSafe(|| func::call(f, tasks, out, &mut ends, entry)));
            for &(end, count) in &ends {
                self.note(STATUS_VALUE, ((end - prev) / count as usize) as u32, count);
                prev = end;
            }
            // One task failed or panicked (it is taken): the rest go on after it.
            let status = match result {
                Ok(Ok(())) => break,
                Ok(Err(reason)) => {
                    self.out.truncate(prev);
                    self.out.extend_from_slice(reason.as_bytes());
                    STATUS_FAILED
                }
                Err(payload) => {
                    self.out.truncate(prev);
                    self.out.extend_from_slice(panic_text(payload).as_bytes());
                    STATUS_PANIC
                }
            };
            self.note(status, (self.out.len() - prev) as u32, 1);
        }
        self.ends = ends;
    }

    /// `count` more outcomes in the frame, of one status and length.
    fn note(&mut self, status: u8, len: u32, count: u32) {
        if self.each.is_empty() && status == STATUS_VALUE {
            match self.same {
                None if self.n == 0 => {
                    self.same = Some(len);
                    self.n += count;
                    return;
                }
                Some(s) if s == len => {
                    self.n += count;
                    return;
                }
                _ => {}
            }
        }
        // Outcomes differ: each has its own size from now on.
        if let Some(s) = self.same.take() {
            self.each.resize(self.n as usize, (STATUS_VALUE, s));
        }
        self.each.extend(std::iter::repeat_n((status, len), count as usize));
        self.n += count;
    }

    /// Outcomes held, not yet written.
    fn held(&self) -> u32 {
        if self.frame.is_some() { self.n } else { 0 }
    }

    /// Ends the open frame.
    fn close(&mut self) {
        let Some(start) = self.frame.take() else { return };
        let out = &mut self.out;
        let len = (out.len() - start - HEAD) as u64;
        out[start + 5..start + 9].copy_from_slice(&self.n.to_le_bytes());
        out[start + 9..start + HEAD].copy_from_slice(&len.to_le_bytes());
        match self.same {
            Some(size) if self.each.is_empty() => push_same_size(out, size as usize),
            _ => {
                out.push(1);
                for &(status, len) in &self.each {
                    out.push(status);
                    out.extend_from_slice(&len.to_le_bytes());
                }
            }
        }
        end_frame(out, start);
    }

    /// Writes all it holds; false if the parent is gone.
    fn flush(&mut self, sock: BorrowedFd<'_>) -> bool {
        self.close();
        write_all(sock, &mut self.out)
    }
}

/// When to look at the clock: after every task while tasks are slow, after runs of more of
/// them while they are fast (reading it would cost more than the tasks).
struct Clock {
    every: usize,
    last: Instant,
}

impl Clock {
    /// After a run of tasks: the time now; the next run is longer if this one was short.
    fn tick(&mut self) -> Instant {
        let t = Instant::now();
        if t.saturating_duration_since(self.last) < FLUSH_AFTER / 8 {
            self.every = (self.every * 2).min(1 << 12);
        } else {
            self.every = (self.every / 2).max(1);
        }
        self.last = t;
        t
    }
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
        push_frame(&mut out, &(TAG_FAILED, 0u8, Vec::<u8>::new()));
        write_all(sock, &mut out);
        return;
    }
    if let Some((f, a)) = init {
        let (status, payload) = run_one(&f, &a, entry);
        if status != STATUS_VALUE {
            push_frame(&mut out, &(TAG_FAILED, 1u8, payload));
            write_all(sock, &mut out);
            return;
        }
    }
    push_frame(&mut out, &TAG_READY);
    if !write_all(sock, &mut out) {
        return;
    }
    let mut outgoing =
        Outgoing { out, frame: None, n: 0, same: None, each: Vec::new(), ends: Vec::new() };
    let mut inbuf = InBuf::default();
    let mut done = 0u64;
    let mut clock = Clock { every: 1, last: Instant::now() };
    let mut held_since = clock.last;
    loop {
        let mut pos = 0;
        while let Some(body) = next_frame(inbuf.rest(), &mut pos) {
            let Some(request) = parse_request(body) else {
                return;
            };
            let Request::Chunk(f, mut tasks) = request else {
                outgoing.flush(sock);
                return;
            };
            while tasks.len() > 0 {
                if outgoing.held() == 0 {
                    held_since = clock.last;
                }
                let k = if flush_each { 1 } else { clock.every };
                tasks.allow(k);
                outgoing.run(&f, &mut tasks, entry);
                let t = clock.tick();
                let due = flush_each
                    || outgoing.out.len() > REPLY_BYTES
                    || t.saturating_duration_since(held_since) >= FLUSH_AFTER;
                if due && !outgoing.flush(sock) {
                    return;
                }
            }
            done += 1;
            if max_tasks > 0 && done >= max_tasks {
                outgoing.flush(sock);
                return;
            }
        }
        inbuf.take(pos);
        if !outgoing.flush(sock) {
            return;
        }
        match inbuf.read(sock) {
            Ok(0) => return,
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(_) => return,
        }
        clock.last = Instant::now();
    }
}
