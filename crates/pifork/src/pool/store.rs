//! How a job keeps its items without one allocation each: arguments encoded end to end in
//! one buffer ([`Flat`]), outcomes in one buffer too ([`Outcomes`]) while every value has the
//! same size (the usual case: numbers, tuples of numbers), one buffer per value otherwise.

use std::collections::HashMap;

use super::error::{PoolError, PoolResult};
use crate::message::{self, Message};

/// Large buffers of finished jobs, kept for the next ones: fresh memory costs a page fault
/// per page, more than the copying that fills it.
#[derive(Default)]
pub(crate) struct Spare(Vec<Vec<u8>>);

/// Buffers smaller than this are not worth keeping, larger ones not worth holding on to.
const SPARE_MIN: usize = 1 << 16;
/// The largest buffer kept.
const SPARE_MAX: usize = 1 << 26;
/// How many are kept.
const SPARE_COUNT: usize = 8;

impl Spare {
    /// An empty buffer: the roomiest kept, if any.
    pub fn take(&mut self) -> Vec<u8> {
        let best = (0..self.0.len()).max_by_key(|&i| self.0[i].capacity());
        best.map(|i| self.0.swap_remove(i)).unwrap_or_default()
    }

    /// Keeps `buf` for later, if it is worth it.
    pub fn give(&mut self, mut buf: Vec<u8>) {
        if (SPARE_MIN..=SPARE_MAX).contains(&buf.capacity()) && self.0.len() < SPARE_COUNT {
            buf.clear();
            self.0.push(buf);
        }
    }
}

/// The buffer [`Flat::extend`] encodes values of a fixed size in, a block at a time.
const BLOCK: usize = 4096;

/// Encoded values laid end to end, and where each one is.
#[derive(Default)]
pub(crate) struct Flat {
    bytes: Vec<u8>,
    len: usize,
    /// How many items are expected (room is made for them after the first).
    hint: usize,
    /// Every item's length, while they are all the same (`ends` is empty then).
    stride: usize,
    /// Where each item ends, once lengths differ.
    ends: Vec<usize>,
}

impl Flat {
    /// No items.
    pub fn new() -> Flat {
        Flat::default()
    }

    /// No items yet, in `buf`, about `hint` of them to come.
    pub fn with_buffer(mut buf: Vec<u8>, hint: usize) -> Flat {
        buf.clear();
        Flat { bytes: buf, hint, ..Flat::default() }
    }

    /// Appends the encoding of `value`.
    pub fn push<T: Message>(&mut self, value: &T) {
        let start = self.bytes.len();
        value.encode(&mut self.bytes);
        let n = self.bytes.len() - start;
        if self.len == 0 {
            self.stride = n;
            self.bytes.reserve(self.hint.saturating_sub(1).saturating_mul(n));
        } else if self.ends.is_empty() && n != self.stride {
            self.ends = (1..=self.len).map(|i| i * self.stride).collect();
        }
        if !self.ends.is_empty() {
            self.ends.push(self.bytes.len());
        }
        self.len += 1;
    }

