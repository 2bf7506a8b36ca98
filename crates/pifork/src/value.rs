//! Shared values, CPython's `multiprocessing.Value` and `Array` (with a lock) and `RawValue`
//! and `RawArray` (without): plain numbers in shared memory, each object in a sealed memfd of
//! its own, seen alike by every process that shares it.
//!
//! Only the [`Shareable`] types can be shared: the integer and float primitives and `bool`,
//! CPython's typecodes `b B h H i I q Q n N f d ?`. Anything else does not compile:
//!
//! ```compile_fail,E0277
//! // A String holds a pointer into one process's heap: it cannot be shared.
//! let v = pifork::Value::new(String::from("no"))?;
//! # Ok::<(), pifork::ShmError>(())
//! ```
//!
//! # Access and ordering
//! Each element is read and written with one atomic load or store of its size (an `f64`
//! through its bits), so no read is torn; `get` has acquire and `set` release ordering. A
//! read-modify-write sequence (`v.set(v.get() + 1)`) is not atomic: hold the value's lock
//! ([`Value::get_lock`]), whose acquire and release order the value for every process, as
//! CPython's `with v.get_lock(): v.value += 1`. Unlike CPython, a single `get` or `set` takes
//! no lock (it needs none).
//!
//! # Passing to a child
//! As the [`sync`](crate::sync) objects: a clone captured under fork, or the descriptor listed
//! in `Process::inherit_fds` and claimed with `from_inherited` (which checks the kind and the
//! element type: a `Value<u64>` claimed as a `Value<f64>` is
//! [`ShmError::WrongObject`]). A `Value`'s lock travels with it.

use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::shm::{Kind, PAYLOAD, Segment, ShmError};
use crate::sync::{MUTEX_SIZE, RLock};
use crate::sys::Mapping;

mod sealed {
    /// The element types' hidden side: their width and bits.
    pub trait Sealed: Copy {
        /// CPython's typecode for the type.
        const TYPECODE: u8;
        /// Its size in bytes: 1, 2, 4 or 8.
        const WIDTH: usize;
        /// Its bits, zero-extended.
        fn to_bits(self) -> u64;
        /// The value of the low `WIDTH` bytes of `bits`.
        fn from_bits(bits: u64) -> Self;
    }
}

/// A plain number that can live in shared memory: `i8`..`i64`, `u8`..`u64`, `isize`, `usize`,
/// `f32`, `f64`, `bool` (sealed: no other type can be). Every bit pattern of its width is a
/// valid value (a `bool` reads any non-zero byte as `true`), so whatever another process
/// writes reads back as some value.
pub trait Shareable: sealed::Sealed + Send + Sync + 'static {}

macro_rules! shareable_int {
    ($($t:ty => $code:literal),* $(,)?) => {$(
        impl sealed::Sealed for $t {
            const TYPECODE: u8 = $code;
            const WIDTH: usize = std::mem::size_of::<$t>();
            fn to_bits(self) -> u64 {
                // Reinterpret as unsigned of the same width, then widen.
                self as u64 & (u64::MAX >> (64 - 8 * Self::WIDTH))
            }
            fn from_bits(bits: u64) -> $t {
                bits as $t
            }
        }
        impl Shareable for $t {}
    )*};
}

shareable_int!(i8 => b'b', u8 => b'B', i16 => b'h', u16 => b'H', i32 => b'i', u32 => b'I',
    i64 => b'q', u64 => b'Q', isize => b'n', usize => b'N');

impl sealed::Sealed for f32 {
    const TYPECODE: u8 = b'f';
    const WIDTH: usize = 4;
    fn to_bits(self) -> u64 {
        u64::from(f32::to_bits(self))
    }
    fn from_bits(bits: u64) -> f32 {
        f32::from_bits(bits as u32)
    }
}
impl Shareable for f32 {}

impl sealed::Sealed for f64 {
    const TYPECODE: u8 = b'd';
    const WIDTH: usize = 8;
    fn to_bits(self) -> u64 {
        f64::to_bits(self)
    }
    fn from_bits(bits: u64) -> f64 {
        f64::from_bits(bits)
    }
}
impl Shareable for f64 {}

