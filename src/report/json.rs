//! The JSON the reports print, written without a serialisation framework: an [`Object`] or an
//! [`Array`] is built value by value and nests; strings are escaped in one place, [`string`];
//! numbers are written in the form each report has always used, the shortest that reads back
//! the same (`f64`) or a fixed number of decimals ([`Fixed`]).
//!
//! ```
//! use pifork_pi::report::json::{Array, Fixed, Object};
//!
//! let workers: Array = [1u64, 2].into_iter().collect();
//! let json = Object::new()
//!     .field("name", "pi \"4\"")
//!     .field("estimate", 3.25)
//!     .field("ms", Fixed(1.23456, 3))
//!     .field("cpu", None::<usize>)
//!     .field("workers", workers)
//!     .finish();
//! assert_eq!(
//!     json,
//!     r#"{"name":"pi \"4\"","estimate":3.25,"ms":1.235,"cpu":null,"workers":[1,2]}"#
//! );
//! ```
//!
//! A number that is not finite is written as Rust prints it, `NaN`, `inf` or `-inf`, as the
//! reports always have: they are not JSON, and a report has one only where a measurement
//! divided by zero.

use std::fmt::Write;

/// A value the writer can write.
pub trait Value {
    /// Appends the JSON text of `self` to `out`.
    fn write_json(&self, out: &mut String);
}

/// An object, written as its fields are added; [`Object::finish`] closes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Object {
    /// The text so far: `{` and the fields, without the closing brace.
    text: String,
}

impl Object {
    /// An object without fields.
    pub fn new() -> Object {
        Object { text: String::from("{") }
    }

    /// The object with `key` (escaped) set to `value` after the fields it has.
    pub fn field(mut self, key: &str, value: impl Value) -> Object {
        if self.text.len() > 1 {
            self.text.push(',');
        }
        write_string(&mut self.text, key);
        self.text.push(':');
        value.write_json(&mut self.text);
        self
    }

    /// The object's JSON text.
    pub fn finish(mut self) -> String {
        self.text.push('}');
        self.text
    }
}

impl Default for Object {
    fn default() -> Object {
        Object::new()
    }
}

impl Value for Object {
    fn write_json(&self, out: &mut String) {
        out.push_str(&self.text);
        out.push('}');
    }
}

/// An array, written as its items are added; [`Array::finish`] closes it. It also collects
/// from an iterator of values.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Array {
    /// The text so far: `[` and the items, without the closing bracket.
    text: String,
}

impl Array {
    /// An array without items.
    pub fn new() -> Array {
        Array { text: String::from("[") }
    }

    /// The array with `value` after the items it has.
    pub fn item(mut self, value: impl Value) -> Array {
        if self.text.len() > 1 {
            self.text.push(',');
        }
        value.write_json(&mut self.text);
        self
    }

    /// The array's JSON text.
    pub fn finish(mut self) -> String {
        self.text.push(']');
        self.text
    }
}

impl Default for Array {
    fn default() -> Array {
        Array::new()
    }
}

impl<V: Value> FromIterator<V> for Array {
    fn from_iter<I: IntoIterator<Item = V>>(items: I) -> Array {
        items.into_iter().fold(Array::new(), Array::item)
    }
}

impl Value for Array {
    fn write_json(&self, out: &mut String) {
        out.push_str(&self.text);
        out.push(']');
    }
}

/// A number written with this many decimals, as `format!("{:.N}")` does: `Fixed(2.0, 3)` is
/// `2.000`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fixed(pub f64, pub usize);

impl Value for Fixed {
    fn write_json(&self, out: &mut String) {
        let _ = write!(out, "{:.*}", self.1, self.0);
    }
}

/// The shortest decimal form that reads back as the same `f64` (Rust's `{:?}`): `3.25`,
/// `0.0`, `-1e-7`.
impl Value for f64 {
    fn write_json(&self, out: &mut String) {
        let _ = write!(out, "{self:?}");
    }
}

