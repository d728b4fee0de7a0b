//! The q/k row permutation llama.cpp's converter applies to `llama`-architecture models.
//!
//! HF Llama rotates the two halves of each head (`rotate_half`); llama.cpp's `llama` graph
//! rotates adjacent pairs. `convert_hf_to_gguf.py` (`LlamaModel.permute`) reorders the rows
//! of `q_proj`/`k_proj` (and their biases) per head so the pairs line up:
//! `w.reshape(n_head, 2, hd/2, ...).swapaxes(1, 2)`. Row `h·hd + 2i + j` of the GGUF tensor
//! is row `h·hd + j·hd/2 + i` of the HF one. The permutation moves whole rows, so it applies
//! to quantized bytes as well (each row is a whole number of blocks). `qwen2` files are not
//! permuted (that graph rotates halves, like HF).

/// Row `r` of the permuted (GGUF) tensor comes from this row of the HF tensor.
fn hf_row(r: usize, head_dim: usize) -> usize {
    let (h, within) = (r / head_dim, r % head_dim);
    let (i, j) = (within / 2, within % 2);
    h * head_dim + j * (head_dim / 2) + i
}

fn check(n_rows: usize, n_heads: usize, bytes: usize) -> Option<(usize, usize)> {
    if n_heads == 0 || n_rows == 0 || !n_rows.is_multiple_of(n_heads) {
        return None;
    }
    let head_dim = n_rows / n_heads;
    if !head_dim.is_multiple_of(2) || !bytes.is_multiple_of(n_rows) {
        return None;
    }
    Some((head_dim, bytes / n_rows))
}

/// HF rows → GGUF rows (what the converter does). `None` if the shapes do not divide.
pub fn permute_rows(data: &[u8], n_rows: usize, n_heads: usize) -> Option<Vec<u8>> {
    let (hd, rb) = check(n_rows, n_heads, data.len())?;
    let mut out = vec![0u8; data.len()];
    for r in 0..n_rows {
        let src = hf_row(r, hd);
        out[r * rb..(r + 1) * rb].copy_from_slice(&data[src * rb..(src + 1) * rb]);
    }
    Some(out)
}

/// GGUF rows → HF rows (undoing the converter at load).
pub fn unpermute_rows(data: &[u8], n_rows: usize, n_heads: usize) -> Option<Vec<u8>> {
    let (hd, rb) = check(n_rows, n_heads, data.len())?;
    let mut out = vec![0u8; data.len()];
    for r in 0..n_rows {
        let dst = hf_row(r, hd);
        out[dst * rb..(dst + 1) * rb].copy_from_slice(&data[r * rb..(r + 1) * rb]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The converter's numpy expression on a (2 heads × 4, 1) column of row ids.
    #[test]
    fn matches_llama_cpp_permute() {
        let hf: Vec<u8> = (0..8).collect();
        // reshape(2, 2, 2, 1).swapaxes(1, 2): head 0 rows [0, 2, 1, 3], head 1 [4, 6, 5, 7].
        assert_eq!(permute_rows(&hf, 8, 2).unwrap(), vec![0, 2, 1, 3, 4, 6, 5, 7]);
        let back = unpermute_rows(&permute_rows(&hf, 8, 2).unwrap(), 8, 2).unwrap();
        assert_eq!(back, hf);
        // Multi-byte rows move whole.
        let rows: Vec<u8> = (0..24).collect();
        let p = permute_rows(&rows, 8, 1).unwrap();
        assert_eq!(&p[3..6], &rows[12..15]); // GGUF row 1 = HF row 4 (hd 8: i=0, j=1)
        assert_eq!(unpermute_rows(&p, 8, 1).unwrap(), rows);
        assert!(permute_rows(&rows, 8, 3).is_none());
    }
}
