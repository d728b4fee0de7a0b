//! Every fast kernel against its reference twin.
//!
//! `reference_matmul` dequantizes the weights exactly (bit-exact with gguf-py, see golden.rs)
//! and sums in f64 with the unquantized activations. The quantized kernels first round the
//! activations to 8 bits per 32/256-element block (as llama.cpp does), which perturbs each
//! product by at most |w|·amax/254; the tolerance is stated per comparison below:
//! - quantized formats vs reference: |Δ| ≤ 1e-2 · ‖w_r‖·‖x_i‖ (typical error ≈ 1e-3)
//! - float formats vs reference:     |Δ| ≤ 1e-5 · ‖w_r‖·‖x_i‖
//! - AVX2 vs portable (same integer sums, other float order): |Δ| ≤ 1e-5 · ‖w_r‖·‖x_i‖
//!
//! Weights are random block bytes (every bit pattern of levels and scales, including the
//! extreme ones that would overflow a careless i16 accumulation) with finite f16 scales.

use candle_core::{Device, Tensor};
use whale_quant::{reference_matmul, set_num_threads, Backend, GgmlType, QMatrix};

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn f32(&mut self) -> f32 {
        (self.next() as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    }
}

/// Offsets of the f16 scale fields in one block of `ty`.
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    use GgmlType as T;
    match ty {
        T::Q8_0 | T::Q4_0 | T::Q5_0 => &[0],
        T::Q4_1 | T::Q5_1 | T::Q4_K | T::Q5_K => &[0, 2],
        T::Q2_K => &[80, 82],
        T::Q3_K => &[108],
        T::Q6_K => &[208],
        _ => &[],
    }
}

fn random_matrix(ty: GgmlType, rows: usize, cols: usize, rng: &mut Lcg) -> QMatrix {
    use GgmlType as T;
    if matches!(ty, T::F32 | T::F16 | T::BF16) {
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.f32()).collect();
        return QMatrix::quantize(ty, rows, cols, &w).unwrap();
    }
    let (bs, ts) = (ty.block_size() as usize, ty.type_size() as usize);
    let mut bytes: Vec<u8> = (0..rows * cols / bs * ts).map(|_| rng.next() as u8).collect();
    for blk in bytes.chunks_exact_mut(ts) {
        for &off in f16_fields(ty) {
            let v = half::f16::from_f32(rng.f32() * 0.1);
            blk[off..off + 2].copy_from_slice(&v.to_bits().to_le_bytes());
        }
    }
    QMatrix::from_bytes(ty, rows, cols, &bytes).unwrap()
}

fn norms(v: &[f32], n: usize) -> Vec<f64> {
    v.chunks(n).map(|r| r.iter().map(|&a| (a as f64).powi(2)).sum::<f64>().sqrt()).collect()
}

fn check(ty: GgmlType, got: &[f32], want: &[f32], w: &QMatrix, x: &[f32], m: usize, tol: f64, what: &str) {
    let (rows, cols) = (w.rows(), w.cols());
    let wn = norms(&w.dequantize(), cols);
    let xn = norms(x, cols);
    for i in 0..m {
        for r in 0..rows {
            let (g, e) = (got[i * rows + r] as f64, want[i * rows + r] as f64);
            let bound = tol * wn[r] * xn[i] + 1e-30;
            assert!((g - e).abs() <= bound, "{ty} {what}: out[{i}][{r}] = {g}, expected {e} (|Δ| {} > {bound})", (g - e).abs());
        }
    }
}

/// Every format the crate supports (a new one is tested here without a list to update).
const TYPES: &[GgmlType] = whale_quant::SUPPORTED;

