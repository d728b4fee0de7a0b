//! Block keys: a hash chain over 64-token blocks, so a key names the whole prefix up to and
//! including its block (two prompts share a key only if they share every earlier token), and
//! the model fingerprint, so a cache directory shared by several models never mixes them.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Tokens per cached block (DeepSeek's disk cache also works in fixed-size units).
pub const BLOCK_TOKENS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockKey(pub [u8; 32]);

impl BlockKey {
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(BlockKey(out))
    }
}

/// The key before a sequence's first block: the parent of block 0.
pub fn root(fingerprint: &str) -> BlockKey {
    BlockKey(Sha256::digest(fingerprint.as_bytes()).into())
}

/// The keys of the full blocks of `tokens`, in order.
pub fn chain(fingerprint: &str, tokens: &[u32]) -> Vec<BlockKey> {
    let mut parent = root(fingerprint).0;
    tokens
        .chunks_exact(BLOCK_TOKENS)
        .map(|block| {
            let mut h = Sha256::new();
            h.update(parent);
            for t in block {
                h.update(t.to_le_bytes());
            }
            parent = h.finalize().into();
            BlockKey(parent)
        })
        .collect()
}

/// A fingerprint of a model's files by content (not path): the size, first and last 64 KiB of
/// each file, plus `extra` (the dtype the cache is kept in, say). Cheap for multi-GB files,
/// and any re-export, re-quantization or fine-tune changes it.
pub fn fingerprint_files(paths: &[&Path], extra: &str) -> std::io::Result<String> {
    const SAMPLE: u64 = 64 * 1024;
    let mut h = Sha256::new();
    h.update(extra.as_bytes());
    for path in paths {
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        h.update(len.to_le_bytes());
        let mut buf = Vec::new();
        (&mut f).take(SAMPLE).read_to_end(&mut buf)?;
        if len > SAMPLE {
            use std::io::{Seek, SeekFrom};
            f.seek(SeekFrom::Start(len.saturating_sub(SAMPLE).max(SAMPLE)))?;
            f.take(SAMPLE).read_to_end(&mut buf)?;
        }
        h.update(&buf);
    }
    Ok(h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_keys_depend_on_every_earlier_token_and_the_model() {
        let a: Vec<u32> = (0..200).collect();
        let mut b = a.clone();
        b[3] = 999;
        let ka = chain("m", &a);
        assert_eq!(ka.len(), 3, "200 tokens hold 3 full blocks of 64");
        let kb = chain("m", &b);
        assert!(ka.iter().zip(&kb).all(|(x, y)| x != y), "a change in block 0 changes every later key");
        let mut c = a.clone();
        c[150] = 999;
        let kc = chain("m", &c);
        assert_eq!(ka[..2], kc[..2]);
        assert_ne!(ka[2], kc[2]);
        assert_ne!(chain("other model", &a)[0], ka[0]);
        assert_eq!(BlockKey::from_hex(&ka[1].hex()), Some(ka[1]));
        assert_eq!(BlockKey::from_hex("zz"), None);
    }
}
