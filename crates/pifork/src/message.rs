//! A small, fixed binary encoding for values that travel between processes (results and
//! channel messages): little-endian scalars, length-prefixed byte strings, tuples in order.

use crate::error::{Error, Result};

/// A value that can be sent from one process to another.
pub trait Message: Sized {
    /// The length of every value's encoding, when all values of the type encode to that many
    /// bytes (numbers, tuples of them): a batch of them is then read without asking each its
    /// length. `None` (the default) makes no such promise.
    const SIZE: Option<usize> = None;
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes one value from the front of `input`, advancing it.
    fn decode(input: &mut &[u8]) -> Result<Self>;
    /// Writes the encoding of `self` into `out`, which is [`Message::SIZE`] bytes long (asked
    /// only of a type that has a `SIZE`): a batch of values is then written in one pass. The
    /// default encodes into a buffer and copies it ([`encode_by_buffer`]).
    fn encode_fixed(&self, out: &mut [u8]) {
        encode_by_buffer(self, out);
    }
    /// Decodes the values laid end to end in `data`, each [`Message::SIZE`] bytes long (asked
    /// only of a type that has a `SIZE` above zero), appending them to `out`: a batch of values
    /// is then read in one pass. The default decodes them one by one; numbers, whose every bit
    /// pattern is a value, read them in a loop with no exit the compiler can widen.
    fn decode_run(data: &[u8], out: &mut Vec<Self>) -> Result<()> {
        let size =
            Self::SIZE.filter(|&s| s > 0).ok_or(Error::Decode { reason: "no fixed size" })?;
        if !data.len().is_multiple_of(size) {
            return Err(Error::Decode { reason: "truncated" });
        }
        out.reserve(data.len() / size);
        for bytes in data.chunks_exact(size) {
            out.push(from_bytes(bytes)?);
        }
        Ok(())
    }
}

/// Encodes `value` into a fresh buffer and copies it into `out` (the default
/// [`Message::encode_fixed`]); panics if the encoding's length is not `out`'s.
pub fn encode_by_buffer<T: Message>(value: &T, out: &mut [u8]) {
    let mut buf = Vec::with_capacity(out.len());
    value.encode(&mut buf);
    out.copy_from_slice(&buf);
}

/// Encodes a value into a fresh buffer.
pub fn to_bytes<T: Message>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    value.encode(&mut out);
    out
}

/// Decodes a value that must use all of `bytes`.
pub fn from_bytes<T: Message>(mut bytes: &[u8]) -> Result<T> {
    let value = T::decode(&mut bytes)?;
    if bytes.is_empty() { Ok(value) } else { Err(Error::Decode { reason: "trailing bytes" }) }
}

/// The sum of `sizes`, if each is known (a [`Message::SIZE`] made of its parts').
pub const fn sum_sizes(sizes: &[Option<usize>]) -> Option<usize> {
    let mut total = 0;
    let mut i = 0;
    while i < sizes.len() {
        match sizes[i] {
            Some(n) => total += n,
            None => return None,
        }
        i += 1;
    }
    Some(total)
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if input.len() < n {
        return Err(Error::Decode { reason: "truncated" });
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

macro_rules! scalar {
    ($($t:ty),*) => {$(
        impl Message for $t {
            const SIZE: Option<usize> = Some(std::mem::size_of::<$t>());
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            #[inline]
            fn encode_fixed(&self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
            fn decode(input: &mut &[u8]) -> Result<Self> {
                let bytes = take(input, std::mem::size_of::<$t>())?;
                Ok(<$t>::from_le_bytes(bytes.try_into().expect("length checked by take")))
            }
            fn decode_run(data: &[u8], out: &mut Vec<Self>) -> Result<()> {
                const N: usize = std::mem::size_of::<$t>();
                if !data.len().is_multiple_of(N) {
                    return Err(Error::Decode { reason: "truncated" });
                }
                // Every chunk is N bytes long: the default is never taken.
                out.extend(
                    data.chunks_exact(N).map(|b| b.try_into().map_or(<$t>::default(), <$t>::from_le_bytes)),
                );
                Ok(())
            }
        }
    )*};
}

scalar!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, f32, f64);

impl Message for usize {
    const SIZE: Option<usize> = Some(8);
    fn encode(&self, out: &mut Vec<u8>) {
        (*self as u64).encode(out);
    }
    #[inline]
    fn encode_fixed(&self, out: &mut [u8]) {
        (*self as u64).encode_fixed(out);
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        usize::try_from(u64::decode(input)?).map_err(|_| Error::Decode { reason: "usize overflow" })
    }
}

impl Message for isize {
    const SIZE: Option<usize> = Some(8);
    fn encode(&self, out: &mut Vec<u8>) {
        (*self as i64).encode(out);
    }
    #[inline]
    fn encode_fixed(&self, out: &mut [u8]) {
        (*self as i64).encode_fixed(out);
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        isize::try_from(i64::decode(input)?).map_err(|_| Error::Decode { reason: "isize overflow" })
    }
}

impl Message for bool {
    const SIZE: Option<usize> = Some(1);
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    #[inline]
    fn encode_fixed(&self, out: &mut [u8]) {
        u8::from(*self).encode_fixed(out);
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        match u8::decode(input)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Error::Decode { reason: "bad bool" }),
        }
    }
}

