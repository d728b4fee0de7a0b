//! A bounds-checked little-endian reader over the bytes of a GGUF file.
//!
//! Every read checks the bytes left first and fails with [`GgufErrorKind::Truncated`]; every
//! count read from the file is checked against the bytes left (times the smallest size one
//! entry can have) before anything is allocated for it, so a hostile count cannot make the
//! reader allocate more than a small multiple of the file's own size.

use super::error::GgufErrorKind;

pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

type R<T> = Result<T, GgufErrorKind>;

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn pos(&self) -> u64 {
        self.pos as u64
    }

    pub fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    /// The next `n` bytes; `what` names them for the error message.
    pub fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> R<&'a [u8]> {
        if n > self.remaining() {
            return Err(GgufErrorKind::Truncated {
                what: what(),
                offset: self.pos(),
                needed: n,
                available: self.remaining(),
            });
        }
        let n = n as usize;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> R<[u8; N]> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub fn u8(&mut self, what: &dyn Fn() -> String) -> R<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    pub fn u16(&mut self, what: &dyn Fn() -> String) -> R<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub fn u32(&mut self, what: &dyn Fn() -> String) -> R<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub fn u64(&mut self, what: &dyn Fn() -> String) -> R<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Checks that `count` entries of at least `min_each` bytes can fit in what is left; returns
    /// the count as `usize`, safe to use as a `Vec` capacity.
    pub fn check_count(
        &self,
        count: u64,
        min_each: u64,
        count_offset: u64,
        what: &dyn Fn() -> String,
    ) -> R<usize> {
        let fits = count.checked_mul(min_each).is_some_and(|b| b <= self.remaining());
        if !fits {
            return Err(GgufErrorKind::CountTooLarge {
                what: what(),
                offset: count_offset,
                count,
                min_bytes_each: min_each,
                available: self.remaining(),
            });
        }
        Ok(count as usize)
    }

    /// A GGUF string: u64 length, then that many bytes.
    pub fn raw_string(&mut self, what: &dyn Fn() -> String) -> R<&'a [u8]> {
        let len = self.u64(what)?;
        self.take(len, what)
    }

    /// A string that must be valid UTF-8 (keys, tensor names).
    pub fn strict_string(&mut self, what: &dyn Fn() -> String) -> R<String> {
        let start = self.pos();
        let bytes = self.raw_string(what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(GgufErrorKind::InvalidUtf8 { what: what(), offset: start }),
        }
    }

    /// A string value; invalid UTF-8 is replaced (some GGUF vocabularies carry stray bytes).
    pub fn lossy_string(&mut self, what: &dyn Fn() -> String) -> R<String> {
        let bytes = self.raw_string(what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
}
