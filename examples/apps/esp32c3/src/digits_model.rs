//! `digits_model`: made by `hawq compile --emit-rust` from model.onnx; do not edit.
//!
//! The compiled model (2659 bytes, format 7) is `digits_model.hq` beside this file, embedded
//! 16-byte aligned (flash on a microcontroller). Needs the `hawq-runtime` crate of the same
//! release. Use:
//!
//! ```ignore
//! mod digits_model;
//!
//! static mut ARENA: digits_model::Arena = digits_model::Arena::new();
//!
//! let model = digits_model::load()?;
//! // SAFETY (in your firmware): the only reference to ARENA.
//! let arena = unsafe { &mut *core::ptr::addr_of_mut!(ARENA) };
//! let mut it = digits_model::interpreter(&model, arena)?;
//! it.write_input_raw(&raw)?; // digits_model::INPUT_RAW_BYTES bytes, or write_input_f32
//! it.invoke()?;
//! let y = digits_model::read_output(&it)?; // [f32; digits_model::OUTPUT_ELEMENTS]
//! ```
//!
//! Every call returns `Result<_, hawq_runtime::Error>`; the runtime never panics on bad input.

#![allow(dead_code, clippy::unreadable_literal)]

use hawq_runtime::{Error, Interpreter, Model};

/// The model file's bytes.
pub static MODEL: &[u8] = hawq_runtime::include_model!("digits_model.hq");
/// Bytes of the model file.
pub const MODEL_BYTES: usize = 2659;
/// The model format version; the runtime refuses another.
pub const FORMAT_VERSION: u16 = 7;
/// Bytes of RAM for the arena (tensors and kernel scratch); the runtime's stack comes on top.
pub const ARENA_BYTES: usize = 1868;
/// The kernels the model needs (`hawq_runtime::kernels::linked`): `conv2d`, `depthwise_conv2d`, `fully_connected`, `avg_pool`, `add`, `weights_8`, `depthwise_general`, `conv_general`.
/// The interpreter of [`interpreter`] links only these.
pub const KERNELS: u32 = 0xc1002f;

/// The input: 64 values, [H, W, C] = [8, 8, 1] as the source model takes them.
pub const INPUT_ELEMENTS: usize = 64;
/// What `Interpreter::write_input_raw` takes: one byte per value, the runtime stores q = x − 128 (`RawInput::U8`).
pub const INPUT_RAW_BYTES: usize = 64;
/// The input's quantization in the arena: real = `SCALE · (q − ZERO_POINT)`.
pub const INPUT_SCALE: f32 = 0.0625;
pub const INPUT_ZERO_POINT: i32 = -128;

/// The first output: 10 values, 10 bytes, one signed byte per value (`DType::I8`).
pub const OUTPUT_ELEMENTS: usize = 10;
pub const OUTPUT_BYTES: usize = 10;
/// The output's quantization: real = `SCALE · (q − ZERO_POINT)`.
pub const OUTPUT_SCALE: f32 = 0.29589844;
pub const OUTPUT_ZERO_POINT: i32 = 26;
/// Outputs of the model (1 + the graph's further outputs, `Interpreter::output_bytes_at`).
pub const OUTPUT_COUNT: usize = 1;

/// The arena: [`ARENA_BYTES`], aligned as the runtime's kernels need. Make it a `static`
/// on a microcontroller (the stack is small), a `Box` or a local on a host.
#[repr(C, align(16))]
pub struct Arena(pub [u8; ARENA_BYTES]);

impl Arena {
    pub const fn new() -> Self {
        Arena([0; ARENA_BYTES])
    }
}

impl Default for Arena {
    fn default() -> Self {
        Self::new()
    }
}

/// Parses and validates [`MODEL`] (once, at start).
pub fn load() -> Result<Model<'static>, Error> {
    Model::from_bytes_with_kernels::<KERNELS>(MODEL)
}

/// An interpreter of `model` in `arena`, linking only [`KERNELS`].
pub fn interpreter<'m, 'a>(
    model: &'m Model<'m>,
    arena: &'a mut Arena,
) -> Result<Interpreter<'m, 'a, KERNELS>, Error> {
    Interpreter::<KERNELS>::with_kernels(model, &mut arena.0)
}

/// The first output as real values, after `invoke`.
pub fn read_output(it: &Interpreter<'_, '_, KERNELS>) -> Result<[f32; OUTPUT_ELEMENTS], Error> {
    let mut y = [0f32; OUTPUT_ELEMENTS];
    it.read_output_f32(&mut y)?;
    Ok(y)
}
