//! [`ShareableList`]: CPython's `multiprocessing.shared_memory.ShareableList`, a list of fixed
//! length whose items (integers, floats, booleans, strings, byte strings, `None`) live in a
//! shared segment, laid out byte for byte as CPython lays it out, so that a Python program
//! can attach to a list made here by its name and the other way round.
//!
//! # Layout (CPython's, native byte order)
//! - 8 bytes: the number of items `n`;
//! - `(n + 1) × 8` bytes: each item's offset into the data area, and the area's end;
//! - the data area: 8 bytes for a number, a boolean or `None`; a multiple of 8 for a string
//!   (UTF-8) or a byte string, fixed when the list is made;
//! - `n × 8` bytes: each item's `struct` format (`q`, `d`, `xxxxxxx?`, `xxxxxx?x`, `<N>s`);
//! - `n` bytes: each item's kind (0 a number or boolean, 1 a string, 2 bytes, 3 `None`).

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;

use super::memory::{SharedMemory, ShmError};

/// Slots are whole words.
const ALIGN: usize = 8;

/// A format takes at most 8 bytes, so a string's slot has at most 7 digits.
const MAX_SLOT: usize = 9_999_992;

const INT: &[u8] = b"q";
const FLOAT: &[u8] = b"d";
const BOOL: &[u8] = b"xxxxxxx?";
const NONE: &[u8] = b"xxxxxx?x";

/// The kinds (CPython's back-transform codes).
const AS_IS: u8 = 0;
const STR: u8 = 1;
const BYTES: u8 = 2;
const NONE_CODE: u8 = 3;

/// One item of a [`ShareableList`]: the types CPython's `ShareableList` stores.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A Python `int` (a signed 64-bit number, as CPython stores it).
    Int(i64),
    /// A Python `float`.
    Float(f64),
    /// A Python `bool`.
    Bool(bool),
    /// A Python `str`.
    Str(String),
    /// A Python `bytes`.
    Bytes(Vec<u8>),
    /// Python's `None`.
    None,
}

impl Item {
    /// Python's `==`: numbers and booleans compare by value across kinds (`1 == 1.0 ==
    /// True`), a string never equals a byte string, NaN equals nothing.
    pub fn eq_python(&self, other: &Item) -> bool {
        match (self.number(), other.number()) {
            (Some(a), Some(b)) => a.eq_python(b),
            _ => match (self, other) {
                (Item::Str(a), Item::Str(b)) => a == b,
                (Item::Bytes(a), Item::Bytes(b)) => a == b,
                (Item::None, Item::None) => true,
                _ => false,
            },
        }
    }

    fn number(&self) -> Option<Number> {
        match *self {
            Item::Int(i) => Some(Number::Int(i)),
            Item::Bool(b) => Some(Number::Int(i64::from(b))),
            Item::Float(x) => Some(Number::Float(x)),
            _ => None,
        }
    }

    /// The item's format, and its bytes when it is a string.
    fn encoded(&self) -> (&'static [u8], u8, Option<&[u8]>) {
        match self {
            Item::Int(_) => (INT, AS_IS, None),
            Item::Float(_) => (FLOAT, AS_IS, None),
            Item::Bool(_) => (BOOL, AS_IS, None),
            Item::None => (NONE, NONE_CODE, None),
            Item::Str(s) => (b"", STR, Some(s.as_bytes())),
            Item::Bytes(b) => (b"", BYTES, Some(b)),
        }
    }

    /// The 8 bytes of a number, a boolean or `None`.
    fn word(&self) -> [u8; 8] {
        match *self {
            Item::Int(i) => i.to_ne_bytes(),
            Item::Float(x) => x.to_ne_bytes(),
            Item::Bool(b) => [0, 0, 0, 0, 0, 0, 0, u8::from(b)],
            _ => [0; 8],
        }
    }
}

/// 2^63, exactly.
const TWO_63: f64 = 9_223_372_036_854_775_808.0;