#[test]
fn every_kernel_matches_the_reference_twin() {
    let mut rng = Lcg(7);
    let (rows, cols) = (37, 512);
    for &ty in TYPES {
        let w = random_matrix(ty, rows, cols, &mut rng);
        // 9 rows: two four-row groups of the prefill kernels and a one-row tail.
        for m in [1usize, 3, 9] {
            let x: Vec<f32> = (0..m * cols).map(|_| rng.f32()).collect();
            let want = reference_matmul(ty, w.as_bytes(), rows, cols, &x, m);
            let quantized = !matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16);
            let tol = if quantized { 1e-2 } else { 1e-5 };
            let portable = w.matmul_slice(&x, m, Backend::Portable).unwrap();
            check(ty, &portable, &want, &w, &x, m, tol, "portable vs reference");
            for (backend, name) in [(Backend::Avx2, "avx2"), (Backend::Vnni, "vnni")] {
                if backend.is_available() {
                    let fast = w.matmul_slice(&x, m, backend).unwrap();
                    check(ty, &fast, &want, &w, &x, m, tol, &format!("{name} vs reference"));
                    check(ty, &fast, &portable, &w, &x, m, 1e-5, &format!("{name} vs portable"));
                }
            }
            // candle's kernels on the same bytes, which `QMatrix::matmul` picks for some
            // block formats (never for float rows: candle rounds their activations to f16).
            if quantized {
                let candle = w.matmul_slice(&x, m, Backend::Candle).unwrap();
                check(ty, &candle, &want, &w, &x, m, tol, "candle vs reference");
            }
        }
    }
}

#[test]
fn extreme_activations_do_not_overflow() {
    // Activations at ±full scale make every 8-bit activation ±127: the worst case for the
    // i16 pair sums of vpmaddubsw.
    let mut rng = Lcg(11);
    let (rows, cols) = (8, 256);
    for &ty in TYPES {
        let w = random_matrix(ty, rows, cols, &mut rng);
        let x: Vec<f32> = (0..cols).map(|i| if i % 3 == 0 { -1.0 } else { 1.0 }).collect();
        let want = reference_matmul(ty, w.as_bytes(), rows, cols, &x, 1);
        let got = w.matmul_slice(&x, 1, Backend::best()).unwrap();
        check(ty, &got, &want, &w, &x, 1, 1e-4, "±1 activations");
    }
}

