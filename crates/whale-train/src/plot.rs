//! `whale plot RUN_DIR`: PNG charts of `RUN_DIR/metrics.jsonl` into `RUN_DIR/plots/`:
//! loss (train, MTP and validation), learning rate, gradient norm, expert load (busiest
//! expert over the mean, and experts that got no token, per MoE layer) and tokens/s; for a
//! GRPO run also reward and accuracy (rollouts and held-out), response length, KL to the
//! reference, entropy and clip fraction.
//!
//! Text needs a TrueType font, which plotters' pure-Rust bitmap backend does not bundle:
//! `WHALE_PLOT_FONT` or a common system font (DejaVu, Liberation, Noto) is registered at
//! first use. Without any, the charts are still drawn, only without captions and labels.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::error::{Result, TrainError};
use crate::metrics::{self, StepRecord, METRICS_FILE};

const SIZE: (u32, u32) = (900, 500);
const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers a font once; whether text can be drawn.
fn font_available() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        let env = std::env::var("WHALE_PLOT_FONT").ok();
        let paths = env
            .iter()
            .map(String::as_str)
            .chain(FONT_CANDIDATES.iter().copied());
        for p in paths {
            if let Ok(bytes) = std::fs::read(p) {
                // plotters keeps fonts for the life of the program.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// One line of a chart.
struct Series {
    label: String,
    points: Vec<(f64, f64)>,
    color: RGBColor,
}

const COLORS: &[RGBColor] = &[
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn chart(path: &Path, title: &str, y_desc: &str, series: &[Series]) -> Result<()> {
    let err = |e: String| TrainError::data(path, format!("drawing {title}: {e}"));
    let pts = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(y1.abs() * 1e-3).max(1e-12);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let text = font_available();
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(15);
    if text {
        builder
            .caption(title, ("sans-serif", 24))
            .x_label_area_size(40)
            .y_label_area_size(70);
    }
    let mut c = builder
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| err(e.to_string()))?;
    if text {
        c.configure_mesh()
            .x_desc("step")
            .y_desc(y_desc)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(|e| err(e.to_string()))?;
    }
    for s in series {
        let color = s.color;
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        let drawn = if pts.len() == 1 || s.label.starts_with("val") {
            // Sparse series (validation) as dots joined by a line.
            c.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|e| err(e.to_string()))?;
            c.draw_series(LineSeries::new(pts, color.stroke_width(1)))
                .map_err(|e| err(e.to_string()))?
        } else {
            c.draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?
        };
        if text {
            drawn.label(s.label.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
    }
    if text && series.len() > 1 {
        c.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(e.to_string()))?;
    }
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

fn series(
    label: &str,
    i: usize,
    recs: &[StepRecord],
    f: impl Fn(&StepRecord) -> Option<f64>,
) -> Series {
    Series {
        label: label.into(),
        points: recs
            .iter()
            .filter_map(|r| f(r).map(|y| (r.step as f64, y)))
            .collect(),
        color: COLORS[i % COLORS.len()],
    }
}

/// Draws every chart of `run_dir`; returns the PNG paths.
pub fn plot_run(run_dir: &Path) -> Result<Vec<PathBuf>> {
    let recs = metrics::read(&run_dir.join(METRICS_FILE))?;
    if recs.is_empty() {
        return Err(TrainError::data(
            run_dir.join(METRICS_FILE),
            "no records to plot",
        ));
    }
    let out = run_dir.join("plots");
    std::fs::create_dir_all(&out).map_err(|e| TrainError::io(&out, e))?;
    let mut written = Vec::new();
    let mut draw = |name: &str, title: &str, y: &str, s: Vec<Series>| -> Result<()> {
        let s: Vec<Series> = s.into_iter().filter(|s| !s.points.is_empty()).collect();
        if s.is_empty() {
            return Ok(());
        }
        let p = out.join(name);
        chart(&p, title, y, &s)?;
        written.push(p);
        Ok(())
    };
    draw(
        "loss.png",
        "Loss",
        "cross-entropy (nats)",
        vec![
            series("train", 0, &recs, |r| Some(r.loss)),
            series("MTP (weighted)", 2, &recs, |r| r.mtp_loss),
            series("val", 1, &recs, |r| r.val_loss),
        ],
    )?;
    draw(
        "lr.png",
        "Learning rate",
        "lr",
        vec![series("lr", 0, &recs, |r| Some(r.lr))],
    )?;
    draw(
        "grad_norm.png",
        "Gradient norm (before clipping)",
        "L2 norm",
        vec![series("grad norm", 3, &recs, |r| Some(r.grad_norm))],
    )?;
    draw(
        "tokens_per_s.png",
        "Throughput",
        "tokens/s",
        vec![series("tokens/s", 4, &recs, |r| Some(r.tokens_per_s))],
    )?;
    draw(
        "reward.png",
        "Reward and accuracy",
        "per rollout / share correct",
        vec![
            series("reward", 0, &recs, |r| r.rl.reward),
            series("rollout accuracy", 1, &recs, |r| r.rl.accuracy),
            series("held-out greedy accuracy", 2, &recs, |r| r.rl.eval_accuracy),
        ],
    )?;
    draw(
        "response_length.png",
        "Response length",
        "completion tokens",
        vec![series("mean response length", 4, &recs, |r| r.rl.response_length)],
    )?;
    draw(
        "kl.png",
        "KL to the reference policy (k3)",
        "nats per token",
        vec![series("KL", 3, &recs, |r| r.rl.kl)],
    )?;
    draw(
        "entropy.png",
        "Policy entropy at the rollout temperature",
        "nats per token",
        vec![series("entropy", 5, &recs, |r| r.rl.entropy)],
    )?;
    draw(
        "clip_fraction.png",
        "Share of tokens whose ratio was clipped",
        "fraction",
        vec![series("clip fraction", 6, &recs, |r| r.rl.clip_fraction)],
    )?;
    let mut layers: Vec<usize> = recs
        .iter()
        .flat_map(|r| r.expert_load.iter().map(|l| l.layer))
        .collect();
    layers.sort_unstable();
    layers.dedup();
    // One line per MoE layer of a per-layer load statistic.
    let per_layer = |f: fn(&crate::metrics::ExpertLoad) -> f64| -> Vec<Series> {
        layers
            .iter()
            .enumerate()
            .map(|(i, &layer)| {
                series(&format!("layer {layer}"), i, &recs, |r| {
                    r.expert_load.iter().find(|l| l.layer == layer).map(f)
                })
            })
            .collect()
    };
    draw(
        "expert_load.png",
        "Expert load: busiest expert / mean",
        "max / mean load",
        per_layer(|l| l.max_over_mean),
    )?;
    draw(
        "dead_experts.png",
        "Experts that got no token",
        "experts",
        per_layer(|l| l.dead as f64),
    )?;
    Ok(written)
}