#[derive(Clone, Copy)]
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    /// Python compares an `int` and a `float` exactly, not through a rounded conversion.
    fn eq_python(self, other: Number) -> bool {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            (Number::Float(a), Number::Float(b)) => a == b,
            (Number::Int(i), Number::Float(x)) | (Number::Float(x), Number::Int(i)) => {
                // A whole float in [-2^63, 2^63) is exactly one i64.
                x.fract() == 0.0 && (-TWO_63..TWO_63).contains(&x) && x as i64 == i
            }
        }
    }
}

macro_rules! item_from {
    ($variant:ident: $($t:ty),*) => {$(
        impl From<$t> for Item {
            fn from(v: $t) -> Item {
                Item::$variant(v.into())
            }
        }
    )*};
}
item_from!(Int: i64, i32, i16, i8, u32, u16, u8);
item_from!(Float: f64, f32);
item_from!(Bool: bool);
item_from!(Str: String, &str);
item_from!(Bytes: Vec<u8>, &[u8]);

impl<const N: usize> From<&[u8; N]> for Item {
    fn from(v: &[u8; N]) -> Item {
        Item::Bytes(v.to_vec())
    }
}

impl From<()> for Item {
    fn from((): ()) -> Item {
        Item::None
    }
}

impl<T: Into<Item>> From<Option<T>> for Item {
    fn from(v: Option<T>) -> Item {
        v.map_or(Item::None, Into::into)
    }
}

/// Python's `repr`: `'howdy'`, `b'HoWdY'`, `-273.154`, `100`, `None`, `True`.
impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Int(i) => write!(f, "{i}"),
            Item::Float(x) => f.write_str(&float_repr(*x)),
            Item::Bool(true) => f.write_str("True"),
            Item::Bool(false) => f.write_str("False"),
            Item::None => f.write_str("None"),
            Item::Str(s) => {
                let q = quote(s.contains('\'') && !s.contains('"'));
                write!(f, "{q}")?;
                for c in s.chars() {
                    match c {
                        '\\' => f.write_str("\\\\")?,
                        '\n' => f.write_str("\\n")?,
                        '\r' => f.write_str("\\r")?,
                        '\t' => f.write_str("\\t")?,
                        c if c == q => write!(f, "\\{c}")?,
                        c if c.is_control() && (c as u32) < 0x100 => {
                            write!(f, "\\x{:02x}", c as u32)?
                        }
                        c if c.is_control() => write!(f, "\\u{:04x}", c as u32)?,
                        c => write!(f, "{c}")?,
                    }
                }
                write!(f, "{q}")
            }
            Item::Bytes(b) => {
                let q = quote(b.contains(&b'\'') && !b.contains(&b'"'));
                write!(f, "b{q}")?;
                for &c in b {
                    match c {
                        b'\\' => f.write_str("\\\\")?,
                        b'\n' => f.write_str("\\n")?,
                        b'\r' => f.write_str("\\r")?,
                        b'\t' => f.write_str("\\t")?,
                        c if char::from(c) == q => write!(f, "\\{q}")?,
                        0x20..=0x7e => write!(f, "{}", char::from(c))?,
                        c => write!(f, "\\x{c:02x}")?,
                    }
                }
                write!(f, "{q}")
            }
        }
    }
}

/// Python quotes with `'` unless the text holds a `'` and no `"`.
fn quote(double: bool) -> char {
    if double { '"' } else { '\'' }
}

/// Python's `repr` of a float: the shortest digits that read back the same, in positional
/// notation for decimal exponents from -4 to 15 (`100.0`, `0.0001`) and in scientific one
/// beyond (`1e+16`, `1e-05`).
fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // `{:e}` gives the shortest round-trip digits: "-2.73154e2".
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e}'s exponent is a number");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if x < 0.0 { "-" } else { "" };
    let point = exp + 1; // digits before the decimal point
    let n = digits.len() as i32;
    if !(-4 < point && point <= 16) {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{rest}e{esign}{:02}", exp.abs());
    }
    if point <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point >= n {
        format!("{sign}{digits}{}.0", "0".repeat((point - n) as usize))
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{sign}{int}.{frac}")
    }
}