#[test]
fn tensor_api_handles_layouts_and_threads() {
    let mut rng = Lcg(3);
    let (rows, cols, m) = (300, 256, 5);
    let w = random_matrix(GgmlType::Q4_K, rows, cols, &mut rng);
    let x: Vec<f32> = (0..m * cols).map(|_| rng.f32()).collect();
    // A transposed (non-contiguous) view of the same activations.
    let xt = Tensor::from_vec(x.clone(), (m, cols), &Device::Cpu).unwrap().t().unwrap().contiguous().unwrap().t().unwrap();
    assert!(!xt.is_contiguous());
    set_num_threads(1);
    let one = w.matmul(&xt).unwrap();
    set_num_threads(2);
    let two = w.matmul(&xt).unwrap();
    assert_eq!(one.dims(), &[m, rows]);
    let (a, b) = (one.flatten_all().unwrap().to_vec1::<f32>().unwrap(), two.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    assert_eq!(a, b, "results must not depend on the thread count");
    let want = reference_matmul(GgmlType::Q4_K, w.as_bytes(), rows, cols, &x, m);
    check(GgmlType::Q4_K, &a, &want, &w, &x, m, 1e-2, "tensor api");

    let bad = Tensor::zeros((2, 100), candle_core::DType::F32, &Device::Cpu).unwrap();
    let e = w.matmul(&bad).unwrap_err().to_string();
    assert!(e.contains("(m, 256)") && e.contains("[2, 100]"), "{e}");
}

#[test]
fn quantize_then_matmul_approximates_f32_matmul() {
    // End to end: f32 weights → Q4_K/Q6_K/Q8_0 → matmul, against the f32 product.
    let mut rng = Lcg(5);
    let (rows, cols) = (16, 512);
    let wf: Vec<f32> = (0..rows * cols).map(|_| rng.f32()).collect();
    let x: Vec<f32> = (0..cols).map(|_| rng.f32()).collect();
    let exact = reference_matmul(GgmlType::F32, &wf.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>(), rows, cols, &x, 1);
    for (ty, tol) in [(GgmlType::Q8_0, 0.01), (GgmlType::Q6_K, 0.03), (GgmlType::Q4_K, 0.08)] {
        let w = QMatrix::quantize(ty, rows, cols, &wf).unwrap();
        let got = w.matmul_slice(&x, 1, Backend::best()).unwrap();
        let wn = norms(&wf, cols);
        let xn = norms(&x, cols)[0];
        for r in 0..rows {
            let d = (got[r] - exact[r]).abs() as f64;
            assert!(d <= tol * wn[r] * xn, "{ty} row {r}: {} vs {} (tolerance {tol}·‖w‖‖x‖)", got[r], exact[r]);
        }
    }
}

/// A row's result must not depend on the other rows of the batch: served beside others, a
/// request must get at temperature 0 the tokens it gets alone. Bit for bit, for every format
/// on Whale's backends and on the one `QMatrix::matmul` picks (`Backend::auto`), for batches
/// that take the four-row kernels, the tail, and candle's repacked paths (64 rows and 2,048
/// columns: candle's Q6_K takes its repacked path from two rows on, and rounds otherwise than
/// for one row, which is why Q6_K is not candle's).
#[test]
fn each_row_is_the_same_alone_and_in_a_batch() {
    let mut rng = Lcg(13);
    let (rows, cols) = (64, 2048);
    let mut failures = Vec::new();
    for &ty in TYPES {
        let mut backends = vec![
            (Backend::Portable, "portable"),
            (Backend::auto(ty, rows, cols), "auto"),
            (Backend::for_decode(ty, rows, cols), "for_decode"),
        ];
        for (b, name) in [(Backend::Avx2, "avx2"), (Backend::Vnni, "vnni")] {
            if b.is_available() {
                backends.push((b, name));
            }
        }
        let w = random_matrix(ty, rows, cols, &mut rng);
        let m_max = 260;
        let x: Vec<f32> = (0..m_max * cols).map(|_| rng.f32()).collect();
        for &(backend, name) in &backends {
            let alone: Vec<Vec<f32>> =
                (0..m_max).map(|i| w.matmul_slice(&x[i * cols..(i + 1) * cols], 1, backend).unwrap()).collect();
            for m in [2usize, 3, 4, 5, 9, 32, 40, 100, 260] {
                let batch = w.matmul_slice(&x[..m * cols], m, backend).unwrap();
                if let Some(i) = (0..m).find(|&i| {
                    batch[i * rows..(i + 1) * rows].iter().zip(&alone[i]).any(|(a, b)| a.to_bits() != b.to_bits())
                }) {
                    failures.push(format!("{ty} on {name} ({backend:?}): row {i} of {m}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "rows differ alone and batched: {failures:#?}");
}

/// The VNNI K-quant kernels fuse AVX2's `vpmaddwd` + `vpaddd` into `vpdpwssd`: the same exact
/// integer sums and float steps, so the same results bit for bit (a model gives the same
/// tokens on either instruction set).
#[test]
fn vnni_k_quants_equal_avx2_bit_for_bit() {
    if !Backend::Vnni.is_available() {
        return;
    }
    let mut rng = Lcg(41);
    let (rows, cols) = (24, 1024);
    for ty in [GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K] {
        let w = random_matrix(ty, rows, cols, &mut rng);
        for m in [1usize, 4, 5] {
            let x: Vec<f32> = (0..m * cols).map(|_| rng.f32()).collect();
            let (v, a) = (w.matmul_slice(&x, m, Backend::Vnni).unwrap(), w.matmul_slice(&x, m, Backend::Avx2).unwrap());
            assert!(v.iter().zip(&a).all(|(p, q)| p.to_bits() == q.to_bits()), "{ty}, {m} rows: VNNI and AVX2 differ");
        }
    }
}
