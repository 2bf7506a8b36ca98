//! `#[derive(Message)]`: round trips of structs and enums of every shape, generics, nesting
//! and the built-in field types, the documented wire format byte for byte, and typed errors
//! for input that is cut short or names a variant the enum does not have.

use std::fmt::Debug;

use pifork::Error;
use pifork::Message;
use pifork::message::{from_bytes, to_bytes};

#[derive(Message, Debug, PartialEq)]
struct Named {
    id: u32,
    name: String,
    ratio: f64,
    // Field names that are also the names of the generated code's locals.
    out: bool,
    input: Option<i8>,
}

#[derive(Message, Debug, PartialEq)]
struct Tuple(u8, i64, Vec<u16>);

#[derive(Message, Debug, PartialEq)]
struct Unit;

#[derive(Message, Debug, PartialEq)]
enum Shape {
    Empty,
    Circle(f64),
    Rect { w: u32, h: u32 },
    // Recursive through a Vec.
    Labelled(String, Vec<Shape>),
}

#[derive(Message, Debug, PartialEq)]
struct Pair<A, B> {
    first: A,
    second: B,
}

#[derive(Message, Debug, PartialEq)]
enum Either<L, R>
where
    L: Clone,
{
    Left(L),
    Right { value: R },
}

#[derive(Message, Debug, PartialEq)]
struct Wrapper<T>(Vec<Option<T>>);

#[derive(Message, Debug, PartialEq)]
struct Nested {
    shapes: Vec<Shape>,
    pair: Pair<Tuple, Option<Unit>>,
    tagged: (Either<u8, String>, Named),
}

#[derive(Message, Debug, PartialEq)]
enum Never {}

/// Explicit discriminants do not change the tag: the index among the variants does.
#[derive(Message, Debug, PartialEq, Clone, Copy)]
#[repr(u8)]
enum Level {
    Low = 10,
    High = 200,
}

fn round_trip<T: Message + PartialEq + Debug>(value: T) {
    let bytes = to_bytes(&value);
    assert_eq!(from_bytes::<T>(&bytes).unwrap(), value, "bytes {bytes:?}");
}

fn named() -> Named {
    Named { id: 7, name: "é and more".into(), ratio: -0.25, out: true, input: Some(-3) }
}

#[test]
fn structs_of_every_shape_round_trip() {
    round_trip(named());
    round_trip(Named { id: 0, name: String::new(), ratio: 0.0, out: false, input: None });
    round_trip(Tuple(255, i64::MIN, vec![1, 2, 65535]));
    round_trip(Tuple(0, 0, Vec::new()));
    round_trip(Unit);
}

#[test]
fn enums_of_every_shape_round_trip() {
    round_trip(Shape::Empty);
    round_trip(Shape::Circle(1.5));
    round_trip(Shape::Rect { w: 3, h: u32::MAX });
    round_trip(Shape::Labelled("box".into(), vec![Shape::Rect { w: 1, h: 2 }, Shape::Empty]));
    round_trip(Level::Low);
    round_trip(Level::High);
}

#[test]
fn generics_and_nesting_round_trip() {
    round_trip(Pair { first: 1u8, second: String::from("two") });
    round_trip(Pair { first: Shape::Circle(2.0), second: vec![Unit, Unit] });
    round_trip(Either::<u64, Vec<String>>::Left(9));
    round_trip(Either::<u64, Vec<String>>::Right { value: vec!["a".into(), "b".into()] });
    round_trip(Wrapper(vec![Some(named()), None]));
    round_trip(Nested {
        shapes: vec![Shape::Empty, Shape::Circle(-1.0), Shape::Rect { w: 0, h: 1 }],
        pair: Pair { first: Tuple(1, 2, vec![3]), second: Some(Unit) },
        tagged: (Either::Right { value: "r".into() }, named()),
    });
}

#[test]
fn the_wire_format_is_the_documented_one() {
    // Fields in declaration order, nothing between them.
    assert_eq!(to_bytes(&Tuple(1, -2, vec![3])), to_bytes(&(1u8, -2i64, vec![3u16])));
    assert_eq!(
        to_bytes(&named()),
        to_bytes(&(7u32, String::from("é and more"), -0.25f64, true, Some(-3i8)))
    );
    assert_eq!(to_bytes(&Unit), Vec::<u8>::new());
    // An enum: the variant's index as a little-endian u32, then its fields.
    assert_eq!(to_bytes(&Shape::Empty), [0, 0, 0, 0]);
    assert_eq!(to_bytes(&Shape::Circle(1.5)), to_bytes(&(1u32, 1.5f64)));
    assert_eq!(to_bytes(&Shape::Rect { w: 5, h: 6 }), [2, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0]);
    assert_eq!(to_bytes(&Level::Low), [0, 0, 0, 0]);
    assert_eq!(to_bytes(&Level::High), [1, 0, 0, 0]);
}

