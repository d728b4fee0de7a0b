//! Training DeepSeek-architecture models (`whale train`): token shards and packed batches,
//! AdamW with exportable state, warmup + cosine/WSD schedules, BF16 / simulated-FP8 GEMMs
//! over f32 master weights, DeepSeekMoE balancing (aux-loss-free bias, sequence-wise loss),
//! the MTP loss, atomic checksummed checkpoints, metrics, plots and a cost report.

pub mod balance;
pub mod checkpoint;
pub mod config;
pub mod cost;
pub mod data;
pub mod error;
pub mod metrics;
pub mod optim;
pub mod params;
pub mod plot;
pub mod precision;
pub mod schedule;
pub mod trainer;

pub use config::RunConfig;
pub use error::{Result, TrainError};
pub use trainer::Trainer;