/// A list of fixed length in shared memory (CPython's `ShareableList`): its items can be read
/// and replaced by every process that holds it, but not added or removed. A string or byte
/// string item keeps the room it was made with (as CPython sizes it: its length rounded up to
/// the next multiple of 8 past it), and a longer one put in its place is
/// [`ShmError::ItemTooLong`]. A clone is the same list.
///
/// ```standalone_crate
/// use pifork::shm::{Item, ShareableList};
///
/// let sl = ShareableList::new([Item::from("howdy"), 100.into(), Item::None, true.into()])?;
/// sl.set(1, 42)?;
/// assert_eq!(sl.get(1)?, Item::Int(42));
/// assert_eq!(sl.format()?, "8sqxxxxxx?xxxxxxxx?");
/// assert_eq!(sl.to_string(), "ShareableList(['howdy', 42, None, True], name=None)");
/// # Ok::<(), pifork::ShmError>(())
/// ```
///
/// # Differences from CPython
/// - CPython sizes a string's room by its number of characters, so a string of multi-byte
///   characters can be cut short when the list is made; here the room is at least its UTF-8
///   bytes rounded up to a whole word, so every item reads back as it was given (the room is
///   CPython's wherever CPython's holds the string).
/// - As in CPython, trailing NUL bytes of a string or byte string are not kept (`b"a\0"`
///   reads back as `b"a"`), and replacing an item is not atomic against a process reading
///   the same item at that moment: order them with a [`Lock`](crate::sync::Lock). A read
///   that finds the bytes inconsistent is [`ShmError::ListCorrupt`], never a panic.
/// - Indices are `usize`: count from the end with `len() - k`.
#[derive(Debug, Clone)]
pub struct ShareableList {
    shm: SharedMemory,
    /// Each item's offset into the data area, then the area's end (fixed for the list's life).
    offsets: Arc<[usize]>,
}

impl ShareableList {
    /// A new list of `items` in an anonymous segment (a memfd: nothing in `/dev/shm`).
    pub fn new<T: Into<Item>>(
        items: impl IntoIterator<Item = T>,
    ) -> Result<ShareableList, ShmError> {
        ShareableList::make(items, SharedMemory::new)
    }

    /// A new list of `items` in the named segment `name`, which a Python program can open as
    /// `ShareableList(name=...)`; the name is the caller's to [`unlink`](SharedMemory::unlink)
    /// (through [`shm`](Self::shm)).
    pub fn create<T: Into<Item>>(
        name: &str,
        items: impl IntoIterator<Item = T>,
    ) -> Result<ShareableList, ShmError> {
        ShareableList::make(items, |size| SharedMemory::create(name, size))
    }

    /// A new list of `items` in a named segment under a fresh random name (CPython's
    /// `ShareableList(sequence)`), as [`SharedMemory::create_unique`] draws it.
    pub fn create_unique<T: Into<Item>>(
        items: impl IntoIterator<Item = T>,
    ) -> Result<ShareableList, ShmError> {
        ShareableList::make(items, SharedMemory::create_unique)
    }

    /// Attaches to the list in the named segment `name` (made here or by CPython).
    pub fn attach(name: &str) -> Result<ShareableList, ShmError> {
        ShareableList::from_segment(SharedMemory::attach(name)?)
    }

    /// Claims the list the parent handed down under the number `fd` (listed in its
    /// `Process::inherit_fds`), as [`SharedMemory::from_inherited`] does.
    pub fn from_inherited(fd: RawFd) -> Result<ShareableList, ShmError> {
        ShareableList::from_segment(SharedMemory::from_inherited(fd)?)
    }

