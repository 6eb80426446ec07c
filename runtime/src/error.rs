//! Every way a model or a call can be wrong, as a value. The runtime never panics on bad input.

use core::fmt;

/// Why a model could not be loaded or run. Errors about one operation carry its index in the op
/// list; errors about a tensor carry its index in the tensor table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The blob is shorter than its header or than the body length the header announces.
    Truncated,
    /// The blob does not start with `HAWQ`.
    BadMagic,
    /// The format version is not the one this runtime reads.
    UnsupportedVersion { found: u16 },
    /// The CRC-32 of the body does not match the header.
    ChecksumMismatch { expected: u32, computed: u32 },
    /// The body is not a valid encoding of the model: bad postcard in its tables, a tensor table
    /// whose length is not a whole number of records (truncated) or a record with an unknown
    /// dtype, or an op record of an unknown kind or cut short.
    Malformed,
    /// Bytes are left over after the last operation.
    TrailingBytes,
    /// More tensors than [`crate::format::MAX_TENSORS`] (65,535: tensors are named by `u16`).
    TooManyTensors,
    /// A tensor's shape has a zero or oversized dimension, or its element count overflows.
    BadShape { tensor: u16 },
    /// A tensor does not lie inside the arena.
    TensorOutOfArena { tensor: u16 },
    /// A quantized tensor's zero point lies outside its bit width's range (contract §1).
    BadZeroPoint { tensor: u16 },
    /// The scratch region does not lie inside the arena.
    ScratchOutOfArena,
    /// An operation's scratch (its offset and the size its kernel needs) does not lie inside the
    /// arena.
    OpScratchOutOfArena { op: u16 },
    /// An operation's scratch overlaps its input or output.
    ScratchOverlap { op: u16 },
    /// An operation names a tensor that does not exist (or the model's input/output does).
    BadTensorIndex { op: u16 },
    /// An operation's tensors have the wrong data type (e.g. f32 into a convolution).
    WrongDtype { op: u16 },
    /// An operation's tensor shapes do not agree with its parameters.
    ShapeMismatch { op: u16 },
    /// A bit width the format does not define.
    UnsupportedBits { op: u16 },
    /// An operation's parameter is outside its domain (shift, clamp range, stride, padding...).
    BadParameter { op: u16 },
    /// A packed weight, bias or requantization array has the wrong length.
    WeightSizeMismatch { op: u16 },
    /// The layer could overflow its i32 accumulator (integer contract §3).
    AccumulatorOverflow { op: u16 },
    /// Input and output regions of an operation overlap where the kernel cannot work in place.
    OverlappingTensors { op: u16 },
    /// The arena handed to the interpreter is smaller than the model needs.
    ArenaTooSmall { needed: u32, got: u32 },
    /// A caller's buffer has the wrong number of bytes or elements.
    SizeMismatch { expected: u32, got: u32 },
    /// The model has no operation.
    EmptyModel,
    /// The header declares an arena larger than the tensor table and the scratch need.
    ArenaSizeMismatch { declared: u32, needed: u32 },
    /// The model needs a kernel (an op, a weight width, 4-bit activations) that this build's
    /// kernel set leaves out ([`crate::kernels::linked`]).
    KernelNotLinked { op: u16 },
    /// A reshape whose output is not its input's bytes (same offset, dtype and size): a reshape
    /// is a view, the compiler's planner always places it so, and the runtime copies nothing.
    NotInPlace { op: u16 },
}