impl sealed::Sealed for bool {
    const TYPECODE: u8 = b'?';
    const WIDTH: usize = 1;
    fn to_bits(self) -> u64 {
        u64::from(self)
    }
    fn from_bits(bits: u64) -> bool {
        bits as u8 != 0
    }
}
impl Shareable for bool {}

fn load<T: Shareable>(map: &Mapping, at: usize) -> T {
    let bits = match T::WIDTH {
        1 => u64::from(map.atomic_u8(at).load(Ordering::Acquire)),
        2 => u64::from(map.atomic_u16(at).load(Ordering::Acquire)),
        4 => u64::from(map.atomic_u32(at).load(Ordering::Acquire)),
        _ => map.atomic_u64(at).load(Ordering::Acquire),
    };
    T::from_bits(bits)
}

fn store<T: Shareable>(map: &Mapping, at: usize, value: T) {
    let bits = value.to_bits();
    match T::WIDTH {
        1 => map.atomic_u8(at).store(bits as u8, Ordering::Release),
        2 => map.atomic_u16(at).store(bits as u16, Ordering::Release),
        4 => map.atomic_u32(at).store(bits as u32, Ordering::Release),
        _ => map.atomic_u64(at).store(bits, Ordering::Release),
    }
}

/// The elements of a shared array of `len` elements of `T` starting at `at`: shared by the
/// four types below.
#[derive(Debug, Clone)]
struct Elements<T> {
    seg: Arc<Segment>,
    at: usize,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Shareable> Elements<T> {
    fn make(kind: Kind, at: usize, values: &[T]) -> Result<Elements<T>, ShmError> {
        let bytes = values.len().checked_mul(T::WIDTH).filter(|&b| b <= isize::MAX as usize);
        let bytes = bytes.ok_or(ShmError::InvalidSize { size: u64::MAX })?;
        let seg = Segment::object(kind, values.len() as u64, at - PAYLOAD + bytes.max(1))?;
        let e = Elements { seg: Arc::new(seg), at, len: values.len(), _t: PhantomData };
        for (i, &v) in values.iter().enumerate() {
            store(e.seg.map(), e.at + i * T::WIDTH, v);
        }
        Ok(e)
    }

    fn claim(fd: RawFd, kind: Kind, at: usize) -> Result<Elements<T>, ShmError> {
        let (seg, len) = Segment::claim_object(fd, kind)?;
        let len = usize::try_from(len).map_err(|_| ShmError::InvalidSize { size: len })?;
        let fits = len.checked_mul(T::WIDTH).and_then(|b| b.checked_add(at));
        if fits.is_none_or(|end| end > seg.map().len()) {
            return Err(ShmError::InvalidSize { size: seg.map().len() as u64 });
        }
        Ok(Elements { seg: Arc::new(seg), at, len, _t: PhantomData })
    }

    fn get(&self, i: usize) -> Option<T> {
        (i < self.len).then(|| load(self.seg.map(), self.at + i * T::WIDTH))
    }

    fn set(&self, i: usize, value: T) -> Result<(), ShmError> {
        if i >= self.len {
            return Err(ShmError::OutOfBounds { offset: i, len: 1, size: self.len });
        }
        store(self.seg.map(), self.at + i * T::WIDTH, value);
        Ok(())
    }

    fn to_vec(&self) -> Vec<T> {
        self.read(0, self.len)
    }

    /// Elements `start..end`, known to be in bounds.
    fn read(&self, start: usize, end: usize) -> Vec<T> {
        (start..end).map(|i| load(self.seg.map(), self.at + i * T::WIDTH)).collect()
    }

    fn slice(&self, range: impl RangeBounds<usize>) -> Result<Vec<T>, ShmError> {
        let start = match range.start_bound() {
            Bound::Included(&s) => Some(s),
            Bound::Excluded(&s) => s.checked_add(1),
            Bound::Unbounded => Some(0),
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.checked_add(1),
            Bound::Excluded(&e) => Some(e),
            Bound::Unbounded => Some(self.len),
        };
        match (start, end) {
            (Some(s), Some(e)) if s <= e && e <= self.len => Ok(self.read(s, e)),
            (s, e) => {
                let offset = s.unwrap_or(usize::MAX);
                let len = e.unwrap_or(usize::MAX).saturating_sub(offset);
                Err(ShmError::OutOfBounds { offset, len, size: self.len })
            }
        }
    }

    fn write_from(&self, start: usize, values: &[T]) -> Result<(), ShmError> {
        match start.checked_add(values.len()) {
            Some(end) if end <= self.len => {}
            _ => {
                return Err(ShmError::OutOfBounds {
                    offset: start,
                    len: values.len(),
                    size: self.len,
                });
            }
        }
        for (i, &v) in values.iter().enumerate() {
            store(self.seg.map(), self.at + (start + i) * T::WIDTH, v);
        }
        Ok(())
    }
}

/// Where an array's elements start: after its lock's cell.
const LOCKED_AT: usize = PAYLOAD + MUTEX_SIZE;

/// Where a `Value`'s number lives: in its lock's cell (past the 24 bytes an `RLock` uses), so
/// that a holder's increment moves one cache line between CPUs, not two.
const VALUE_AT: usize = PAYLOAD + 32;

macro_rules! descriptor_impls {
    ($($ty:ident),*) => {$(
        impl<T> AsFd for $ty<T> {
            /// The object's segment, to list in `Process::inherit_fds`.
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.e.seg.as_fd()
            }
        }
        impl<T> AsRawFd for $ty<T> {
            fn as_raw_fd(&self) -> RawFd {
                self.e.seg.as_fd().as_raw_fd()
            }
        }
    )*};
}