/// Implements [`Value`] for integer types: their decimal digits.
macro_rules! integers {
    ($($t:ty),*) => {$(
        impl Value for $t {
            fn write_json(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}

integers!(u32, u64, usize, i32, i64);

impl Value for bool {
    fn write_json(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

impl Value for str {
    fn write_json(&self, out: &mut String) {
        write_string(out, self);
    }
}

impl Value for String {
    fn write_json(&self, out: &mut String) {
        write_string(out, self);
    }
}

/// `null` for `None`.
impl<T: Value> Value for Option<T> {
    fn write_json(&self, out: &mut String) {
        match self {
            Some(value) => value.write_json(out),
            None => out.push_str("null"),
        }
    }
}

impl<T: Value + ?Sized> Value for &T {
    fn write_json(&self, out: &mut String) {
        (**self).write_json(out);
    }
}

/// `text` as a JSON string, quotes included (see [`write_string`]).
pub fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    write_string(&mut out, text);
    out
}

/// Appends `text` as a JSON string, quotes included: `"` and `\` escaped with a backslash, a
/// newline as `\n`, the other control characters below U+0020 as `\u00XX`; everything else,
/// non-ASCII included, as it is.
pub fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_once() {
        assert_eq!(string("\t\r\u{1f}"), "\"\\u0009\\u000d\\u001f\"");
        assert_eq!(string("\u{7f} é ☃ 😀"), "\"\u{7f} é ☃ 😀\"");
        assert_eq!(string(""), "\"\"");
        assert_eq!(string("\\\""), "\"\\\\\\\"\"");
        let mut out = String::from("[");
        write_string(&mut out, "a\nb");
        assert_eq!(out, "[\"a\\nb\"");
    }

    #[test]
    fn keys_are_escaped_like_values() {
        let json = Object::new().field("a\"b", "c\\d").finish();
        assert_eq!(json, "{\"a\\\"b\":\"c\\\\d\"}");
    }

    #[test]
    fn objects_and_arrays_nest() {
        assert_eq!(Object::new().finish(), "{}");
        assert_eq!(Array::new().finish(), "[]");
        let inner = Object::new().field("x", 1u64).field("y", Array::new());
        let items: Array = [true, false].into_iter().collect();
        let json = Object::new()
            .field("inner", inner)
            .field("empty", Object::new())
            .field("items", items.item(Object::new().field("z", "w")))
            .field("strings", ["a", "b"].iter().collect::<Array>())
            .finish();
        assert_eq!(
            json,
            "{\"inner\":{\"x\":1,\"y\":[]},\"empty\":{},\
             \"items\":[true,false,{\"z\":\"w\"}],\"strings\":[\"a\",\"b\"]}"
        );
    }

    #[test]
    fn numbers_keep_their_forms() {
        let json = Object::new()
            .field("u64", u64::MAX)
            .field("i32", -15i32)
            .field("i64", i64::MIN)
            .field("usize", 7usize)
            .field("u32", 2u32)
            .field("short", 3.1415925535897933)
            .field("whole", 0.0)
            .field("small", -9.999999983634211e-8)
            .field("large", 1e300)
            .field("fixed", Fixed(119.456_789, 3))
            .field("rounded", Fixed(2.0, 3))
            .field("zero", Fixed(0.0, 4))
            .field("none", None::<f64>)
            .field("some", Some(Fixed(0.5, 1)))
            .finish();
        assert_eq!(
            json,
            "{\"u64\":18446744073709551615,\"i32\":-15,\"i64\":-9223372036854775808,\
             \"usize\":7,\"u32\":2,\"short\":3.1415925535897933,\"whole\":0.0,\
             \"small\":-9.999999983634211e-8,\"large\":1e300,\"fixed\":119.457,\
             \"rounded\":2.000,\"zero\":0.0000,\"none\":null,\"some\":0.5}"
        );
    }

    #[test]
    fn non_finite_numbers_are_written_as_rust_prints_them() {
        let json = Array::new()
            .item(f64::NAN)
            .item(f64::INFINITY)
            .item(f64::NEG_INFINITY)
            .item(Fixed(f64::NAN, 3))
            .item(Fixed(f64::INFINITY, 3))
            .item(Fixed(f64::NEG_INFINITY, 1))
            .finish();
        assert_eq!(json, "[NaN,inf,-inf,NaN,inf,-inf]");
    }
}
