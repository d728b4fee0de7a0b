//! `whale logits`: the raw logits of a model for a list of token ids, so any implementation
//! can be compared with Whale from the shell.

use crate::model_args::{parse_ids, ModelArgs};
use anyhow::Result;
use candle_core::Tensor;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Comma-separated token ids, e.g. 1,2,3.
    #[arg(long)]
    ids: String,
}

pub fn run(args: Args) -> Result<()> {
    let ids = parse_ids(&args.ids, "--ids")?;
    let model = args.model.load()?;
    let input = Tensor::from_vec(ids.clone(), (1, ids.len()), model.device())?;
    let out = model.forward_hidden(&input, None)?;
    let logits = model.lm_head(&out.hidden)?.squeeze(0)?.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?;
    println!("{}", serde_json::json!({ "logits": logits }));
    Ok(())
}
