//! The shared ring under every queue: length-prefixed frames in one sealed memfd, a robust
//! mutex, and futex sequence words for the wake-ups. It moves bytes; the typed queues encode.
//!
//! Segment layout, after the object header (at [`PAYLOAD`], offsets relative to it):
//!
//! | offset | what |
//! |---|---|
//! | 0..64 | the putters' mutex cell (`RawMutex`: lock word, owner word) |
//! | 64..128 | the getters' mutex cell |
//! | 128 | tail word: items ever put (high 32 bits) and the ring offset of the next frame |
//! | 192 | head word: items ever got (high 32 bits) and the ring offset of the oldest frame |
//! | 256, 260 | maxsize in items (0: none); locks recovered from dead holders |
//! | 320, 324 | "not empty": sequence, getters waiting |
//! | 384, 388, 392 | "not full": sequence, putters waiting, the largest frame one waits for |
//! | 448, 452, 456 | "all tasks done": sequence, joiners waiting; tasks done |
//! | 512.. | the ring (its size is the header's number) |
//!
//! Each word that one side writes often has a cache line of its own.
//!
//! A frame is an 8-byte header (the payload's length) and the payload, padded to 8 bytes;
//! it may wrap around the ring's end. Putters serialise on one mutex, getters on the other
//! (a put and a get run at once): a putter writes only the free bytes, from the tail to the
//! head, a getter reads only the queued ones, from the head to the tail. The tail word changes
//! only under the putters' mutex, the head word only under the getters', each by one release
//! store: a put commits by storing the tail word, a get by storing the head word. A holder killed before that store leaves nothing visible (a half-written frame
//! lies beyond the tail, a half-read one is still at the head); killed after it, the operation
//! is complete. So a recovered mutex guards a consistent ring, which recovery checks by walking
//! the frames from head to tail.

use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use super::errors::{GetError, PutError, TaskDoneError};
use crate::shm::{Kind, PAYLOAD, Segment, ShmError};
use crate::sync::mutex::{Acquired, MUTEX_SIZE, RawMutex};
use crate::sync::owner::me;
use crate::sys;

const PUTTERS: usize = PAYLOAD;
const GETTERS: usize = PAYLOAD + MUTEX_SIZE;
const TAIL: usize = PAYLOAD + 128;
const HEAD: usize = PAYLOAD + 192;
const MAXSIZE: usize = PAYLOAD + 256;
const RECOVERED: usize = PAYLOAD + 260;
const NOT_EMPTY: usize = PAYLOAD + 320;
const NOT_FULL: usize = PAYLOAD + 384;
const WANT: usize = PAYLOAD + 392;
const ALL_DONE: usize = PAYLOAD + 448;
const DONE: usize = PAYLOAD + 456;
const RING: usize = PAYLOAD + 512;

/// A frame's header: the payload length, padded to 8 bytes.
const HEADER: usize = 8;

/// The smallest ring: one frame of up to 56 bytes.
pub(crate) const MIN_RING: usize = 64;

/// The largest ring: offsets are 32-bit.
pub(crate) const MAX_RING: usize = 1 << 31;

/// A sleeper looks at the queue again at least this often, even without a wake-up (a waker
/// killed between its commit and its wake cannot strand it).
const SLICE: Duration = Duration::from_millis(100);

/// Frames up to this size are read onto the stack.
const SMALL: usize = 256;

/// How long a getter (putter) looks at an empty (full) ring before it sleeps: a put (get) on
/// another CPU is usually that close, and a sleeper costs its waker a system call.
const SPIN_FOR: Duration = Duration::from_micros(50);

/// The shared ring of one queue.
#[derive(Debug)]
pub(crate) struct Ring {
    seg: Segment,
    cap: usize,
}

/// The ring's state as its two index words tell it.
#[derive(Clone, Copy)]
struct State {
    puts: u32,
    tail: usize,
    gets: u32,
    head: usize,
}

impl State {
    fn items(self) -> u32 {
        self.puts.wrapping_sub(self.gets)
    }
}

fn pack(count: u32, offset: usize) -> u64 {
    u64::from(count) << 32 | offset as u64
}

fn unpack(word: u64) -> (u32, usize) {
    ((word >> 32) as u32, (word & 0xffff_ffff) as usize)
}

fn frame_len(payload: usize) -> usize {
    HEADER + payload.div_ceil(8) * 8
}