impl Message for () {
    const SIZE: Option<usize> = Some(0);
    fn encode(&self, _out: &mut Vec<u8>) {}
    fn encode_fixed(&self, _out: &mut [u8]) {}
    fn decode(_input: &mut &[u8]) -> Result<Self> {
        Ok(())
    }
}

/// Sequences: a u64 count, then the items (a `Vec<u8>` is a length-prefixed byte string).
impl<T: Message> Message for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u64).encode(out);
        for item in self {
            item.encode(out);
        }
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        let len = usize::decode(input)?;
        // Every item takes at least one byte, except zero-sized ones: never trust `len` for
        // more room than the input could fill.
        let mut items = Vec::with_capacity(len.min(input.len()));
        for _ in 0..len {
            items.push(T::decode(input)?);
        }
        Ok(items)
    }
}

impl Message for String {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u64).encode(out);
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        let len = usize::decode(input)?;
        String::from_utf8(take(input, len)?.to_vec())
            .map_err(|_| Error::Decode { reason: "invalid UTF-8" })
    }
}

impl<T: Message> Message for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
    fn decode(input: &mut &[u8]) -> Result<Self> {
        match u8::decode(input)? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(input)?)),
            _ => Err(Error::Decode { reason: "bad option tag" }),
        }
    }
}

macro_rules! tuple {
    ($($name:ident),+) => {
        impl<$($name: Message),+> Message for ($($name,)+) {
            const SIZE: Option<usize> = sum_sizes(&[$($name::SIZE),+]);
            #[allow(non_snake_case)]
            fn encode(&self, out: &mut Vec<u8>) {
                let ($($name,)+) = self;
                $($name.encode(out);)+
            }
            #[allow(non_snake_case)]
            #[inline]
            fn encode_fixed(&self, out: &mut [u8]) {
                if Self::SIZE != Some(out.len()) {
                    return encode_by_buffer(self, out);
                }
                let ($($name,)+) = self;
                let mut at = 0;
                $(
                    let n = <$name as Message>::SIZE.unwrap_or(0);
                    $name.encode_fixed(&mut out[at..at + n]);
                    at += n;
                )+
                let _ = at;
            }
            fn decode(input: &mut &[u8]) -> Result<Self> {
                Ok(($($name::decode(input)?,)+))
            }
        }
    };
}

