//! Fitting: the CNN training loop (`train`) with its augmentation, distillation and weight
//! averaging, linear heads on fixed backbone features (`linear`, `probe`), and fine-tuning the
//! pretrained backbone (`lite`).

pub mod augment;
pub mod batch;
pub mod checkpoint;
pub mod distill;
pub mod ema;
pub mod finetune;
pub mod linear;
pub mod lite;
pub mod predict;
pub mod probe;
pub mod run;
pub mod train;

pub use batch::{batch_tensors, make_batch, Batch, Sample};
pub use checkpoint::{load_module, load_weights, save_module, start_from};
pub use predict::{predict, predict_frames};
pub use run::{EpochLog, Recipe, RunPaths, RunState, StationTraining, TrainConfig};
pub use train::{cosine_lr, scheduled_lr, TrainData};