impl Ring {
    /// A new, empty ring of `bytes` (a multiple of 8 in `MIN_RING..=MAX_RING`) holding at
    /// most `maxsize` items (0: no limit but the bytes).
    pub(crate) fn new(flavour: u8, maxsize: u32, bytes: usize) -> Result<Ring, ShmError> {
        let seg = Segment::object(Kind::Queue(flavour), bytes as u64, RING - PAYLOAD + bytes)?;
        seg.map().atomic_u32(MAXSIZE).store(maxsize, Ordering::Release);
        Ok(Ring { seg, cap: bytes })
    }

    /// The ring of an inherited descriptor.
    pub(crate) fn claim(fd: RawFd, flavour: u8) -> Result<Ring, ShmError> {
        let (seg, bytes) = Segment::claim_object(fd, Kind::Queue(flavour))?;
        let cap = usize::try_from(bytes).unwrap_or(usize::MAX);
        let fits = seg.map().len().checked_sub(RING) == Some(cap);
        if !fits || !(MIN_RING..=MAX_RING).contains(&cap) || !cap.is_multiple_of(8) {
            return Err(ShmError::InvalidSize { size: bytes });
        }
        Ok(Ring { seg, cap })
    }

    /// The ring's size in bytes.
    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    /// The largest payload one frame can carry.
    pub(crate) fn max_payload(&self) -> usize {
        self.cap - HEADER
    }

    /// The most items queued at once (0: no limit but the bytes).
    pub(crate) fn maxsize(&self) -> u32 {
        self.word(MAXSIZE).load(Ordering::Relaxed)
    }

    fn word(&self, at: usize) -> &AtomicU32 {
        self.seg.map().atomic_u32(at)
    }

    fn wide(&self, at: usize) -> &AtomicU64 {
        self.seg.map().atomic_u64(at)
    }