    /// Appends the encoding of every item: values of one fixed size ([`Message::SIZE`]) are
    /// written a block at a time, through a small buffer that stays in cache (never zeroing
    /// the room they take first); others one by one, as [`Flat::push`].
    pub fn extend<T: Message>(&mut self, items: impl Iterator<Item = T>) {
        let mut items = items.fuse();
        match T::SIZE {
            Some(size) if size > 0 && size <= BLOCK && self.len == 0 => {
                self.stride = size;
                self.bytes.reserve(self.hint.saturating_mul(size));
                let per = BLOCK / size;
                let mut block = [0u8; BLOCK];
                loop {
                    let mut k = 0;
                    for (slot, t) in block[..per * size].chunks_exact_mut(size).zip(&mut items) {
                        t.encode_fixed(slot);
                        k += 1;
                    }
                    self.bytes.extend_from_slice(&block[..k * size]);
                    self.len += k;
                    if k < per {
                        return;
                    }
                }
            }
            _ => items.for_each(|t| self.push(&t)),
        }
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The length every item has, if they all have the same.
    pub fn stride(&self) -> Option<usize> {
        self.ends.is_empty().then_some(self.stride)
    }

    fn start(&self, i: usize) -> usize {
        match (self.ends.is_empty(), i) {
            (true, _) => i * self.stride,
            (false, 0) => 0,
            (false, _) => self.ends[i - 1],
        }
    }

    /// Item `i`'s bytes.
    pub fn get(&self, i: usize) -> &[u8] {
        &self.bytes[self.start(i)..self.start(i + 1)]
    }

    /// The bytes of items `a..b`, end to end.
    pub fn span(&self, a: usize, b: usize) -> &[u8] {
        &self.bytes[self.start(a)..self.start(b)]
    }

    /// The bytes, the items gone.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Gives up the bytes (the items are not needed any more).
    pub fn free(&mut self) -> Vec<u8> {
        std::mem::replace(self, Flat { len: self.len, ..Flat::default() }).bytes
    }
}

const PENDING: u8 = 0;
const OK: u8 = 1;
const ERR: u8 = 2;
const TAKEN: u8 = 3;

/// Values of at most this size are kept end to end in one buffer, at fixed places.
const MAX_FIXED: usize = 256;

/// Where the values are.
enum Values {
    /// No value yet: its size decides.
    Unknown,
    /// Every value so far has this size: item `i`'s is at `i * size` in `data`.
    Fixed(usize),
    /// One buffer each (freed once taken).
    Each(Vec<Vec<u8>>),
}

/// Every item's outcome, as it is known.
pub(crate) struct Outcomes {
    state: Vec<u8>,
    values: Values,
    data: Vec<u8>,
    errors: HashMap<u32, PoolError>,
}

impl Outcomes {
    /// No items; values of a fixed size will go into `buf`.
    pub fn new(mut buf: Vec<u8>) -> Outcomes {
        buf.clear();
        Outcomes { state: Vec::new(), values: Values::Unknown, data: buf, errors: HashMap::new() }
    }