    /// The list that a segment holds: its header is checked against the segment's size.
    pub fn from_segment(shm: SharedMemory) -> Result<ShareableList, ShmError> {
        let size = shm.size();
        let corrupt = |reason: String| ShmError::ListCorrupt { reason };
        let n = read_word(&shm, 0)?;
        // The header alone (count and offsets) and 9 bytes of metadata per item must fit.
        let fits = usize::try_from(n).ok().filter(|&n| {
            n.checked_mul(17).and_then(|m| m.checked_add(16)).is_some_and(|m| m <= size)
        });
        let Some(n) = fits else {
            return Err(corrupt(format!("{n} items do not fit its {size} bytes")));
        };
        let mut offsets = Vec::with_capacity(n + 1);
        for i in 0..=n {
            let at = read_word(&shm, 8 + 8 * i)?;
            let prev = offsets.last().copied().unwrap_or(0);
            match usize::try_from(at) {
                Ok(at) if (i > 0 || at == 0) && at >= prev => offsets.push(at),
                _ => return Err(corrupt(format!("item {i}'s offset {at} is out of order"))),
            }
        }
        let list = ShareableList { shm, offsets: offsets.into() };
        let end = list.codes_at().checked_add(n);
        if end.is_none_or(|end| end > size) {
            return Err(corrupt(format!("its items' data do not fit its {size} bytes")));
        }
        Ok(list)
    }

    fn make<T: Into<Item>>(
        items: impl IntoIterator<Item = T>,
        segment: impl FnOnce(usize) -> Result<SharedMemory, ShmError>,
    ) -> Result<ShareableList, ShmError> {
        let items: Vec<Item> = items.into_iter().map(Into::into).collect();
        let n = items.len();
        let mut offsets = Vec::with_capacity(n + 1);
        let mut formats = Vec::with_capacity(n);
        let mut end = 0usize;
        offsets.push(0);
        for item in &items {
            let (format, _, text) = item.encoded();
            let (format, room) = match text {
                None => (format.to_vec(), ALIGN),
                Some(text) => {
                    let room = room_for(item, text);
                    if room > MAX_SLOT {
                        return Err(ShmError::ItemTooLong { len: text.len(), room: MAX_SLOT });
                    }
                    (format!("{room}s").into_bytes(), room)
                }
            };
            end += room;
            offsets.push(end);
            formats.push(format);
        }
        let size = 8 + 8 * (n + 1) + end + 9 * n;
        let list = ShareableList { shm: segment(size)?, offsets: offsets.into() };
        let mut header = Vec::with_capacity(8 * (n + 2));
        header.extend_from_slice(&(n as i64).to_ne_bytes());
        for &at in list.offsets.iter() {
            header.extend_from_slice(&(at as i64).to_ne_bytes());
        }
        list.shm.write(0, &header)?;
        for (i, (item, format)) in items.iter().zip(&formats).enumerate() {
            list.store(i, item, format)?;
        }
        Ok(list)
    }

    /// The number of items (fixed).
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Whether the list has no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The segment under the list (its name, its size, `unlink`).
    pub fn shm(&self) -> &SharedMemory {
        &self.shm
    }

    /// The list's name (its segment's), `None` for an anonymous one.
    pub fn name(&self) -> Option<&str> {
        self.shm.name()
    }

    /// The item at `index`; past the end is [`ShmError::IndexOutOfRange`].
    pub fn get(&self, index: usize) -> Result<Item, ShmError> {
        let format = self.format_of(index)?;
        let code = self.code_of(index)?;
        let at = self.data_at() + self.offsets[index];
        let corrupt = |what: &str| ShmError::ListCorrupt {
            reason: format!("item {index} {what} (format {:?}, kind {code})", fmt_text(&format)),
        };
        if code == NONE_CODE {
            return Ok(Item::None);
        }
        let word = || -> Result<[u8; 8], ShmError> {
            let mut w = [0u8; 8];
            self.shm.read(at, &mut w)?;
            Ok(w)
        };
        match (format.as_slice(), code) {
            (INT, AS_IS) => Ok(Item::Int(i64::from_ne_bytes(word()?))),
            (FLOAT, AS_IS) => Ok(Item::Float(f64::from_ne_bytes(word()?))),
            (BOOL, AS_IS) => Ok(Item::Bool(word()?[7] != 0)),
            (_, STR | BYTES) => {
                let Some(len) = self.text_len(index, &format) else {
                    return Err(corrupt("has a string format that does not fit its room"));
                };
                let mut text = vec![0u8; len];
                self.shm.read(at, &mut text)?;
                let kept = text.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
                text.truncate(kept);
                if code == BYTES {
                    return Ok(Item::Bytes(text));
                }
                String::from_utf8(text).map(Item::Str).map_err(|_| corrupt("is not UTF-8"))
            }
            _ => Err(corrupt("has a format of no known kind")),
        }
    }