/// One number in shared memory, without a lock (CPython's `RawValue`). A clone is the same
/// value.
///
/// ```standalone_crate
/// let hits = pifork::RawValue::new(0u32)?;
/// hits.set(hits.get() + 1);
/// assert_eq!(hits.get(), 1);
/// # Ok::<(), pifork::ShmError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RawValue<T> {
    e: Elements<T>,
}

impl<T: Shareable> RawValue<T> {
    /// A new shared value holding `value`.
    pub fn new(value: T) -> Result<RawValue<T>, ShmError> {
        Ok(RawValue { e: Elements::make(Kind::RawValue(T::TYPECODE), PAYLOAD, &[value])? })
    }

    /// Claims the value the parent handed down under the number `fd` (listed in its
    /// `Process::inherit_fds`).
    pub fn from_inherited(fd: RawFd) -> Result<RawValue<T>, ShmError> {
        Ok(RawValue { e: Elements::claim(fd, Kind::RawValue(T::TYPECODE), PAYLOAD)? })
    }

    /// The value (one atomic load, acquire ordering).
    pub fn get(&self) -> T {
        self.e.get(0).expect("one element")
    }

    /// Sets the value (one atomic store, release ordering).
    pub fn set(&self, value: T) {
        self.e.set(0, value).expect("one element");
    }
}

/// One number in shared memory with a recursive lock (CPython's `Value(typecode, x)`, whose
/// `lock=True` default makes an `RLock`). A clone is the same value and lock.
///
/// ```standalone_crate
/// let counter = pifork::Value::new(0i64)?;
/// {
///     let _held = counter.get_lock().lock();
///     counter.set(counter.get() + 1); // atomic with respect to others holding the lock
/// }
/// assert_eq!(counter.get(), 1);
/// # Ok::<(), pifork::ShmError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Value<T> {
    e: Elements<T>,
    lock: RLock,
}

impl<T: Shareable> Value<T> {
    /// A new shared value holding `value`, with its own lock (in the same segment).
    pub fn new(value: T) -> Result<Value<T>, ShmError> {
        let e = Elements::make(Kind::Value(T::TYPECODE), VALUE_AT, &[value])?;
        let lock = RLock::within(e.seg.clone(), PAYLOAD);
        Ok(Value { e, lock })
    }

