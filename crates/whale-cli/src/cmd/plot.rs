//! `whale plot RUN_DIR`: PNG charts of a training run's metrics.jsonl (loss and validation
//! loss, learning rate, gradient norm, expert load, tokens/s) into RUN_DIR/plots/.

use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run folder (holding metrics.jsonl).
    run_dir: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    for p in whale_train::plot::plot_run(&args.run_dir)? {
        println!("{}", p.display());
    }
    Ok(())
}
