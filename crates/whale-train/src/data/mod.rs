//! Training data: raw text/JSONL/Parquet → token shards → packed, shuffled batches.

pub mod config;
pub mod documents;
pub mod loader;
pub mod parquet_reader;
pub mod shards;
