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
//!
//! On a host, `Interpreter::with_workspace(&model, arena, workspace)` prepares the weights once
//! for the kernels that read them in another order (x86-64 with AVX-512 VNNI today) into a
//! caller-provided `workspace` of at least [`Model::host_workspace_bytes`] bytes, instead of on
//! every inference; the size is 0 on every other path and target, and the outputs are the same:
//!
//! ```text
//! let mut workspace = vec![0u8; model.host_workspace_bytes()];
//! let mut it = Interpreter::with_workspace(&model, &mut arena, &mut workspace)?;
//! ```
//!
//! With the `threads` feature (hosts), `Interpreter::invoke_threads` splits the convolutions
//! into bands of output rows across a pool, with the same output bytes:
//!
//! ```text
//! let mut threads = hawq_runtime::Threads::new(&model, 2)?;   // once per model
//! it.invoke_threads(&mut threads)?;
//! ```
//!
//! A camera frame whose channels are interleaved per pixel goes in as it comes, whatever layout
//! the source model declared: `it.write_input_interleaved(&frame)`, or
//! `it.write_input_rgb565(&frame, big_endian)` for RGB565 sensors.
//!
//! A firmware that runs one model links only its kernels with
//! `Interpreter::<{ KERNELS }>::with_kernels(&model, arena)`, where `KERNELS` is
//! [`kernels::linked::required`] of the model (computed by the build script, or printed by
//! `hawq inspect`); see [`kernels::linked`].
//!
//! Features: `std` (run-time CPU feature detection on hosts), `threads` (the above; implies
//! `std`), `kernels-scalar` / `kernels-portable` (force one kernel path, for comparisons).
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
#[cfg(feature = "threads")]
pub use interpreter::Threads;
pub use model::Model;

/// A bound on the stack `Interpreter::invoke` takes on a Cortex-M4 (DSP kernels), in bytes:
/// every kernel keeps its buffers in the op's arena scratch, so the stack is the same small
/// amount for any model. Measured under QEMU by `targets/` (`runtime_stack_bytes` of
/// `cargo xtask bench`: at most 1,260 bytes below the caller of `invoke_observed` over the
/// fixtures in int8, mixed and HAWQ configurations, 2026-12-06), rounded up with room to spare. A firmware adds its own frames
/// above it (the QEMU firmware's whole stack peaked at 1,932 bytes). `hawq inspect` prints the
/// model's RAM as its arena plus this.
pub const STACK_BYTES_CORTEX_M4: usize = 1536;