    /// Gives up the buffers.
    pub fn into_buffers(self) -> [Vec<u8>; 2] {
        [self.data, self.state]
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// Adds `n` items, none known yet.
    pub fn add(&mut self, n: usize) {
        self.state.resize(self.state.len() + n, PENDING);
        match &mut self.values {
            Values::Unknown => {}
            // Values of a fixed size are placed as they come: no room made (nor zeroed) ahead.
            Values::Fixed(_) => {}
            Values::Each(v) => v.resize_with(self.state.len(), Vec::new),
        }
    }

    /// Values of `size` bytes go at fixed places if they can: whether they do.
    fn fits(&mut self, size: usize) -> bool {
        match self.values {
            Values::Unknown if size <= MAX_FIXED => {
                self.values = Values::Fixed(size);
                self.data.clear();
                true
            }
            Values::Unknown => {
                self.values = Values::Each(vec![Vec::new(); self.state.len()]);
                false
            }
            Values::Fixed(s) if s == size => true,
            Values::Fixed(s) => {
                // A value of another size: every value gets its own buffer from now on.
                let each = (0..self.state.len())
                    .map(|i| match self.state[i] {
                        OK => self.data[i * s..(i + 1) * s].to_vec(),
                        _ => Vec::new(),
                    })
                    .collect();
                self.values = Values::Each(each);
                self.data = Vec::new();
                false
            }
            Values::Each(_) => false,
        }
    }

    /// Records item `i`'s value; false if its outcome was known already.
    pub fn set_value(&mut self, i: u32, bytes: &[u8]) -> bool {
        let i = i as usize;
        if self.state[i] != PENDING {
            return false;
        }
        let fixed = self.fits(bytes.len());
        self.state[i] = OK;
        if fixed {
            put(&mut self.data, i * bytes.len(), bytes);
        } else if let Values::Each(v) = &mut self.values {
            v[i] = bytes.to_vec();
        }
        true
    }

    /// Records the values of items `first..first + n`, each of `size` bytes, end to end in
    /// `bytes`: in one copy, if none of them is known yet and values of that size go at
    /// fixed places. False (nothing recorded) otherwise.
    pub fn set_values(&mut self, first: u32, n: usize, size: usize, bytes: &[u8]) -> bool {
        let (a, b) = (first as usize, first as usize + n);
        if b > self.state.len() || bytes.len() != n * size {
            return false;
        }
        if !self.state[a..b].iter().all(|&s| s == PENDING) || !self.fits(size) {
            return false;
        }
        self.state[a..b].fill(OK);
        put(&mut self.data, a * size, bytes);
        true
    }

    /// Records item `i`'s failure; false if its outcome was known already.
    pub fn set_error(&mut self, i: u32, e: PoolError) -> bool {
        if self.state[i as usize] != PENDING {
            return false;
        }
        self.state[i as usize] = ERR;
        self.errors.insert(i, e);
        true
    }

    /// Item `i`'s outcome, if known (a taken one is [`PoolError::Terminated`]).
    pub fn get(&self, i: usize) -> Option<PoolResult<&[u8]>> {
        match *self.state.get(i)? {
            PENDING => None,
            OK => Some(Ok(match &self.values {
                Values::Fixed(s) => &self.data[i * s..(i + 1) * s],
                Values::Each(v) => &v[i],
                Values::Unknown => &[],
            })),
            ERR => {
                Some(Err(self.errors.get(&(i as u32)).cloned().unwrap_or(PoolError::Terminated)))
            }
            _ => Some(Err(PoolError::Terminated)),
        }
    }

    /// Item `i`'s outcome decoded, if known.
    pub fn decode<R: Message>(&self, i: usize) -> Option<PoolResult<R>> {
        Some(decode_value(self.get(i)?))
    }

    /// Item `i`'s outcome decoded, if known; the pool keeps only a marker of it from now on.
    pub fn take<R: Message>(&mut self, i: usize) -> Option<PoolResult<R>> {
        let out = self.decode(i)?;
        self.state[i] = TAKEN;
        self.errors.remove(&(i as u32));
        if let Values::Each(v) = &mut self.values {
            v[i] = Vec::new();
        }
        Some(out)
    }

    /// Every item's value decoded, in order; the first failure (or unknown outcome) instead.
    pub fn values<R: Message>(&self) -> PoolResult<Vec<R>> {
        if let Values::Fixed(size) = self.values
            && size > 0
            && all_ok(&self.state)
        {
            if R::SIZE == Some(size)
                && let Some(data) = self.data.get(..self.state.len() * size)
                && let Some(values) = decode_fixed::<R>(data)
            {
                return Ok(values);
            }
            let mut out = Vec::with_capacity(self.state.len());
            for bytes in self.data.chunks_exact(size) {
                let mut input = bytes;
                match R::decode(&mut input) {
                    Ok(v) if input.is_empty() => out.push(v),
                    _ => return Err(decode_failure::<R>(bytes)),
                }
            }
            return Ok(out);
        }
        (0..self.len()).map(|i| self.decode(i).unwrap_or(Err(PoolError::Terminated))).collect()
    }

    /// Every item's outcome decoded, in order (an unknown one is [`PoolError::Terminated`]).
    pub fn each<R: Message>(&self) -> Vec<PoolResult<R>> {
        (0..self.len()).map(|i| self.decode(i).unwrap_or(Err(PoolError::Terminated))).collect()
    }
}

/// Writes `bytes` at `at` in `data`, which grows as needed (zeros in a gap before it, where
/// values that come later go): values that come in order are copied once, never zeroed first.
fn put(data: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    let end = at + bytes.len();
    if data.len() <= at {
        data.resize(at, 0);
        data.extend_from_slice(bytes);
    } else {
        if data.len() < end {
            data.resize(end, 0);
        }
        data[at..end].copy_from_slice(bytes);
    }
}

/// Whether every state is `OK` (a loop without early exit, which the compiler widens).
fn all_ok(states: &[u8]) -> bool {
    states.chunks(256).all(|c| c.iter().fold(true, |all, &s| all & (s == OK)))
}

/// Values of `R`, each [`Message::SIZE`] bytes long, end to end in `data`, in one pass
/// ([`Message::decode_run`]); None if one does not decode.
fn decode_fixed<R: Message>(data: &[u8]) -> Option<Vec<R>> {
    let mut out = Vec::new();
    R::decode_run(data, &mut out).ok()?;
    Some(out)
}

/// Why `bytes` is not a value of `R` (they are not).
#[cold]
fn decode_failure<R: Message>(bytes: &[u8]) -> PoolError {
    match decode_value::<R>(Ok(bytes)) {
        Err(e) => e,
        Ok(_) => PoolError::TaskFailed("a value that decodes only once".into()),
    }
}

/// Decodes one outcome's value.
fn decode_value<R: Message>(outcome: PoolResult<&[u8]>) -> PoolResult<R> {
    message::from_bytes(outcome?).map_err(|e| PoolError::TaskFailed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keeps_items_of_any_size() {
        let mut f = Flat::new();
        f.push(&1u64);
        f.push(&2u64);
        assert_eq!(f.stride(), Some(8));
        f.push(&7u8);
        f.push(&String::from("abc"));
        assert_eq!(f.stride(), None);
        assert_eq!(f.len(), 4);
        assert_eq!(message::from_bytes::<u64>(f.get(1)).unwrap(), 2);
        assert_eq!(f.get(2), [7]);
        assert_eq!(message::from_bytes::<String>(f.get(3)).unwrap(), "abc");
        assert_eq!(f.span(0, 2).len(), 16);
    }

    #[test]
    fn outcomes_change_layout_when_sizes_differ() {
        let mut o = Outcomes::new(Vec::new());
        o.add(4);
        assert!(o.set_values(0, 2, 8, &[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]));
        assert!(!o.set_value(1, &[9; 8]));
        assert!(o.set_error(2, PoolError::Cancelled));
        assert!(o.set_value(3, &message::to_bytes(&String::from("x"))));
        assert_eq!(o.decode::<u64>(0).unwrap().unwrap(), 1);
        assert_eq!(o.decode::<u64>(1).unwrap().unwrap(), 2);
        assert_eq!(o.decode::<u64>(2), Some(Err(PoolError::Cancelled)));
        assert_eq!(o.take::<String>(3).unwrap().unwrap(), "x");
        assert_eq!(o.decode::<String>(3), Some(Err(PoolError::Terminated)));
        o.add(1);
        assert_eq!(o.get(4), None);
        assert_eq!(o.values::<u64>(), Err(PoolError::Cancelled));
    }

    #[test]
    fn fixed_values_in_any_order_land_in_their_places() {
        let mut o = Outcomes::new(Vec::new());
        o.add(6);
        let bytes = |v: &[u64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        assert!(o.set_values(4, 2, 8, &bytes(&[40, 50])));
        assert_eq!(o.get(1), None);
        assert!(o.set_value(0, &bytes(&[0])));
        assert!(o.set_values(1, 3, 8, &bytes(&[10, 20, 30])));
        assert!(!o.set_values(2, 1, 8, &bytes(&[99])));
        assert_eq!(o.values::<u64>().unwrap(), [0, 10, 20, 30, 40, 50]);
        o.add(1);
        assert_eq!(o.get(6), None);
        assert!(o.set_value(6, &bytes(&[60])));
        assert_eq!(o.decode::<u64>(6).unwrap().unwrap(), 60);
    }

    #[test]
    fn flat_extends_in_blocks_as_it_pushes() {
        let items: Vec<(u32, u16)> = (0..3000).map(|i| (i * 7, i as u16)).collect();
        let mut f = Flat::with_buffer(Vec::new(), 10);
        f.extend(items.iter().copied());
        assert_eq!((f.len(), f.stride()), (3000, Some(6)));
        let mut g = Flat::new();
        items.iter().for_each(|t| g.push(t));
        assert_eq!(f.span(0, 3000), g.span(0, 3000));
        assert_eq!(message::from_bytes::<(u32, u16)>(f.get(2999)).unwrap(), items[2999]);
    }

    #[test]
    fn fixed_values_decode_in_one_pass() {
        let mut o = Outcomes::new(Vec::new());
        o.add(3);
        for i in 0..3u32 {
            assert!(o.set_value(i, &message::to_bytes(&u64::from(i * 10))));
        }
        assert_eq!(o.values::<u64>().unwrap(), [0, 10, 20]);
    }
}