    /// Claims the value (and its lock) the parent handed down under the number `fd` (listed
    /// in its `Process::inherit_fds`).
    pub fn from_inherited(fd: RawFd) -> Result<Value<T>, ShmError> {
        let e = Elements::claim(fd, Kind::Value(T::TYPECODE), VALUE_AT)?;
        let lock = RLock::within(e.seg.clone(), PAYLOAD);
        Ok(Value { e, lock })
    }

    /// The value (one atomic load, acquire ordering; takes no lock).
    pub fn get(&self) -> T {
        self.e.get(0).expect("one element")
    }

    /// Sets the value (one atomic store, release ordering; takes no lock).
    pub fn set(&self, value: T) {
        self.e.set(0, value).expect("one element");
    }

    /// The value's lock, for read-modify-write sequences (CPython's `get_lock()`).
    pub fn get_lock(&self) -> &RLock {
        &self.lock
    }
}

/// A fixed number of numbers in shared memory, without a lock (CPython's `RawArray`). A clone
/// is the same array.
///
/// ```standalone_crate
/// let a = pifork::RawArray::new(&[1.5f64, 2.5])?;
/// a.set(1, 4.0)?;
/// assert_eq!(a.to_vec(), [1.5, 4.0]);
/// assert_eq!(a.get(2), None);
/// # Ok::<(), pifork::ShmError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RawArray<T> {
    e: Elements<T>,
}

/// A fixed number of numbers in shared memory with a recursive lock (CPython's
/// `Array(typecode, init)`). A clone is the same array and lock.
///
/// ```standalone_crate
/// let partial = pifork::Array::<f64>::zeroed(4)?;
/// {
///     let _held = partial.get_lock().lock();
///     partial.set(2, 0.25)?;
/// }
/// assert_eq!(partial.to_vec(), [0.0, 0.0, 0.25, 0.0]);
/// # Ok::<(), pifork::ShmError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Array<T> {
    e: Elements<T>,
    lock: RLock,
}

macro_rules! array_methods {
    ($ty:ident) => {
        impl<T: Shareable> $ty<T> {
            /// The number of elements.
            pub fn len(&self) -> usize {
                self.e.len
            }

            /// Whether the array has no elements.
            pub fn is_empty(&self) -> bool {
                self.e.len == 0
            }

            /// Element `i` (one atomic load, acquire ordering); `None` past the end.
            pub fn get(&self, i: usize) -> Option<T> {
                self.e.get(i)
            }

            /// Sets element `i` (one atomic store, release ordering); past the end is
            /// [`ShmError::OutOfBounds`].
            pub fn set(&self, i: usize, value: T) -> Result<(), ShmError> {
                self.e.set(i, value)
            }

            /// Every element, in order (one load each: concurrent writes may show in part).
            pub fn to_vec(&self) -> Vec<T> {
                self.e.to_vec()
            }

            /// The elements in `range`, in order (CPython's `arr[2:7]`). A range past the end
            /// or backwards is [`ShmError::OutOfBounds`], as a Rust slice refuses it (CPython
            /// clips it).
            pub fn slice(&self, range: impl RangeBounds<usize>) -> Result<Vec<T>, ShmError> {
                self.e.slice(range)
            }

            /// Sets the elements from `start` on to `values` (CPython's slice assignment).
            pub fn write_from(&self, start: usize, values: &[T]) -> Result<(), ShmError> {
                self.e.write_from(start, values)
            }
        }
    };
}

array_methods!(RawArray);
array_methods!(Array);

impl<T: Shareable> RawArray<T> {
    /// A new shared array holding `values`.
    pub fn new(values: &[T]) -> Result<RawArray<T>, ShmError> {
        Ok(RawArray { e: Elements::make(Kind::RawArray(T::TYPECODE), PAYLOAD, values)? })
    }

    /// A new shared array of `len` zeros (`false`s).
    pub fn zeroed(len: usize) -> Result<RawArray<T>, ShmError> {
        RawArray::new(&vec![T::from_bits(0); len])
    }