    /// Replaces the item at `index` (CPython's `sl[index] = value`). A string or byte string
    /// longer than the item's room is [`ShmError::ItemTooLong`] and changes nothing.
    pub fn set(&self, index: usize, value: impl Into<Item>) -> Result<(), ShmError> {
        let value = value.into();
        let current = self.format_of(index)?;
        let (format, _, text) = value.encoded();
        if text.is_none() {
            return self.store(index, &value, format);
        }
        let room = self.room(index);
        let len = text.map_or(0, <[u8]>::len);
        if len > room {
            return Err(ShmError::ItemTooLong { len, room });
        }
        let format = match self.text_len(index, &current) {
            Some(_) => current,
            None => format!("{room}s").into_bytes(),
        };
        self.store(index, &value, &format)
    }

    /// Writes an item's format, kind and bytes (formats and rooms already checked).
    fn store(&self, index: usize, item: &Item, format: &[u8]) -> Result<(), ShmError> {
        let (_, code, text) = item.encoded();
        let mut padded = [0u8; 8];
        padded[..format.len()].copy_from_slice(format);
        self.shm.write(self.formats_at() + 8 * index, &padded)?;
        self.shm.write(self.codes_at() + index, &[code])?;
        let at = self.data_at() + self.offsets[index];
        match text {
            None => self.shm.write(at, &item.word()),
            Some(text) => {
                let len = self.text_len(index, format).expect("a string format that fits");
                let mut bytes = vec![0u8; len];
                bytes[..text.len()].copy_from_slice(text);
                self.shm.write(at, &bytes)
            }
        }
    }

