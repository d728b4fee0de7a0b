//! Typed access to GGUF metadata values: the [`FromGgufValue`] conversions behind
//! [`super::GgufFile::get_as`] (`&str`, integers of every width with a range check, `f32`,
//! `bool`, slices of typed arrays).
//!
//! Integers convert between widths when the value fits, because GGUF writers disagree on the
//! width of e.g. token ids (`u32` in llama.cpp's converter, `i32` or `u64` elsewhere); every
//! other type must match exactly.

use super::value::{GgufArray, GgufValue};

/// Conversion of a metadata value into a Rust type, for [`GgufFile::get_as`].
pub trait FromGgufValue<'a>: Sized {
    /// The expected type, for error messages.
    const EXPECTED: &'static str;
    fn from_value(v: &'a GgufValue) -> Option<Self>;
}

macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl<'a> FromGgufValue<'a> for $t {
            const EXPECTED: &'static str = concat!("an integer that fits in ", stringify!($t));
            fn from_value(v: &'a GgufValue) -> Option<Self> {
                v.as_integer().and_then(|i| <$t>::try_from(i).ok())
            }
        }
    )*};
}
int_from_value!(u8, i8, u16, i16, u32, i32, u64, i64, usize);

impl<'a> FromGgufValue<'a> for f32 {
    const EXPECTED: &'static str = "f32";
    fn from_value(v: &'a GgufValue) -> Option<Self> {
        match *v {
            GgufValue::F32(x) => Some(x),
            _ => None,
        }
    }
}
impl<'a> FromGgufValue<'a> for f64 {
    const EXPECTED: &'static str = "f32 or f64";
    fn from_value(v: &'a GgufValue) -> Option<Self> {
        match *v {
            GgufValue::F32(x) => Some(x as f64),
            GgufValue::F64(x) => Some(x),
            _ => None,
        }
    }
}
impl<'a> FromGgufValue<'a> for bool {
    const EXPECTED: &'static str = "bool";
    fn from_value(v: &'a GgufValue) -> Option<Self> {
        match *v {
            GgufValue::Bool(b) => Some(b),
            _ => None,
        }
    }
}
impl<'a> FromGgufValue<'a> for &'a str {
    const EXPECTED: &'static str = "string";
    fn from_value(v: &'a GgufValue) -> Option<Self> {
        v.as_str()
    }
}
impl<'a> FromGgufValue<'a> for &'a GgufValue {
    const EXPECTED: &'static str = "any value";
    fn from_value(v: &'a GgufValue) -> Option<Self> {
        Some(v)
    }
}
impl<'a> FromGgufValue<'a> for &'a GgufArray {
    const EXPECTED: &'static str = "array";
    fn from_value(v: &'a GgufValue) -> Option<Self> {
        v.as_array()
    }
}

macro_rules! slice_from_value {
    ($($variant:ident => $t:ty, $name:literal);*) => {$(
        impl<'a> FromGgufValue<'a> for &'a [$t] {
            const EXPECTED: &'static str = concat!("array of ", $name);
            fn from_value(v: &'a GgufValue) -> Option<Self> {
                match v {
                    GgufValue::Array(GgufArray::$variant(x)) => Some(x.as_slice()),
                    _ => None,
                }
            }
        }
    )*};
}
slice_from_value!(
    String => String, "string";
    F32 => f32, "f32";
    F64 => f64, "f64";
    I32 => i32, "i32";
    U32 => u32, "u32";
    I64 => i64, "i64";
    U64 => u64, "u64";
    U8 => u8, "u8";
    Bool => bool, "bool"
);