    /// Claims the array the parent handed down under the number `fd` (listed in its
    /// `Process::inherit_fds`).
    pub fn from_inherited(fd: RawFd) -> Result<RawArray<T>, ShmError> {
        Ok(RawArray { e: Elements::claim(fd, Kind::RawArray(T::TYPECODE), PAYLOAD)? })
    }
}

impl<T: Shareable> Array<T> {
    /// A new shared array holding `values`, with its own lock (in the same segment).
    pub fn new(values: &[T]) -> Result<Array<T>, ShmError> {
        let e = Elements::make(Kind::Array(T::TYPECODE), LOCKED_AT, values)?;
        let lock = RLock::within(e.seg.clone(), PAYLOAD);
        Ok(Array { e, lock })
    }

    /// A new shared array of `len` zeros (`false`s), with its own lock.
    pub fn zeroed(len: usize) -> Result<Array<T>, ShmError> {
        Array::new(&vec![T::from_bits(0); len])
    }

    /// Claims the array (and its lock) the parent handed down under the number `fd` (listed
    /// in its `Process::inherit_fds`).
    pub fn from_inherited(fd: RawFd) -> Result<Array<T>, ShmError> {
        let e = Elements::claim(fd, Kind::Array(T::TYPECODE), LOCKED_AT)?;
        let lock = RLock::within(e.seg.clone(), PAYLOAD);
        Ok(Array { e, lock })
    }

    /// The array's lock (CPython's `get_lock()`).
    pub fn get_lock(&self) -> &RLock {
        &self.lock
    }
}

descriptor_impls!(RawValue, Value, RawArray, Array);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_its_extremes() {
        fn check<T: Shareable + PartialEq + std::fmt::Debug>(values: &[T]) {
            let a = RawArray::new(values).unwrap();
            assert_eq!(a.to_vec(), values);
            let v = Value::new(values[0]).unwrap();
            v.set(values[values.len() - 1]);
            assert_eq!(v.get(), values[values.len() - 1]);
        }
        check(&[i8::MIN, -1, 0, i8::MAX]);
        check(&[0u8, 255]);
        check(&[i16::MIN, -1, i16::MAX]);
        check(&[0u16, u16::MAX]);
        check(&[i32::MIN, -1, i32::MAX]);
        check(&[0u32, u32::MAX]);
        check(&[i64::MIN, -1, i64::MAX]);
        check(&[0u64, u64::MAX]);
        check(&[isize::MIN, isize::MAX]);
        check(&[0usize, usize::MAX]);
        check(&[-1.5f32, f32::MAX, f32::MIN_POSITIVE]);
        check(&[-0.0f64, 1e300, f64::INFINITY]);
        check(&[true, false, true]);
    }

    #[test]
    fn neighbours_are_untouched() {
        let a = RawArray::new(&[-1i8; 5]).unwrap();
        a.set(2, 0).unwrap();
        assert_eq!(a.to_vec(), [-1, -1, 0, -1, -1]);
        let b = Array::new(&[u16::MAX; 3]).unwrap();
        b.write_from(1, &[1, 2]).unwrap();
        assert_eq!(b.to_vec(), [u16::MAX, 1, 2]);
        assert_eq!(
            b.write_from(2, &[1, 2]),
            Err(ShmError::OutOfBounds { offset: 2, len: 2, size: 3 })
        );
        assert_eq!(b.set(3, 0), Err(ShmError::OutOfBounds { offset: 3, len: 1, size: 3 }));
    }

    #[test]
    fn an_empty_array_is_fine() {
        let a = Array::<f64>::new(&[]).unwrap();
        assert!(a.is_empty());
        assert_eq!(a.get(0), None);
        assert!(a.to_vec().is_empty());
    }

    #[test]
    fn the_lock_is_in_the_same_segment() {
        let v = Value::new(1u8).unwrap();
        assert_eq!(v.get_lock().as_raw_fd(), v.as_raw_fd());
        let g = v.get_lock().lock();
        assert!(v.get_lock().is_owned());
        drop(g);
        assert!(!v.get_lock().is_owned());
        assert_eq!(v.get(), 1, "the lock's cell does not overlap the value");
    }
}
