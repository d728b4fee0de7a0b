//! GGUF metadata values (GGUF spec, "gguf_metadata_value_type").
//!
//! The 13 value types of the spec: eight integer widths, `f32`/`f64`, `bool`, length-prefixed
//! UTF-8 strings, and typed arrays (whose elements may be any type, arrays included). Arrays
//! are kept typed (`Vec<u32>`, `Vec<String>`, …) instead of as a `Vec` of boxed values, so a
//! 150k-entry vocabulary costs what its strings cost and nothing more.

use std::fmt;

/// The type id of a metadata value, as stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgufValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl GgufValueType {
    pub fn from_id(id: u32) -> Option<Self> {
        use GgufValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// Bytes of one scalar of this type; for strings and arrays the smallest possible encoding
    /// (an empty string is its 8-byte length, an empty array its 4-byte type and 8-byte count).
    pub fn min_size(self) -> u64 {
        use GgufValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 12,
        }
    }

    pub fn name(self) -> &'static str {
        use GgufValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }
}

impl fmt::Display for GgufValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    /// GGUF strings should be UTF-8; invalid bytes are replaced by U+FFFD.
    String(String),
    Array(GgufArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A typed metadata array.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<GgufArray>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl GgufArray {
    pub fn elem_type(&self) -> GgufValueType {
        use GgufArray as A;
        use GgufValueType as T;
        match self {
            A::U8(_) => T::U8,
            A::I8(_) => T::I8,
            A::U16(_) => T::U16,
            A::I16(_) => T::I16,
            A::U32(_) => T::U32,
            A::I32(_) => T::I32,
            A::F32(_) => T::F32,
            A::Bool(_) => T::Bool,
            A::String(_) => T::String,
            A::Array(_) => T::Array,
            A::U64(_) => T::U64,
            A::I64(_) => T::I64,
            A::F64(_) => T::F64,
        }
    }

    pub fn len(&self) -> usize {
        use GgufArray as A;
        match self {
            A::U8(v) => v.len(),
            A::I8(v) => v.len(),
            A::U16(v) => v.len(),
            A::I16(v) => v.len(),
            A::U32(v) => v.len(),
            A::I32(v) => v.len(),
            A::F32(v) => v.len(),
            A::Bool(v) => v.len(),
            A::String(v) => v.len(),
            A::Array(v) => v.len(),
            A::U64(v) => v.len(),
            A::I64(v) => v.len(),
            A::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as `i64` if this is an array of integers that all fit.
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        use GgufArray as A;
        Some(match self {
            A::U8(v) => v.iter().map(|&x| x as i64).collect(),
            A::I8(v) => v.iter().map(|&x| x as i64).collect(),
            A::U16(v) => v.iter().map(|&x| x as i64).collect(),
            A::I16(v) => v.iter().map(|&x| x as i64).collect(),
            A::U32(v) => v.iter().map(|&x| x as i64).collect(),
            A::I32(v) => v.iter().map(|&x| x as i64).collect(),
            A::U64(v) => v.iter().map(|&x| i64::try_from(x).ok()).collect::<Option<_>>()?,
            A::I64(v) => v.clone(),
            _ => return None,
        })
    }
}

impl GgufValue {
    pub fn value_type(&self) -> GgufValueType {
        use GgufValue as V;
        use GgufValueType as T;
        match self {
            V::U8(_) => T::U8,
            V::I8(_) => T::I8,
            V::U16(_) => T::U16,
            V::I16(_) => T::I16,
            V::U32(_) => T::U32,
            V::I32(_) => T::I32,
            V::F32(_) => T::F32,
            V::Bool(_) => T::Bool,
            V::String(_) => T::String,
            V::Array(_) => T::Array,
            V::U64(_) => T::U64,
            V::I64(_) => T::I64,
            V::F64(_) => T::F64,
        }
    }

    /// A short description of the type for error messages: `u32`, `array of string`, ...
    pub fn type_description(&self) -> String {
        match self {
            GgufValue::Array(a) => format!("array of {} ({} entries)", a.elem_type(), a.len()),
            v => v.value_type().name().to_string(),
        }
    }

    /// The value as an `i128` if it is an integer of any width (for lossless conversions).
    pub fn as_integer(&self) -> Option<i128> {
        use GgufValue as V;
        Some(match *self {
            V::U8(x) => x as i128,
            V::I8(x) => x as i128,
            V::U16(x) => x as i128,
            V::I16(x) => x as i128,
            V::U32(x) => x as i128,
            V::I32(x) => x as i128,
            V::U64(x) => x as i128,
            V::I64(x) => x as i128,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&GgufArray> {
        match self {
            GgufValue::Array(a) => Some(a),
            _ => None,
        }
    }
}
