//! Kernel micro-benchmark: whale-quant's `QMatrix::matmul` beside candle's `QMatMul` on the
//! same weights, for the Qwen2-1.5B projection shapes.
//!
//!     cargo run --release -p whale-quant --example qbench -- [--threads N] [--types q4_k,q8_0] [--iters N]
//!         [--shapes 1536x1536,8960x1536] [--m 1,128] [--backend avx2|vnni|portable]
//!
//! Prints, per format / shape (rows x cols = out x in features) / m: time per call, weight
//! bytes streamed per second (GB/s) and GFLOP/s (2·m·rows·cols per call), for both, and which
//! one `QMatrix::matmul` runs (`Backend::auto`, set from these measurements).

use std::time::Instant;

use candle_core::quantized::{ggml_file::qtensor_from_ggml, QMatMul};
use candle_core::{Device, Module, Tensor};
use whale_quant::{candle_dtype, kernel_name, set_num_threads, Backend, GgmlType, QMatrix};

fn parse_type(s: &str) -> GgmlType {
    whale_quant::SUPPORTED
        .iter()
        .copied()
        .find(|t| t.name().eq_ignore_ascii_case(s))
        .unwrap_or_else(|| panic!("unknown type {s}"))
}

/// Median seconds per call over `iters` timed calls after one warm-up call.
fn time(iters: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut v: Vec<f64> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let threads: usize = arg("--threads").map(|s| s.parse()).transpose()?.unwrap_or(2);
    let iters: usize = arg("--iters").map(|s| s.parse()).transpose()?.unwrap_or(20);
    let types: Vec<GgmlType> = arg("--types")
        .unwrap_or_else(|| "q4_k,q6_k,q8_0,q5_0,f16,q4_0,q5_k,q2_k,q3_k".into())
        .split(',')
        .map(parse_type)
        .collect();
    let shapes: Vec<(usize, usize)> = arg("--shapes")
        .unwrap_or_else(|| "1536x1536,8960x1536,1536x8960".into())
        .split(',')
        .map(|s| {
            let (r, c) = s.split_once('x').expect("--shapes ROWSxCOLS,...");
            (r.parse().expect("rows"), c.parse().expect("cols"))
        })
        .collect();
    let ms: Vec<usize> = arg("--m").unwrap_or_else(|| "1,128".into()).split(',').map(|s| s.parse().unwrap()).collect();
    let backend = match arg("--backend").as_deref() {
        None => Backend::best(),
        Some("avx2") => Backend::Avx2,
        Some("vnni") => Backend::Vnni,
        Some("portable") => Backend::Portable,
        Some(other) => panic!("--backend {other}: expected avx2, vnni or portable"),
    };
    set_num_threads(threads);
    // candle's CPU kernels use rayon's global pool; size it the same.
    let _ = rayon_global(threads);

    println!("threads {threads}, median of {iters}, whale backend {backend:?}");
    println!(
        "{:<6} {:>11} {:>4} | {:>9} {:>7} {:>8} | {:>9} {:>7} {:>8} | {:>6} {}",
        "type", "rows x cols", "m", "whale ms", "GB/s", "GFLOP/s", "candle ms", "GB/s", "GFLOP/s", "speedup", "auto picks"
    );
    let mut seed = 1u64;
    for &ty in &types {
        for &(rows, cols) in &shapes {
            let data: Vec<f32> = (0..rows * cols)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
                })
                .collect();
            let w = QMatrix::quantize(ty, rows, cols, &data)?;
            let bytes = w.as_bytes().len() as f64;
            let cq = candle_dtype(ty)
                .map(|d| qtensor_from_ggml(d, w.as_bytes(), vec![rows, cols], &Device::Cpu))
                .transpose()?
                .map(QMatMul::from_qtensor)
                .transpose()?;
            for &m in &ms {
                let x = Tensor::randn(0f32, 1.0, (m, cols), &Device::Cpu)?;
                let tw = time(iters, || {
                    w.matmul_with(&x, backend).unwrap();
                });
                let tc = cq.as_ref().map(|q| {
                    time(iters, || {
                        q.forward(&x).unwrap();
                    })
                });
                let flop = 2.0 * (m * rows * cols) as f64;
                let (cms, cgb, cfl, sp) = match tc {
                    Some(t) => (
                        format!("{:.3}", t * 1e3),
                        format!("{:.1}", bytes / t / 1e9),
                        format!("{:.1}", flop / t / 1e9),
                        format!("{:.2}x", t / tw),
                    ),
                    None => ("-".into(), "-".into(), "-".into(), "-".into()),
                };
                println!(
                    "{:<6} {:>11} {:>4} | {:>9.3} {:>7.1} {:>8.1} | {:>9} {:>7} {:>8} | {:>6} {}",
                    ty.name(),
                    format!("{rows}x{cols}"),
                    m,
                    tw * 1e3,
                    bytes / tw / 1e9,
                    flop / tw / 1e9,
                    cms,
                    cgb,
                    cfl,
                    sp,
                    kernel_name(ty, rows, cols)
                );
            }
        }
    }
    Ok(())
}

fn rayon_global(n: usize) -> Result<(), rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new().num_threads(n).build_global()
}
