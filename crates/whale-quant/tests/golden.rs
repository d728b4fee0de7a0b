//! Block formats against goldens from the `gguf` Python package (tests/fixtures/make_golden.py).
//!
//! - Dequantization: for every format, our dequantization of gguf-py's bytes equals gguf-py's
//!   floats exactly (bit for bit; NaN-free inputs).
//! - Quantization: where gguf-py implements it (BF16, F16 via numpy, Q4_0, Q4_1, Q5_0, Q5_1,
//!   Q8_0) our bytes equal gguf-py's exactly. gguf-py has no K-quant quantizer, so for Q2_K …
//!   Q6_K the check is the reconstruction error of quantize→dequantize on the same inputs,
//!   bounded per format (relative RMS error on 4096 Gaussian values; measured: Q2_K 0.188,
//!   Q3_K 0.109, Q4_K 0.0455, Q5_K 0.0236, Q6_K 0.0149; bounds ~1.25× that, so a broken scale
//!   search or packing fails them).

use whale_quant::{dequantize_row, quantize_row, GgmlType, QMatrix};

fn fixture(name: &str) -> Vec<u8> {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn floats(name: &str) -> Vec<f32> {
    fixture(name).chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Every format the crate supports (a new one is tested here without a list to update).
const ALL: &[GgmlType] = whale_quant::SUPPORTED;

#[test]
fn dequantize_matches_gguf_py_bit_for_bit() {
    for &ty in ALL {
        let q = fixture(&format!("{ty}.q"));
        let expected = floats(&format!("{ty}.dequant.f32"));
        let mut out = vec![0.0f32; expected.len()];
        dequantize_row(ty, &q, &mut out).unwrap();
        for (i, (a, b)) in out.iter().zip(&expected).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{ty} element {i}: ours {a}, gguf-py {b}");
        }
    }
}

#[test]
fn quantize_matches_gguf_py_bytes() {
    use GgmlType as T;
    for ty in [T::F32, T::F16, T::BF16, T::Q8_0, T::Q4_0, T::Q4_1, T::Q5_0, T::Q5_1] {
        let x = floats(&format!("{ty}.input.f32"));
        let expected = fixture(&format!("{ty}.q"));
        let mut out = vec![0u8; expected.len()];
        quantize_row(ty, &x, &mut out).unwrap();
        let bs = ty.type_size() as usize;
        for (i, (a, b)) in out.chunks(bs).zip(expected.chunks(bs)).enumerate() {
            assert_eq!(a, b, "{ty} block {i} differs from gguf-py");
        }
    }
}

fn rel_rms_error(ty: GgmlType, x: &[f32]) -> f64 {
    let m = QMatrix::quantize(ty, 1, x.len(), x).unwrap();
    let y = m.dequantize();
    let (mut e, mut s) = (0.0f64, 0.0f64);
    for (a, b) in x.iter().zip(&y) {
        e += (*a as f64 - *b as f64).powi(2);
        s += (*a as f64).powi(2);
    }
    (e / s).sqrt()
}

#[test]
fn kquant_round_trip_error_is_bounded() {
    use GgmlType as T;
    // Gaussian rows (the fixture inputs include zero, constant and outlier blocks, whose
    // error is dominated by the outliers; use a plain normal sample for the bound).
    let x: Vec<f32> = (0..4096)
        .map(|i| {
            // Box-Muller from a fixed LCG: deterministic, no extra dependency.
            let u = |k: u64| ((k.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let (u1, u2) = (u(2 * i as u64 + 1), u(2 * i as u64 + 2));
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        })
        .collect();
    for (ty, bound) in [(T::Q2_K, 0.24), (T::Q3_K, 0.14), (T::Q4_K, 0.058), (T::Q5_K, 0.030), (T::Q6_K, 0.019)] {
        let err = rel_rms_error(ty, &x);
        assert!(err < bound, "{ty}: relative RMS error {err:.4} exceeds {bound}");
        assert!(err > 0.0, "{ty}: lossless on Gaussian data is impossible at this width");
    }
    // Legacy formats, for scale (their quantizers are checked byte-exactly above).
    for (ty, bound) in [(T::Q4_0, 0.085), (T::Q5_0, 0.044), (T::Q8_0, 0.0052)] {
        let err = rel_rms_error(ty, &x);
        assert!(err < bound, "{ty}: relative RMS error {err:.4} exceeds {bound}");
    }
}

#[test]
fn kquant_quantize_handles_zero_and_constant_blocks() {
    for ty in [GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K] {
        let zeros = vec![0.0f32; 256];
        let m = QMatrix::quantize(ty, 1, 256, &zeros).unwrap();
        assert!(m.dequantize().iter().all(|&v| v == 0.0), "{ty}: zeros must stay zeros");
        // The fixture input: zero, constant, ramp and outlier blocks; all outputs finite.
        let x = floats(&format!("{ty}.input.f32"));
        let m = QMatrix::quantize(ty, 2, 256, &x).unwrap();
        let y = m.dequantize();
        assert!(y.iter().all(|v| v.is_finite()), "{ty}: non-finite output");
        // Requantizing the dequantized values must reproduce them closely (levels are a fixed
        // point of the reference quantizer up to scale re-rounding).
        let m2 = QMatrix::quantize(ty, 2, 256, &y).unwrap();
        let y2 = m2.dequantize();
        let max = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        for (a, b) in y.iter().zip(&y2) {
            assert!((a - b).abs() <= 0.1 * max, "{ty}: requantization drifted: {a} vs {b}");
        }
    }
}

#[test]
fn bad_lengths_are_errors_naming_expected_and_found() {
    let mut out = vec![0.0f32; 256];
    let e = dequantize_row(GgmlType::Q4_K, &[0u8; 100], &mut out).unwrap_err().to_string();
    assert!(e.contains("144") && e.contains("100"), "{e}");
    let mut out = vec![0.0f32; 100];
    let e = dequantize_row(GgmlType::Q4_K, &[0u8; 144], &mut out).unwrap_err().to_string();
    assert!(e.contains("multiple of the block size 256"), "{e}");
    let e = QMatrix::from_bytes(GgmlType::Q8_0, 2, 64, &[0u8; 10]).unwrap_err().to_string();
    assert!(e.contains("expected 136 bytes, found 10"), "{e}");
    let e = QMatrix::from_bytes(GgmlType::IQ2_XS, 1, 256, &[0u8; 74]).unwrap_err().to_string();
    assert!(e.contains("not supported"), "{e}");
}