tuple!(A);
tuple!(A, B);
tuple!(A, B, C);
tuple!(A, B, C, D);
tuple!(A, B, C, D, E);
tuple!(A, B, C, D, E, F);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(from_bytes::<f64>(&to_bytes(&-0.1f64)).unwrap().to_bits(), (-0.1f64).to_bits());
        assert_eq!(from_bytes::<u64>(&to_bytes(&u64::MAX)).unwrap(), u64::MAX);
        assert_eq!(from_bytes::<i32>(&to_bytes(&-7i32)).unwrap(), -7);
        let bytes = vec![0u8, 255, 1, 2];
        assert_eq!(to_bytes(&bytes), [4, 0, 0, 0, 0, 0, 0, 0, 0, 255, 1, 2]);
        assert_eq!(from_bytes::<Vec<u8>>(&to_bytes(&bytes)).unwrap(), bytes);
        let fds = vec![3i32, -1];
        assert_eq!(from_bytes::<Vec<i32>>(&to_bytes(&fds)).unwrap(), fds);
        let t = (1.5f64, 3u64, String::from("é"), Some(true));
        assert_eq!(from_bytes::<(f64, u64, String, Option<bool>)>(&to_bytes(&t)).unwrap(), t);
    }

    // The derive's absolute paths (`::pifork::...`) resolve inside the library too.
    #[cfg(feature = "derive")]
    #[test]
    fn derives_inside_the_library() {
        #[derive(crate::Message, Debug, PartialEq)]
        enum Reply {
            Done { code: i32 },
            Lines(Vec<String>),
        }
        let reply = Reply::Lines(vec!["a".into()]);
        assert_eq!(from_bytes::<Reply>(&to_bytes(&reply)).unwrap(), reply);
        assert_eq!(to_bytes(&Reply::Done { code: -1 }), [0, 0, 0, 0, 255, 255, 255, 255]);
    }

    #[test]
    fn fixed_sizes_are_the_encodings_lengths() {
        assert_eq!(u16::SIZE, Some(to_bytes(&7u16).len()));
        assert_eq!(<(u64, f32, bool, ())>::SIZE, Some(to_bytes(&(1u64, 2f32, true, ())).len()));
        assert_eq!(usize::SIZE, Some(to_bytes(&3usize).len()));
        assert_eq!(<(u8, String)>::SIZE, None);
        assert_eq!(<Option<u8>>::SIZE, None);
        assert_eq!(<Vec<u8>>::SIZE, None);
    }

    /// Writes `value` with `encode_fixed` into a slice of its `SIZE`.
    fn fixed<T: Message>(value: &T) -> Vec<u8> {
        let mut out = vec![0xAA; T::SIZE.expect("a fixed size")];
        value.encode_fixed(&mut out);
        out
    }

    #[test]
    fn fixed_encodings_are_the_encodings() {
        assert_eq!(fixed(&0x0102_0304u32), to_bytes(&0x0102_0304u32));
        assert_eq!(fixed(&-5isize), to_bytes(&-5isize));
        assert_eq!(fixed(&usize::MAX), to_bytes(&usize::MAX));
        assert_eq!(fixed(&true), to_bytes(&true));
        assert_eq!(fixed(&()), to_bytes(&()));
        let t = (1u8, -2.5f64, (false, 7u16), ());
        assert_eq!(fixed(&t), to_bytes(&t));
        // A type that keeps the default: encoded by way of a buffer, the same bytes.
        struct Pair(u16);
        impl Message for Pair {
            const SIZE: Option<usize> = Some(4);
            fn encode(&self, out: &mut Vec<u8>) {
                self.0.encode(out);
                (!self.0).encode(out);
            }
            fn decode(input: &mut &[u8]) -> Result<Self> {
                let (a, _) = <(u16, u16)>::decode(input)?;
                Ok(Pair(a))
            }
        }
        assert_eq!(fixed(&Pair(3)), to_bytes(&Pair(3)));
        assert_eq!(fixed(&(Pair(9), 1u8)), to_bytes(&(Pair(9), 1u8)));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(from_bytes::<u64>(&[1, 2, 3]), Err(Error::Decode { reason: "truncated" }));
        assert_eq!(from_bytes::<u8>(&[1, 2]), Err(Error::Decode { reason: "trailing bytes" }));
        assert_eq!(from_bytes::<bool>(&[7]), Err(Error::Decode { reason: "bad bool" }));
        let huge = to_bytes(&u64::MAX);
        assert_eq!(from_bytes::<Vec<u8>>(&huge), Err(Error::Decode { reason: "truncated" }));
    }

    fn run<T: Message>(values: &[T]) -> Vec<u8> {
        values.iter().flat_map(to_bytes).collect()
    }

    #[test]
    fn runs_decode_as_their_values_one_by_one() {
        let numbers = [0u64, 1, u64::MAX, 1 << 40];
        let mut out = vec![9u64];
        u64::decode_run(&run(&numbers), &mut out).unwrap();
        assert_eq!(out, [9, 0, 1, u64::MAX, 1 << 40]);
        let floats = [1.5f32, -0.0, f32::INFINITY];
        let mut out = Vec::new();
        f32::decode_run(&run(&floats), &mut out).unwrap();
        assert_eq!(out.iter().map(|f| f.to_bits()).collect::<Vec<_>>(), floats.map(f32::to_bits));
        // Through the default: tuples and checked types.
        let pairs = [(1u8, -2i32), (3, 4)];
        let mut out = Vec::new();
        <(u8, i32)>::decode_run(&run(&pairs), &mut out).unwrap();
        assert_eq!(out, pairs);
        let mut out = Vec::new();
        assert_eq!(
            bool::decode_run(&[1, 0, 7], &mut out),
            Err(Error::Decode { reason: "bad bool" })
        );
        let mut out = Vec::new();
        assert_eq!(u32::decode_run(&[0; 7], &mut out), Err(Error::Decode { reason: "truncated" }));
        assert_eq!(
            <(u8, u8)>::decode_run(&[0; 3], &mut Vec::new()),
            Err(Error::Decode { reason: "truncated" })
        );
        assert!(out.is_empty());
        let mut out = Vec::new();
        assert!(String::decode_run(&run(&[String::new()]), &mut out).is_err());
    }
}