#[test]
fn an_unknown_variant_is_a_decode_error() {
    let unknown = Error::Decode { reason: "unknown variant" };
    assert_eq!(from_bytes::<Shape>(&[4, 0, 0, 0]).unwrap_err(), unknown);
    assert_eq!(from_bytes::<Shape>(&to_bytes(&u32::MAX)).unwrap_err(), unknown);
    assert_eq!(from_bytes::<Level>(&[2, 0, 0, 0]).unwrap_err(), unknown);
    // The bytes of Level::High's discriminant are not its tag.
    assert_eq!(from_bytes::<Level>(&to_bytes(&200u32)).unwrap_err(), unknown);
    // Deep inside a value too.
    let mut bytes = to_bytes(&Pair { first: 1u8, second: Shape::Empty });
    bytes[1] = 9;
    assert_eq!(from_bytes::<Pair<u8, Shape>>(&bytes).unwrap_err(), unknown);
    // An enum without variants decodes nothing, whatever the tag.
    assert_eq!(from_bytes::<Never>(&[0, 0, 0, 0]).unwrap_err(), unknown);
    assert_eq!(from_bytes::<Never>(&[]), Err(Error::Decode { reason: "truncated" }));
}

#[test]
fn truncated_input_is_a_decode_error_at_every_length() {
    let truncated = Err(Error::Decode { reason: "truncated" });
    let value = Nested {
        shapes: vec![Shape::Labelled("x".into(), vec![Shape::Circle(3.0)])],
        pair: Pair { first: Tuple(1, 2, vec![3, 4]), second: None },
        tagged: (Either::Left(5), named()),
    };
    let bytes = to_bytes(&value);
    for len in 0..bytes.len() {
        assert_eq!(from_bytes::<Nested>(&bytes[..len]), truncated, "cut at {len}");
    }
    assert_eq!(from_bytes::<Nested>(&bytes).unwrap(), value);
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(from_bytes::<Nested>(&longer), Err(Error::Decode { reason: "trailing bytes" }));
    // A bad byte inside a built-in field keeps its own reason.
    let mut bad_bool = to_bytes(&named());
    let at = bad_bool.len() - 3; // out: bool, then input: Option<i8> (tag, value)
    bad_bool[at] = 2;
    assert_eq!(from_bytes::<Named>(&bad_bool), Err(Error::Decode { reason: "bad bool" }));
}

#[derive(Message, Debug, PartialEq)]
struct Point {
    x: f64,
    y: f64,
    tag: (u8, bool),
}

#[test]
fn a_struct_of_fixed_fields_has_a_fixed_size() {
    assert_eq!(Point::SIZE, Some(18));
    assert_eq!(to_bytes(&Point { x: 1.0, y: 2.0, tag: (3, true) }).len(), 18);
    assert_eq!(Unit::SIZE, Some(0));
    assert_eq!(<Pair<u32, i16>>::SIZE, Some(6));
    // A field of any length makes the whole of any length; so does every enum.
    assert_eq!(Named::SIZE, None);
    assert_eq!(<Pair<u32, String>>::SIZE, None);
    assert_eq!(Shape::SIZE, None);
}

/// `value` written with `encode_fixed` into a slice of its size.
fn fixed<T: Message>(value: &T) -> Vec<u8> {
    let mut out = vec![0xAA; T::SIZE.expect("a fixed size")];
    value.encode_fixed(&mut out);
    out
}

#[test]
fn a_fixed_struct_writes_its_encoding_in_place() {
    let p = Point { x: 1.5, y: -2.0, tag: (3, true) };
    assert_eq!(fixed(&p), to_bytes(&p));
    assert_eq!(fixed(&Unit), to_bytes(&Unit));
    let pair = Pair { first: 0xDEAD_BEEFu32, second: -7i16 };
    assert_eq!(fixed(&pair), to_bytes(&pair));
    let nested = Pair { first: p, second: (Unit, 9u64) };
    assert_eq!(fixed(&nested), to_bytes(&nested));
}