    /// The mutex cell at `at` ([`PUTTERS`] or [`GETTERS`]).
    fn mutex(&self, at: usize) -> RawMutex<'_> {
        RawMutex::new(self.word(at), self.wide(at + 8))
    }

    fn state(&self) -> State {
        // The head first: a tail read after it is at least as new, so `items` never wraps.
        let (gets, head) = unpack(self.wide(HEAD).load(Ordering::Acquire));
        let (puts, tail) = unpack(self.wide(TAIL).load(Ordering::Acquire));
        State { puts, tail, gets, head }
    }

    /// Items queued now (a hint: other processes change it at any moment).
    pub(crate) fn items(&self) -> u32 {
        self.state().items()
    }

    /// Bytes the frames queued now take.
    fn used(&self, s: State) -> usize {
        if s.items() == 0 {
            return 0;
        }
        match (s.tail + self.cap - s.head) % self.cap {
            0 => self.cap,
            n => n,
        }
    }

    /// Whether a frame of `frame` bytes fits now.
    fn has_room(&self, s: State, frame: usize) -> bool {
        let maxsize = self.maxsize();
        (maxsize == 0 || s.items() < maxsize) && self.cap - self.used(s) >= frame
    }

    /// Whether the queue is full for an item of the smallest kind.
    pub(crate) fn full(&self) -> bool {
        !self.has_room(self.state(), HEADER)
    }

    /// Locks recovered from a holder that died holding them, since the queue was made.
    pub(crate) fn recoveries(&self) -> u32 {
        self.word(RECOVERED).load(Ordering::Relaxed)
    }

    /// Takes the mutex at `at` (held only for a copy, never across a wait: no deadline
    /// needed); on taking it from a dead holder, counts it and checks the ring (`Err`: broken).
    fn lock(&self, at: usize) -> Result<Acquired, ()> {
        let how = self.mutex(at).lock(&me(), None).expect("no deadline");
        if how == Acquired::Recovered {
            self.word(RECOVERED).fetch_add(1, Ordering::Relaxed);
            if !self.consistent() {
                self.mutex(at).unlock();
                return Err(());
            }
        }
        Ok(how)
    }

    fn unlock(&self, at: usize) {
        self.mutex(at).unlock();
    }

    /// Walks the committed frames from head to tail: each header in bounds, and the frames
    /// end exactly at the tail. Under either mutex the frames between the two indices read
    /// here do not change (only putters write, only free bytes).
    fn consistent(&self) -> bool {
        let s = self.state();
        if s.head >= self.cap
            || s.tail >= self.cap
            || !s.head.is_multiple_of(8)
            || !s.tail.is_multiple_of(8)
        {
            return false;
        }
        let (mut at, mut total) = (s.head, 0usize);
        for _ in 0..s.items() {
            let len = self.seg.map().atomic_u64(RING + at).load(Ordering::Relaxed) as usize;
            if len > self.max_payload() {
                return false;
            }
            let frame = frame_len(len);
            total += frame;
            if total > self.cap {
                return false;
            }
            at = (at + frame) % self.cap;
        }
        at == s.tail && total == self.used(s)
    }

    /// Copies `data` into the free bytes at `at`, wrapping at the end (under the putters'
    /// mutex: no other process touches free bytes meanwhile).
    fn copy_in(&self, at: usize, data: &[u8]) {
        let first = data.len().min(self.cap - at);
        self.seg.map().write_owned(RING + at, &data[..first]);
        self.seg.map().write_owned(RING, &data[first..]);
    }

    /// Appends the `len` frame bytes at `at` to `out`, wrapping at the end (under the getters'
    /// mutex: no process writes committed frames).
    fn copy_out(&self, at: usize, len: usize, out: &mut Vec<u8>) {
        let first = len.min(self.cap - at);
        self.seg.map().extend_owned(RING + at, first, out);
        self.seg.map().extend_owned(RING, len - first, out);
    }

    /// Puts one frame, waiting for room until `deadline` (`None`: as long as it takes;
    /// `Some(now)`: not at all); `Recovered` if it took the lock over from a dead holder on
    /// the way.
    pub(crate) fn put(
        &self,
        payload: &[u8],
        deadline: Option<Instant>,
    ) -> Result<Acquired, PutError> {
        if payload.len() > self.max_payload() {
            return Err(PutError::TooLarge { size: payload.len(), max: self.max_payload() });
        }
        let frame = frame_len(payload.len());
        let mut how = Acquired::Normal;
        loop {
            if self.lock(PUTTERS).map_err(|()| PutError::Corrupt)? == Acquired::Recovered {
                how = Acquired::Recovered;
            }
            let s = self.state();
            if self.has_room(s, frame) {
                let map = self.seg.map();
                map.atomic_u64(RING + s.tail).store(payload.len() as u64, Ordering::Relaxed);
                self.copy_in((s.tail + HEADER) % self.cap, payload);
                // The commit: one store makes the whole frame visible.
                let tail = (s.tail + frame) % self.cap;
                self.wide(TAIL).store(pack(s.puts.wrapping_add(1), tail), Ordering::Release);
                self.unlock(PUTTERS);
                self.signal(NOT_EMPTY, 1);
                return Ok(how);
            }
            self.unlock(PUTTERS);
            // Getters wake putters once this much is free (see `room_freed`).
            self.word(WANT).fetch_max(frame as u32, Ordering::Relaxed);
            if !self.wait(NOT_FULL, deadline, |s| self.has_room(s, frame)) {
                return Err(PutError::Full);
            }
        }
    }

    /// Takes the oldest frame, waiting for one until `deadline`, and hands its bytes to
    /// `take` (after the frame left the ring and the lock was released); `Recovered` if it
    /// took the lock over from a dead holder on the way.
    pub(crate) fn get<R>(
        &self,
        deadline: Option<Instant>,
        take: impl FnOnce(&[u8]) -> R,
    ) -> Result<(R, Acquired), GetError> {
        let mut how = Acquired::Normal;
        loop {
            if self.lock(GETTERS).map_err(|()| GetError::Corrupt)? == Acquired::Recovered {
                how = Acquired::Recovered;
            }
            let s = self.state();
            if s.items() > 0 {
                let map = self.seg.map();
                let len = map.atomic_u64(RING + s.head).load(Ordering::Relaxed) as usize;
                if len > self.max_payload() {
                    self.unlock(GETTERS);
                    return Err(GetError::Corrupt);
                }
                // Small frames are copied to the stack, larger ones to the heap.
                let mut small = [0u8; SMALL];
                let mut large = Vec::new();
                let at = (s.head + HEADER) % self.cap;
                let buf = if len <= SMALL {
                    let first = len.min(self.cap - at);
                    map.read_owned(RING + at, &mut small[..first]);
                    map.read_owned(RING, &mut small[first..len]);
                    &small[..len]
                } else {
                    self.copy_out(at, len, &mut large);
                    &large[..]
                };
                // The commit: one store takes the frame out.
                let head = (s.head + frame_len(len)) % self.cap;
                self.wide(HEAD).store(pack(s.gets.wrapping_add(1), head), Ordering::Release);
                self.unlock(GETTERS);
                if self.room_freed(s, frame_len(len)) {
                    self.signal(NOT_FULL, u32::MAX);
                }
                return Ok((take(buf), how));
            }
            self.unlock(GETTERS);
            if !self.wait(NOT_EMPTY, deadline, |s| s.items() > 0) {
                return Err(GetError::Empty);
            }
        }
    }

    /// Whether a get that freed `frame` bytes from state `s` should wake sleeping putters:
    /// when it freed an item slot of a queue at its `maxsize`, or when the free bytes crossed
    /// a threshold: what the largest sleeper wants, or a quarter of the ring (at most 4 MiB)
    /// if more. So a putter that waits on a full ring is woken once per batch of gets, not
    /// per get; a putter left asleep by a missed crossing looks again after its slice.
    fn room_freed(&self, s: State, frame: usize) -> bool {
        let maxsize = self.maxsize();
        if maxsize != 0 && s.items() >= maxsize {
            return true;
        }
        let want = self.word(WANT).load(Ordering::Relaxed) as usize;
        let threshold = want.max((self.cap / 4).min(4 << 20));
        let before = self.cap - self.used(s);
        before < threshold && before + frame >= threshold
    }

    /// Wakes up to `n` sleepers on the sequence at `at`, if any sleep (after a commit).
    fn signal(&self, at: usize, n: u32) {
        // Orders the commit before the look at the sleepers; a sleeper orders its count
        // before its look at the ring: either it sees the commit, or this sees it counted.
        fence(Ordering::SeqCst);
        if self.word(at + 4).load(Ordering::Relaxed) > 0 {
            if at == NOT_FULL {
                self.word(WANT).store(0, Ordering::Relaxed);
            }
            self.word(at).fetch_add(1, Ordering::SeqCst);
            let _ = sys::futex_wake(self.word(at), n);
        }
    }

    /// Waits until `ready` holds for the ring (or a wake-up on the sequence at `at`, or a
    /// slice passes: the caller looks again); false once `deadline` passed.
    fn wait(&self, at: usize, deadline: Option<Instant>, ready: impl Fn(State) -> bool) -> bool {
        let spin_start = Instant::now();
        let mut spin = 0u32;
        while spin < 8 || spin_start.elapsed() < SPIN_FOR {
            if ready(self.state()) {
                return true;
            }
            for _ in 0..1u32 << spin.min(5) {
                std::hint::spin_loop();
            }
            spin += 1;
        }
        let slice = match deadline {
            None => SLICE,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left.min(SLICE),
                _ => return false,
            },
        };
        let (seq, sleepers) = (self.word(at), self.word(at + 4));
        sleepers.fetch_add(1, Ordering::SeqCst);
        let seen = seq.load(Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !ready(self.state()) {
            let _ = sys::futex_wait(seq, seen, Some(slice));
        }
        sleepers.fetch_sub(1, Ordering::SeqCst);
        true
    }

    /// Tasks put and not yet marked done.
    pub(crate) fn unfinished(&self) -> u32 {
        // Done first: the put count read after it is at least as new.
        let done = self.word(DONE).load(Ordering::Acquire);
        self.state().puts.wrapping_sub(done)
    }

    /// Marks one task done; [`TaskDoneError`] if none is unfinished.
    pub(crate) fn task_done(&self) -> Result<(), TaskDoneError> {
        let done = self.word(DONE);
        let mut seen = done.load(Ordering::Acquire);
        loop {
            let left = self.state().puts.wrapping_sub(seen);
            if left == 0 {
                return Err(TaskDoneError::TooManyCalls);
            }
            match done.compare_exchange(
                seen,
                seen.wrapping_add(1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) if left == 1 => {
                    self.signal(ALL_DONE, u32::MAX);
                    return Ok(());
                }
                Ok(_) => return Ok(()),
                Err(now) => seen = now,
            }
        }
    }

    /// Waits until every task put has been marked done (or `deadline`: false).
    pub(crate) fn join(&self, deadline: Option<Instant>) -> bool {
        loop {
            if self.unfinished() == 0 {
                return true;
            }
            let left = match deadline {
                None => SLICE,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(SLICE),
                    _ => return false,
                },
            };
            let (seq, sleepers) = (self.word(ALL_DONE), self.word(ALL_DONE + 4));
            sleepers.fetch_add(1, Ordering::SeqCst);
            let seen = seq.load(Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if self.unfinished() != 0 {
                let _ = sys::futex_wait(seq, seen, Some(left));
            }
            sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl AsFd for Ring {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.seg.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Option<Instant> {
        Some(Instant::now())
    }

    #[test]
    fn frames_wrap_around_the_end() {
        let ring = Ring::new(0, 0, 64).unwrap();
        for round in 0u8..20 {
            let a = vec![round; 13];
            assert_eq!(ring.put(&a, now()), Ok(Acquired::Normal));
            assert_eq!(ring.put(&[round; 3], now()), Ok(Acquired::Normal));
            assert_eq!(ring.items(), 2);
            assert_eq!(ring.get(now(), <[u8]>::to_vec).unwrap().0, a);
            assert_eq!(ring.get(now(), <[u8]>::to_vec).unwrap().0, vec![round; 3]);
            assert!(ring.consistent());
        }
        assert_eq!(ring.get(now(), <[u8]>::to_vec), Err(GetError::Empty));
    }

    #[test]
    fn the_ring_fills_up_exactly() {
        let ring = Ring::new(0, 0, 64).unwrap();
        // 4 frames of 16 bytes fill 64.
        for i in 0..4u8 {
            assert_eq!(ring.put(&[i; 8], now()), Ok(Acquired::Normal));
        }
        assert!(ring.full());
        assert_eq!(ring.put(&[9], now()), Err(PutError::Full));
        assert!(ring.consistent());
        assert_eq!(ring.get(now(), <[u8]>::to_vec).unwrap(), (vec![0; 8], Acquired::Normal));
        assert_eq!(
            ring.put(&[0; 57], now()),
            Err(PutError::TooLarge { size: 57, max: 56 }),
            "never fits, whatever is queued"
        );
        assert_eq!(ring.put(&[7; 8], now()), Ok(Acquired::Normal));
        let got: Vec<_> = (0..4).map(|_| ring.get(now(), <[u8]>::to_vec).unwrap().0[0]).collect();
        assert_eq!(got, [1, 2, 3, 7]);
    }

    #[test]
    fn a_dead_holder_leaves_a_consistent_ring() {
        let ring = Ring::new(0, 0, 128).unwrap();
        assert_eq!(ring.put(b"committed", now()), Ok(Acquired::Normal));
        // A writer died after writing half a frame beyond the tail, holding the lock.
        ring.seg.map().atomic_u64(RING + 24).store(1_000_000, Ordering::Relaxed);
        ring.word(GETTERS).store((1 << 30) - 1, Ordering::Relaxed);
        let (got, how) = ring.get(now(), <[u8]>::to_vec).unwrap();
        assert_eq!((&got[..], how), (&b"committed"[..], Acquired::Recovered));
        assert_eq!(ring.recoveries(), 1);
        // The next one takes a lock its holder released.
        assert_eq!(ring.put(b"x", now()), Ok(Acquired::Normal));
        assert_eq!(ring.get(now(), <[u8]>::to_vec), Ok((b"x".to_vec(), Acquired::Normal)));
        assert_eq!(ring.get(now(), <[u8]>::to_vec), Err(GetError::Empty));
        // A putter that died holding its lock: the next put is told.
        ring.word(PUTTERS).store((1 << 30) - 1, Ordering::Relaxed);
        assert_eq!(ring.put(b"y", now()), Ok(Acquired::Recovered));
        assert_eq!(ring.recoveries(), 2);
    }

    #[test]
    fn a_broken_ring_is_reported() {
        let ring = Ring::new(0, 0, 128).unwrap();
        assert_eq!(ring.put(b"x", now()), Ok(Acquired::Normal));
        ring.seg.map().atomic_u64(RING).store(1_000_000, Ordering::Relaxed);
        ring.word(GETTERS).store((1 << 30) - 1, Ordering::Relaxed);
        assert_eq!(ring.get(now(), <[u8]>::to_vec), Err(GetError::Corrupt));
    }
}
