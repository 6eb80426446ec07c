//! # hawq-compiler
//!
//! The host side of hawq-edge: ONNX import ([`import`]) into a small float IR ([`ir`]), float
//! reference execution, calibration and quantization to per-layer bit widths, memory planning,
//! and emission of the runtime's model format.

pub mod import;
pub mod ir;
mod onnx_proto;
