//! # hawq-compiler
//!
//! The host side of hawq-edge: ONNX import ([`import`]) into a small float IR ([`ir`]), float
//! reference execution ([`float_exec`]), calibration and quantization to per-layer bit widths
//! ([`quantize`]), memory planning ([`plan`]), lowering to the runtime's model format
//! ([`emit`]; as C source for the runtime's C library: [`emit_c`]; as a Rust module: [`emit_rust`]), evaluation ([`eval`]), and the pipeline tying them together ([`pipeline`]).

pub mod allocate;
pub mod autodiff;
pub mod data;
pub mod emit;
pub mod emit_c;
pub mod emit_rust;
pub mod equalize;
pub mod eval;
pub mod fidelity;
pub mod float_exec;
pub mod gptq;
pub mod import;
pub mod ir;
pub mod learned_rounding;
pub mod new_app;
pub mod onnx_proto;
pub mod pipeline;
pub mod plan;
pub mod quantize;
pub mod refine;
pub mod report;
pub mod sensitivity;