impl Error {
    /// What went wrong, in words, without the numbers (a static string: for firmware that links
    /// no `core::fmt`; [`Error::subject`] gives the op or tensor it is about). `Display` says the
    /// same with the numbers.
    pub fn summary(&self) -> &'static str {
        match self {
            Error::Truncated => "model blob is truncated",
            Error::BadMagic => "not a hawq model (bad magic)",
            Error::UnsupportedVersion { .. } => "model format version is not supported",
            Error::ChecksumMismatch { .. } => "model checksum mismatch",
            Error::Malformed => "model body is malformed",
            Error::TrailingBytes => "model body has trailing bytes after the last op",
            Error::TooManyTensors => "model has too many tensors",
            Error::BadShape { .. } => "tensor has an invalid shape",
            Error::TensorOutOfArena { .. } => "tensor lies outside the arena",
            Error::BadZeroPoint { .. } => "tensor has a zero point outside its range",
            Error::ScratchOutOfArena => "scratch region lies outside the arena",
            Error::OpScratchOutOfArena { .. } => "op has scratch outside the arena",
            Error::ScratchOverlap { .. } => "op has scratch overlapping its input or output",
            Error::BadTensorIndex { .. } => "op names a tensor that does not exist",
            Error::WrongDtype { .. } => "op has a tensor of the wrong data type",
            Error::ShapeMismatch { .. } => "op has inconsistent shapes",
            Error::UnsupportedBits { .. } => "op uses an unsupported bit width",
            Error::BadParameter { .. } => "op has a parameter out of range",
            Error::WeightSizeMismatch { .. } => "op has weight arrays of the wrong length",
            Error::AccumulatorOverflow { .. } => "op could overflow its i32 accumulator",
            Error::OverlappingTensors { .. } => "op has overlapping input and output",
            Error::ArenaTooSmall { .. } => "arena too small",
            Error::SizeMismatch { .. } => "buffer size mismatch",
            Error::EmptyModel => "model has no operations",
            Error::ArenaSizeMismatch { .. } => "header declares a larger arena than the tensors and scratch need",
            Error::KernelNotLinked { .. } => "op needs a kernel this build's kernel set leaves out",
            Error::NotInPlace { .. } => "reshape's output is not its input's bytes",
        }
    }

    /// The op or tensor the error is about: `("op", index)` or `("tensor", index)`.
    pub fn subject(&self) -> Option<(&'static str, u16)> {
        match *self {
            Error::BadShape { tensor } | Error::TensorOutOfArena { tensor } | Error::BadZeroPoint { tensor } => {
                Some(("tensor", tensor))
            }
            Error::OpScratchOutOfArena { op }
            | Error::ScratchOverlap { op }
            | Error::BadTensorIndex { op }
            | Error::WrongDtype { op }
            | Error::ShapeMismatch { op }
            | Error::UnsupportedBits { op }
            | Error::BadParameter { op }
            | Error::WeightSizeMismatch { op }
            | Error::AccumulatorOverflow { op }
            | Error::OverlappingTensors { op }
            | Error::KernelNotLinked { op }
            | Error::NotInPlace { op } => Some(("op", op)),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated => write!(f, "model blob is truncated"),
            Error::BadMagic => write!(f, "not a hawq model (bad magic)"),
            Error::UnsupportedVersion { found } => {
                write!(
                    f,
                    "model format version {found} is not supported (this runtime reads {})",
                    crate::format::FORMAT_VERSION
                )
            }
            Error::ChecksumMismatch { expected, computed } => {
                write!(f, "model checksum mismatch: header says {expected:#010x}, body hashes to {computed:#010x}")
            }
            Error::Malformed => write!(f, "model body is malformed"),
            Error::TrailingBytes => write!(f, "model body has trailing bytes after the last op"),
            Error::TooManyTensors => write!(f, "model has more than {} tensors", crate::format::MAX_TENSORS),
            Error::BadShape { tensor } => write!(f, "tensor {tensor} has an invalid shape"),
            Error::TensorOutOfArena { tensor } => write!(f, "tensor {tensor} lies outside the arena"),
            Error::BadZeroPoint { tensor } => write!(f, "tensor {tensor} has a zero point outside its range"),
            Error::ScratchOutOfArena => write!(f, "scratch region lies outside the arena"),
            Error::OpScratchOutOfArena { op } => write!(f, "op {op} has scratch outside the arena"),
            Error::ScratchOverlap { op } => write!(f, "op {op} has scratch overlapping its input or output"),
            Error::BadTensorIndex { op } => write!(f, "op {op} names a tensor that does not exist"),
            Error::WrongDtype { op } => write!(f, "op {op} has a tensor of the wrong data type"),
            Error::ShapeMismatch { op } => write!(f, "op {op} has inconsistent shapes"),
            Error::UnsupportedBits { op } => write!(f, "op {op} uses an unsupported bit width"),
            Error::BadParameter { op } => write!(f, "op {op} has a parameter out of range"),
            Error::WeightSizeMismatch { op } => write!(f, "op {op} has weight arrays of the wrong length"),
            Error::AccumulatorOverflow { op } => write!(f, "op {op} could overflow its i32 accumulator"),
            Error::OverlappingTensors { op } => write!(f, "op {op} has overlapping input and output"),
            Error::ArenaTooSmall { needed, got } => {
                write!(f, "arena too small: model needs {needed} bytes, got {got}")
            }
            Error::SizeMismatch { expected, got } => {
                write!(f, "buffer size mismatch: expected {expected}, got {got}")
            }
            Error::EmptyModel => write!(f, "model has no operations"),
            Error::ArenaSizeMismatch { declared, needed } => {
                write!(f, "header declares a {declared}-byte arena but the tensors and scratch need {needed}")
            }
            Error::KernelNotLinked { op } => {
                write!(f, "op {op} needs a kernel this build's kernel set leaves out (kernels::linked)")
            }
            Error::NotInPlace { op } => {
                write!(f, "op {op} is a reshape whose output is not its input's bytes (same offset, dtype, size)")
            }
        }
    }
}
