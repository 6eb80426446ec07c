//! # hawq-runtime
//!
//! Executes models compiled by `hawq` on microcontrollers, edge CPUs and workstations, with no
//! heap and no panics, producing the same bytes everywhere. The arithmetic is specified in
//! `docs/INTEGER_CONTRACT.md`; the file format in [`format`].
//!
//! ```text
//! static MODEL: &[u8] = hawq_runtime::include_model!("model.hq");
//! static mut ARENA: [u8; 64 * 1024] = [0; 64 * 1024];
//!
//! let model = Model::from_bytes(MODEL)?;          // validates everything once
//! let mut it = Interpreter::new(&model, arena)?;  // checks the arena size
//! it.write_input_raw(&pixels)?;                   // the sensor's u8/i8 values, as compiled
//! it.invoke()?;
//! let logits = it.output_bytes();                 // or it.read_output_f32(&mut buf)
//! ```
#![no_std]

#[cfg(feature = "std")]
extern crate std;

pub mod error;
pub mod format;
pub mod interpreter;
pub mod kernels;
pub mod model;
pub mod quant;

pub use error::Error;
pub use format::{DType, Op, RawInput, TensorDesc};
pub use interpreter::Interpreter;
pub use model::Model;
