//! Teaching reasoning with reinforcement learning, the R1 way: rollouts through the engine,
//! rule-based rewards from `whale-eval` tasks, GRPO, rejection sampling and distillation.

pub mod advantage;
mod error;
pub mod grpo;
pub mod grpo_loss;
pub mod logprobs;
pub mod policy;
pub mod rejection;
pub mod rollout;
pub mod sft;
pub mod sft_data;

pub use error::RlError;
pub use grpo::{Grpo, GrpoConfig, StepMetrics};
pub use grpo_loss::{GrpoLoss, LossNorm};
pub use policy::Policy;
pub use sft::{Sft, SftConfig, SftStats};