    /// Every item, in order (CPython's `list(sl)`).
    pub fn to_vec(&self) -> Result<Vec<Item>, ShmError> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }

    /// How many items equal `value` by Python's `==` ([`Item::eq_python`]: `count(1)` counts
    /// `1`, `1.0` and `True`).
    pub fn count(&self, value: impl Into<Item>) -> Result<usize, ShmError> {
        let value = value.into();
        Ok(self.to_vec()?.iter().filter(|item| item.eq_python(&value)).count())
    }

    /// The first index of an item equal to `value` by Python's `==`; `None` where CPython
    /// raises `ValueError`.
    pub fn index(&self, value: impl Into<Item>) -> Result<Option<usize>, ShmError> {
        let value = value.into();
        for i in 0..self.len() {
            if self.get(i)?.eq_python(&value) {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// Every item's `struct` format, joined (CPython's `sl.format`: `"8s8sdq"`).
    pub fn format(&self) -> Result<String, ShmError> {
        let mut all = String::new();
        for i in 0..self.len() {
            all.push_str(&fmt_text(&self.format_of(i)?));
        }
        Ok(all)
    }

    fn check(&self, index: usize) -> Result<(), ShmError> {
        match index < self.len() {
            true => Ok(()),
            false => Err(ShmError::IndexOutOfRange { index, len: self.len() }),
        }
    }

    /// The item's format, without its NUL padding.
    fn format_of(&self, index: usize) -> Result<Vec<u8>, ShmError> {
        self.check(index)?;
        let mut raw = [0u8; 8];
        self.shm.read(self.formats_at() + 8 * index, &mut raw)?;
        let len = raw.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        Ok(raw[..len].to_vec())
    }

    fn code_of(&self, index: usize) -> Result<u8, ShmError> {
        let mut code = [0u8];
        self.shm.read(self.codes_at() + index, &mut code)?;
        Ok(code[0])
    }

    /// The length a string format (`<N>s`) gives, if it is one and fits the item's room.
    fn text_len(&self, index: usize, format: &[u8]) -> Option<usize> {
        let digits = format.strip_suffix(b"s")?;
        let len: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
        (len <= self.room(index)).then_some(len)
    }

    fn room(&self, index: usize) -> usize {
        self.offsets[index + 1] - self.offsets[index]
    }

    fn data_at(&self) -> usize {
        8 * (self.len() + 2)
    }

    fn formats_at(&self) -> usize {
        self.data_at() + self.offsets[self.len()]
    }

    fn codes_at(&self) -> usize {
        self.formats_at() + 8 * self.len()
    }
}

/// A string's room: CPython's, 8 × (its length in characters / 8 + 1) bytes, or its UTF-8
/// bytes rounded up to a whole word where those do not fit in that (CPython would cut them).
fn room_for(item: &Item, text: &[u8]) -> usize {
    let chars = match item {
        Item::Str(s) => s.chars().count(),
        _ => text.len(),
    };
    (ALIGN * (chars / ALIGN + 1)).max(text.len().div_ceil(ALIGN) * ALIGN)
}

fn read_word(shm: &SharedMemory, at: usize) -> Result<i64, ShmError> {
    let mut w = [0u8; 8];
    shm.read(at, &mut w).map_err(|_| ShmError::ListCorrupt {
        reason: format!("its {}-byte segment is too small for a list", shm.size()),
    })?;
    Ok(i64::from_ne_bytes(w))
}

fn fmt_text(format: &[u8]) -> String {
    String::from_utf8_lossy(format).into_owned()
}

/// CPython's repr: `ShareableList(['howdy', 42], name='psm_1')`; `name=None` for an
/// anonymous list.
impl fmt::Display for ShareableList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShareableList([")?;
        for i in 0..self.len() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match self.get(i) {
                Ok(item) => write!(f, "{item}")?,
                Err(e) => write!(f, "<{e}>")?,
            }
        }
        match self.name() {
            Some(name) => write!(f, "], name='{name}')"),
            None => f.write_str("], name=None)"),
        }
    }
}

impl AsFd for ShareableList {
    /// The segment's descriptor, to list in `Process::inherit_fds`.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shm.as_fd()
    }
}

impl AsRawFd for ShareableList {
    fn as_raw_fd(&self) -> RawFd {
        self.shm.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_does() {
        for (x, repr) in [
            (-273.154, "-273.154"),
            (100.0, "100.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (-0.0, "-0.0"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "nan"),
            (1e300, "1e+300"),
        ] {
            assert_eq!(float_repr(x), repr, "{x}");
        }
    }

    #[test]
    fn strings_print_as_python_does() {
        assert_eq!(Item::from("it's").to_string(), "\"it's\"");
        assert_eq!(Item::from("a'\"b\n").to_string(), "'a\\'\"b\\n'");
        assert_eq!(Item::from("encodés").to_string(), "'encodés'");
        assert_eq!(Item::from(&b"\x00A\\'"[..]).to_string(), "b\"\\x00A\\\\'\"");
        assert_eq!(Item::from(b"\xffok").to_string(), "b'\\xffok'");
    }

    #[test]
    fn python_equality_crosses_number_kinds() {
        let one = Item::Int(1);
        assert!(one.eq_python(&Item::Bool(true)));
        assert!(one.eq_python(&Item::Float(1.0)));
        assert!(!one.eq_python(&Item::Float(1.5)));
        assert!(!Item::Float(f64::NAN).eq_python(&Item::Float(f64::NAN)));
        assert!(!Item::from("100").eq_python(&Item::Int(100)));
        assert!(!Item::from("a").eq_python(&Item::from(b"a")));
        assert!(Item::None.eq_python(&Item::None));
        // 2^63 as a float is not any i64, though `as` would saturate to i64::MAX.
        assert!(!Item::Int(i64::MAX).eq_python(&Item::Float(TWO_63)));
        assert!(Item::Int(i64::MIN).eq_python(&Item::Float(-TWO_63)));
    }
}
