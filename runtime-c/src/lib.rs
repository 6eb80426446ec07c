//! # hawq-runtime-c
//!
//! A C interface to [`hawq_runtime`]: a static library (`libhawq_runtime_c.a`) and its header
//! `include/hawq.h`, generated from this file by cbindgen (`tests/header.rs` keeps the committed
//! header equal to what cbindgen makes of this file).
//!
//! No heap: the caller owns every byte. A loaded model lives in a [`HawqModel`] and an
//! interpreter in a [`HawqInterpreter`], fixed-size opaque structs the caller declares
//! (static storage, the stack, a struct member); the sizes are words of `size_t`, and static
//! assertions below prove that the runtime's values fit them on every target this crate builds
//! for. The model blob (typically a `const` array in flash) and the arena are the caller's too.
//!
//! Every function checks each pointer for NULL and alignment, each length, whether a handle was
//! loaded/initialized, and returns a [`HawqStatus`]; runtime errors mirror
//! [`hawq_runtime::Error`] variant for variant. Nothing here panics on any argument; a panic
//! elsewhere (a bug: the runtime never panics on a model its loader accepted) runs the panic
//! handler of the `panic-handler` feature, which traps. No `core::fmt` on any path of this
//! crate: status strings are static C strings.
//!
//! An interpreter refers to its model handle and its arena by address: keep both alive and in
//! place while it is used. Every call re-checks that the model handle is still loaded and the
//! arena still large enough for it, so a handle whose model was reloaded or cleared fails with a
//! status instead of running on a stale plan.
#![no_std]

// Host builds (tests, the compiler's use of the enumerations) link std, which brings the panic
// handler a static library needs there.
#[cfg(not(target_os = "none"))]
extern crate std;

use core::ffi::{c_char, CStr};
use core::mem::{align_of, size_of};
use core::ptr;
use core::slice;

use hawq_runtime::format::{DType, RawInput, TensorDesc, FORMAT_VERSION};
use hawq_runtime::{Error, Interpreter, Model};

/// Version of this interface (the layout of its types and the meaning of its functions);
/// `hawq_abi_version()` returns the library's, so a program can check it was compiled against
/// the header of the library it links.
pub const HAWQ_ABI_VERSION: u32 = 2;

/// The model file format version this library reads (`hawq_runtime::format::FORMAT_VERSION`).
/// Headers written by `hawq compile --emit-c` check it at compile time.
pub const HAWQ_FORMAT_VERSION: u32 = 7;

/// Size of `hawq_model` in words of `size_t`: 104 bytes on 32-bit targets (the runtime's model
/// takes 88, the handle's tag, the blob's extent and its load count 16), room to spare on 64-bit
/// hosts (25 words in version 1 of this interface).
pub const HAWQ_MODEL_WORDS: usize = 26;

/// Size of `hawq_interpreter` in words of `size_t` (4 in version 1 of this interface, without
/// the workspace).
pub const HAWQ_INTERPRETER_WORDS: usize = 7;

/// Storage for one loaded model. Declare it (zero-initialized static storage is fine), pass it to
/// `hawq_model_load`, keep it in place while interpreters use it. It holds no copy of the blob.
#[repr(C)]
pub struct HawqModel {
    opaque: [usize; HAWQ_MODEL_WORDS],
}

/// Storage for one interpreter (a model, an arena, a workspace if any). Declare it, pass it to
/// `hawq_interpreter_init` or `hawq_interpreter_init_with_workspace`.
#[repr(C)]
pub struct HawqInterpreter {
    opaque: [usize; HAWQ_INTERPRETER_WORDS],
}

/// What a call returned. `HAWQ_OK` is 0; 1–25 are the runtime's errors, one per
/// `hawq_runtime::Error` variant; 100 and up are errors of this interface's arguments.
/// `hawq_status_str` gives a message for each.
#[repr(i32)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HawqStatus {
    HAWQ_OK = 0,
    /// The blob is shorter than its header or than the body length the header announces.
    HAWQ_ERR_TRUNCATED = 1,
    /// The blob does not start with `HAWQ`.
    HAWQ_ERR_BAD_MAGIC = 2,
    /// The blob's format version is not `HAWQ_FORMAT_VERSION`.
    HAWQ_ERR_UNSUPPORTED_VERSION = 3,
    /// The blob's CRC-32 does not match its header: damaged in storage or in transfer.
    HAWQ_ERR_CHECKSUM_MISMATCH = 4,
    /// The body is not a valid encoding of the model tables.
    HAWQ_ERR_MALFORMED = 5,
    /// Bytes are left over after the last operation.
    HAWQ_ERR_TRAILING_BYTES = 6,
    /// More tensors than the format allows.
    HAWQ_ERR_TOO_MANY_TENSORS = 7,
    /// A tensor's shape has a zero or oversized dimension.
    HAWQ_ERR_BAD_SHAPE = 8,
    /// A tensor does not lie inside the arena.
    HAWQ_ERR_TENSOR_OUT_OF_ARENA = 9,
    /// A quantized tensor's zero point lies outside its bit width's range.
    HAWQ_ERR_BAD_ZERO_POINT = 10,
    /// The scratch region does not lie inside the arena.
    HAWQ_ERR_SCRATCH_OUT_OF_ARENA = 11,
    /// An operation (or the model's input/output) names a tensor that does not exist.
    HAWQ_ERR_BAD_TENSOR_INDEX = 12,
    /// An operation's tensors have the wrong data type.
    HAWQ_ERR_WRONG_DTYPE = 13,
    /// An operation's tensor shapes do not agree with its parameters.
    HAWQ_ERR_SHAPE_MISMATCH = 14,
    /// A bit width the format does not define.
    HAWQ_ERR_UNSUPPORTED_BITS = 15,
    /// An operation's parameter is outside its domain.
    HAWQ_ERR_BAD_PARAMETER = 16,
    /// A packed weight, bias or requantization array has the wrong length.
    HAWQ_ERR_WEIGHT_SIZE_MISMATCH = 17,
    /// A layer could overflow its 32-bit accumulator.
    HAWQ_ERR_ACCUMULATOR_OVERFLOW = 18,
    /// An operation's input and output overlap where the kernel cannot work in place.
    HAWQ_ERR_OVERLAPPING_TENSORS = 19,
    /// The arena is smaller than `hawq_arena_bytes` of the model.
    HAWQ_ERR_ARENA_TOO_SMALL = 20,
    /// A buffer has the wrong number of bytes or elements (e.g. the raw input's length).
    HAWQ_ERR_SIZE_MISMATCH = 21,
    /// The model has no operation.
    HAWQ_ERR_EMPTY_MODEL = 22,
    /// The header declares an arena larger than the model's tensors need.
    HAWQ_ERR_ARENA_SIZE_MISMATCH = 23,
    /// An operation's scratch does not lie inside the arena.
    HAWQ_ERR_OP_SCRATCH_OUT_OF_ARENA = 24,
    /// An operation's scratch overlaps its input or output.
    HAWQ_ERR_SCRATCH_OVERLAP = 25,
    /// The model needs a kernel this build of the library leaves out (never with the default
    /// build, which links every kernel).
    HAWQ_ERR_KERNEL_NOT_LINKED = 26,
    /// A reshape's output is not its input's bytes (the compiler always places it so).
    HAWQ_ERR_NOT_IN_PLACE = 27,
    /// A pointer argument is NULL.
    HAWQ_ERR_NULL_POINTER = 100,
    /// A handle or output pointer is not aligned for its type.
    HAWQ_ERR_MISALIGNED = 101,
    /// The model handle holds no loaded model (never loaded, or its load failed), or the
    /// interpreter handle was never initialized.
    HAWQ_ERR_NOT_LOADED = 102,
    /// The output index is not below `hawq_output_count`.
    HAWQ_ERR_NO_SUCH_OUTPUT = 103,
    /// A length exceeds `PTRDIFF_MAX` bytes.
    HAWQ_ERR_TOO_LARGE = 104,
    /// The arena overlaps the model blob or a handle, the blob overlaps its model handle, or an
    /// input/output buffer overlaps the arena.
    HAWQ_ERR_BUFFERS_OVERLAP = 105,
}

use HawqStatus::*;

impl HawqStatus {
    /// Every status, in numeric order.
    ///
    /// cbindgen:ignore
    pub const ALL: [HawqStatus; 34] = [
        HAWQ_OK,
        HAWQ_ERR_TRUNCATED,
        HAWQ_ERR_BAD_MAGIC,
        HAWQ_ERR_UNSUPPORTED_VERSION,
        HAWQ_ERR_CHECKSUM_MISMATCH,
        HAWQ_ERR_MALFORMED,
        HAWQ_ERR_TRAILING_BYTES,
        HAWQ_ERR_TOO_MANY_TENSORS,
        HAWQ_ERR_BAD_SHAPE,
        HAWQ_ERR_TENSOR_OUT_OF_ARENA,
        HAWQ_ERR_BAD_ZERO_POINT,
        HAWQ_ERR_SCRATCH_OUT_OF_ARENA,
        HAWQ_ERR_BAD_TENSOR_INDEX,
        HAWQ_ERR_WRONG_DTYPE,
        HAWQ_ERR_SHAPE_MISMATCH,
        HAWQ_ERR_UNSUPPORTED_BITS,
        HAWQ_ERR_BAD_PARAMETER,
        HAWQ_ERR_WEIGHT_SIZE_MISMATCH,
        HAWQ_ERR_ACCUMULATOR_OVERFLOW,
        HAWQ_ERR_OVERLAPPING_TENSORS,
        HAWQ_ERR_ARENA_TOO_SMALL,
        HAWQ_ERR_SIZE_MISMATCH,
        HAWQ_ERR_EMPTY_MODEL,
        HAWQ_ERR_ARENA_SIZE_MISMATCH,
        HAWQ_ERR_OP_SCRATCH_OUT_OF_ARENA,
        HAWQ_ERR_SCRATCH_OVERLAP,
        HAWQ_ERR_KERNEL_NOT_LINKED,
        HAWQ_ERR_NOT_IN_PLACE,
        HAWQ_ERR_NULL_POINTER,
        HAWQ_ERR_MISALIGNED,
        HAWQ_ERR_NOT_LOADED,
        HAWQ_ERR_NO_SUCH_OUTPUT,
        HAWQ_ERR_TOO_LARGE,
        HAWQ_ERR_BUFFERS_OVERLAP,
    ];

    /// The status of a runtime error (the variant's fields are not carried over).
    pub fn of(e: Error) -> HawqStatus {
        match e {
            Error::Truncated => HAWQ_ERR_TRUNCATED,
            Error::BadMagic => HAWQ_ERR_BAD_MAGIC,
            Error::UnsupportedVersion { .. } => HAWQ_ERR_UNSUPPORTED_VERSION,
            Error::ChecksumMismatch { .. } => HAWQ_ERR_CHECKSUM_MISMATCH,
            Error::Malformed => HAWQ_ERR_MALFORMED,
            Error::TrailingBytes => HAWQ_ERR_TRAILING_BYTES,
            Error::TooManyTensors => HAWQ_ERR_TOO_MANY_TENSORS,
            Error::BadShape { .. } => HAWQ_ERR_BAD_SHAPE,
            Error::TensorOutOfArena { .. } => HAWQ_ERR_TENSOR_OUT_OF_ARENA,
            Error::BadZeroPoint { .. } => HAWQ_ERR_BAD_ZERO_POINT,
            Error::ScratchOutOfArena => HAWQ_ERR_SCRATCH_OUT_OF_ARENA,
            Error::BadTensorIndex { .. } => HAWQ_ERR_BAD_TENSOR_INDEX,
            Error::WrongDtype { .. } => HAWQ_ERR_WRONG_DTYPE,
            Error::ShapeMismatch { .. } => HAWQ_ERR_SHAPE_MISMATCH,
            Error::UnsupportedBits { .. } => HAWQ_ERR_UNSUPPORTED_BITS,
            Error::BadParameter { .. } => HAWQ_ERR_BAD_PARAMETER,
            Error::WeightSizeMismatch { .. } => HAWQ_ERR_WEIGHT_SIZE_MISMATCH,
            Error::AccumulatorOverflow { .. } => HAWQ_ERR_ACCUMULATOR_OVERFLOW,
            Error::OverlappingTensors { .. } => HAWQ_ERR_OVERLAPPING_TENSORS,
            Error::ArenaTooSmall { .. } => HAWQ_ERR_ARENA_TOO_SMALL,
            Error::SizeMismatch { .. } => HAWQ_ERR_SIZE_MISMATCH,
            Error::EmptyModel => HAWQ_ERR_EMPTY_MODEL,
            Error::ArenaSizeMismatch { .. } => HAWQ_ERR_ARENA_SIZE_MISMATCH,
            Error::OpScratchOutOfArena { .. } => HAWQ_ERR_OP_SCRATCH_OUT_OF_ARENA,
            Error::ScratchOverlap { .. } => HAWQ_ERR_SCRATCH_OVERLAP,
            Error::KernelNotLinked { .. } => HAWQ_ERR_KERNEL_NOT_LINKED,
            Error::NotInPlace { .. } => HAWQ_ERR_NOT_IN_PLACE,
        }
    }

    /// The status numbered `code`, if there is one.
    pub fn from_code(code: i32) -> Option<HawqStatus> {
        HawqStatus::ALL.into_iter().find(|&s| s as i32 == code)
    }

    /// A one-line message.
    pub fn message(self) -> &'static CStr {
        match self {
            HAWQ_OK => c"ok",
            HAWQ_ERR_TRUNCATED => c"model blob is truncated",
            HAWQ_ERR_BAD_MAGIC => c"not a hawq model (bad magic)",
            HAWQ_ERR_UNSUPPORTED_VERSION => c"model format version is not the one this library reads",
            HAWQ_ERR_CHECKSUM_MISMATCH => c"model checksum mismatch",
            HAWQ_ERR_MALFORMED => c"model body is malformed",
            HAWQ_ERR_TRAILING_BYTES => c"model body has trailing bytes after the last op",
            HAWQ_ERR_TOO_MANY_TENSORS => c"model has too many tensors",
            HAWQ_ERR_BAD_SHAPE => c"a tensor has an invalid shape",
            HAWQ_ERR_TENSOR_OUT_OF_ARENA => c"a tensor lies outside the arena",
            HAWQ_ERR_BAD_ZERO_POINT => c"a tensor has a zero point outside its range",
            HAWQ_ERR_SCRATCH_OUT_OF_ARENA => c"scratch region lies outside the arena",
            HAWQ_ERR_BAD_TENSOR_INDEX => c"an op names a tensor that does not exist",
            HAWQ_ERR_WRONG_DTYPE => c"an op has a tensor of the wrong data type",
            HAWQ_ERR_SHAPE_MISMATCH => c"an op has inconsistent shapes",
            HAWQ_ERR_UNSUPPORTED_BITS => c"an op uses an unsupported bit width",
            HAWQ_ERR_BAD_PARAMETER => c"an op has a parameter out of range",
            HAWQ_ERR_WEIGHT_SIZE_MISMATCH => c"an op has weight arrays of the wrong length",
            HAWQ_ERR_ACCUMULATOR_OVERFLOW => c"an op could overflow its i32 accumulator",
            HAWQ_ERR_OVERLAPPING_TENSORS => c"an op has overlapping input and output",
            HAWQ_ERR_ARENA_TOO_SMALL => c"arena too small for the model (see hawq_arena_bytes)",
            HAWQ_ERR_SIZE_MISMATCH => c"buffer size mismatch",
            HAWQ_ERR_EMPTY_MODEL => c"model has no operations",
            HAWQ_ERR_ARENA_SIZE_MISMATCH => c"header declares a larger arena than the tensors need",
            HAWQ_ERR_OP_SCRATCH_OUT_OF_ARENA => c"an operation's scratch lies outside the arena",
            HAWQ_ERR_SCRATCH_OVERLAP => c"an operation's scratch overlaps its input or output",
            HAWQ_ERR_KERNEL_NOT_LINKED => c"the model needs a kernel this build leaves out",
            HAWQ_ERR_NOT_IN_PLACE => c"a reshape's output is not its input's bytes",
            HAWQ_ERR_NULL_POINTER => c"a pointer argument is NULL",
            HAWQ_ERR_MISALIGNED => c"a handle or buffer is not aligned for its type",
            HAWQ_ERR_NOT_LOADED => c"the handle holds no loaded model or initialized interpreter",
            HAWQ_ERR_NO_SUCH_OUTPUT => c"no output of that index",
            HAWQ_ERR_TOO_LARGE => c"a length exceeds PTRDIFF_MAX",
            HAWQ_ERR_BUFFERS_OVERLAP => c"a buffer overlaps the arena, the model blob or a handle",
        }
    }
}

/// Element type of a tensor in the arena.
#[repr(i32)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HawqDtype {
    /// One signed byte per element.
    HAWQ_DTYPE_INT8 = 0,
    /// Two signed 4-bit elements per byte, the first in the low nibble.
    HAWQ_DTYPE_INT4 = 1,
    /// IEEE binary32, little-endian (softmax, log-softmax and dequantize outputs).
    HAWQ_DTYPE_FLOAT32 = 2,
}

/// What `hawq_write_input_raw` takes, per element.
#[repr(i32)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HawqRawKind {
    /// One `uint8_t` (e.g. a pixel); the runtime stores `x - 128`.
    HAWQ_RAW_U8 = 0,
    /// One `int8_t` (e.g. an int8 MFCC).
    HAWQ_RAW_I8 = 1,
    /// One little-endian `float`, quantized with the input's scale and zero point.
    HAWQ_RAW_F32 = 2,
}

impl HawqRawKind {
    pub fn of(raw: RawInput) -> HawqRawKind {
        match raw {
            RawInput::U8 => HawqRawKind::HAWQ_RAW_U8,
            RawInput::I8 => HawqRawKind::HAWQ_RAW_I8,
            RawInput::F32 => HawqRawKind::HAWQ_RAW_F32,
        }
    }
}

impl HawqDtype {
    pub fn of(dtype: DType) -> HawqDtype {
        match dtype {
            DType::I8 => HawqDtype::HAWQ_DTYPE_INT8,
            DType::I4 => HawqDtype::HAWQ_DTYPE_INT4,
            DType::F32 => HawqDtype::HAWQ_DTYPE_FLOAT32,
        }
    }
}

/// A tensor of the model as it lies in the arena. A quantized value `q` stands for the real
/// value `scale * (q - zero_point)`; float tensors have scale 1 and zero point 0.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HawqTensorInfo {
    /// NHWC with N = 1 (`{1, 1, 1, C}` for a vector).
    pub shape: [u16; 4],
    /// Number of values.
    pub elements: u32,
    /// Bytes in the arena (what `hawq_output` returns as the length).
    pub bytes: u32,
    pub dtype: HawqDtype,
    pub scale: f32,
    pub zero_point: i32,
}

impl HawqTensorInfo {
    pub fn of(t: &TensorDesc) -> HawqTensorInfo {
        HawqTensorInfo {
            shape: t.shape,
            // The loader bounds every tensor's elements by u32::MAX / 4.
            elements: t.elements() as u32,
            bytes: t.bytes() as u32,
            dtype: HawqDtype::of(t.dtype),
            scale: t.scale.to_f32(),
            zero_point: t.zero_point as i32,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The handles' contents.

/// What a [`HawqModel`] holds once loaded: the blob's extent (to refuse an arena that overlaps
/// it) and the runtime's model, which borrows the blob.
#[repr(C)]
struct ModelSlot {
    tag: usize,
    blob: *const u8,
    blob_len: usize,
    /// Loads into this handle, counted from whatever the storage held (wrapping): an
    /// interpreter's workspace holds the layout of the model of one load.
    loads: usize,
    model: Model<'static>,
}

/// What a [`HawqInterpreter`] holds once initialized.
#[repr(C)]
#[derive(Clone, Copy)]
struct InterpreterSlot {
    tag: usize,
    model: *const HawqModel,
    arena: *mut u8,
    arena_len: usize,
    /// The weights laid out once by `hawq_interpreter_init_with_workspace` (NULL: none), for
    /// the model of load `loads` of the handle.
    workspace: *const u8,
    workspace_len: usize,
    loads: usize,
}

/// Marks a loaded model / an initialized interpreter; anything else (zeroed static storage, a
/// failed load) is refused with `HAWQ_ERR_NOT_LOADED`.
const MODEL_TAG: usize = 0x4851_4D4C; // "HQML"
const INTERPRETER_TAG: usize = 0x4851_4954; // "HQIT"

// The opaque storage holds the runtime's values on the target this is compiled for: a build for
// a target where it would not fails here.
const _: () = assert!(size_of::<ModelSlot>() <= size_of::<HawqModel>());
const _: () = assert!(align_of::<ModelSlot>() <= align_of::<HawqModel>());
const _: () = assert!(size_of::<InterpreterSlot>() <= size_of::<HawqInterpreter>());
const _: () = assert!(align_of::<InterpreterSlot>() <= align_of::<HawqInterpreter>());
const _: () = assert!(HAWQ_FORMAT_VERSION == FORMAT_VERSION as u32);
const _: () = assert!(size_of::<HawqStatus>() == 4 && size_of::<HawqDtype>() == 4 && size_of::<HawqRawKind>() == 4);

// ---------------------------------------------------------------------------------------------
// Checks of the arguments.

type Checked<T> = Result<T, HawqStatus>;

/// Runs the checks and work of one call; its status.
fn status(call: impl FnOnce() -> Checked<()>) -> HawqStatus {
    match call() {
        Ok(()) => HAWQ_OK,
        Err(s) => s,
    }
}

/// A pointer the caller hands over: not NULL and aligned for `T`.
fn check<T>(p: *const T) -> Checked<()> {
    if p.is_null() {
        Err(HAWQ_ERR_NULL_POINTER)
    } else if !p.is_aligned() {
        Err(HAWQ_ERR_MISALIGNED)
    } else {
        Ok(())
    }
}

/// A length of `len` elements of `T` that a slice may have (at most `isize::MAX` bytes).
fn check_len<T>(len: usize) -> Checked<()> {
    match len.checked_mul(size_of::<T>()) {
        Some(bytes) if bytes <= isize::MAX as usize => Ok(()),
        _ => Err(HAWQ_ERR_TOO_LARGE),
    }
}

/// Whether `[a, a + a_len)` and `[b, b + b_len)` share a byte.
fn overlap(a: *const u8, a_len: usize, b: *const u8, b_len: usize) -> bool {
    let (a, b) = (a as usize, b as usize);
    a_len > 0 && b_len > 0 && a < b.saturating_add(b_len) && b < a.saturating_add(a_len)
}

/// The model loaded in `model`'s storage.
///
/// # Safety
/// `model`, if not NULL, points to a `hawq_model` (any contents) the caller does not write
/// during the call; if loaded, its blob is still valid.
unsafe fn loaded<'h>(model: *const HawqModel) -> Checked<&'h ModelSlot> {
    check(model)?;
    let slot = model.cast::<ModelSlot>();
    // SAFETY: non-NULL and aligned (checked), and the storage holds a ModelSlot (static
    // assertion); the tag is a plain word, valid for any bits the storage holds.
    let tag = unsafe { ptr::addr_of!((*slot).tag).read() };
    if tag != MODEL_TAG {
        return Err(HAWQ_ERR_NOT_LOADED);
    }
    // SAFETY: the tag is written only after hawq_model_load wrote a valid slot; the blob the
    // model borrows stays valid by the caller's contract.
    Ok(unsafe { &*slot })
}

/// The interpreter initialized in `it`'s storage, with its model (checked to be loaded still)
/// and its arena (checked to be large enough for that model still).
///
/// # Safety
/// `it`, if not NULL, points to a `hawq_interpreter` (any contents); if initialized, its model
/// handle and arena are still valid, and no one else accesses the arena during the call.
unsafe fn interpreter<'h>(it: *const HawqInterpreter) -> Checked<(&'h ModelSlot, InterpreterSlot)> {
    check(it)?;
    let slot = it.cast::<InterpreterSlot>();
    // SAFETY: non-NULL and aligned (checked); the storage holds an InterpreterSlot (static
    // assertion), whose fields are plain words and pointers, valid for any bits.
    let s = unsafe { ptr::read(slot) };
    if s.tag != INTERPRETER_TAG {
        return Err(HAWQ_ERR_NOT_LOADED);
    }
    // SAFETY: hawq_interpreter_init stored a non-NULL, aligned model handle, valid by contract.
    let model = unsafe { loaded(s.model) }?;
    if s.arena_len < model.model.arena_bytes() {
        return Err(HAWQ_ERR_ARENA_TOO_SMALL);
    }
    Ok((model, s))
}

// ---------------------------------------------------------------------------------------------
// The interface.

/// The interface version of this library (`HAWQ_ABI_VERSION` of its header).
#[no_mangle]
pub extern "C" fn hawq_abi_version() -> u32 {
    HAWQ_ABI_VERSION
}

/// A message for a status (any integer): a static NUL-terminated string, never NULL.
#[no_mangle]
pub extern "C" fn hawq_status_str(status: i32) -> *const c_char {
    HawqStatus::from_code(status).map_or(c"unknown status", HawqStatus::message).as_ptr()
}

/// Loads and validates a model blob (a `.hq` file's bytes, e.g. the array of
/// `hawq compile --emit-c`) into `out_model`. Validation reads the whole blob once (CRC-32 and
/// every operation); nothing is copied. On failure `out_model` holds no model.
///
/// # Safety
/// `blob` points to `len` readable bytes that stay valid and unchanged while the model is used;
/// `out_model` points to writable `hawq_model` storage.
#[no_mangle]
pub unsafe extern "C" fn hawq_model_load(blob: *const u8, len: usize, out_model: *mut HawqModel) -> HawqStatus {
    status(|| {
        check(out_model)?;
        let slot = out_model.cast::<ModelSlot>();
        // SAFETY: non-NULL and aligned (checked), and large enough (static assertion): a failed
        // load leaves the storage marked as holding no model, and counted as a load (a plain
        // word, valid for any bits the storage held).
        let loads = unsafe {
            ptr::addr_of_mut!((*slot).tag).write(0);
            let loads = ptr::addr_of!((*slot).loads).read().wrapping_add(1);
            ptr::addr_of_mut!((*slot).loads).write(loads);
            loads
        };
        if blob.is_null() {
            return Err(HAWQ_ERR_NULL_POINTER);
        }
        check_len::<u8>(len)?;
        if overlap(blob, len, out_model.cast_const().cast(), size_of::<HawqModel>()) {
            return Err(HAWQ_ERR_BUFFERS_OVERLAP);
        }
        // SAFETY: the caller's contract: `len` readable bytes that outlive the model handle.
        let bytes: &'static [u8] = unsafe { slice::from_raw_parts(blob, len) };
        let model = Model::from_bytes(bytes).map_err(HawqStatus::of)?;
        // SAFETY: the storage is the caller's, in bounds and aligned (above); ModelSlot has no
        // destructor, so overwriting a previous model leaks nothing.
        unsafe { slot.write(ModelSlot { tag: MODEL_TAG, blob, blob_len: len, loads, model }) };
        Ok(())
    })
}

/// Bytes of arena the model needs (what `hawq compile --emit-c` writes as `<NAME>_ARENA_BYTES`);
/// 0 when `model` holds no loaded model.
///
/// # Safety
/// `model` is NULL or points to a `hawq_model`.
#[no_mangle]
pub unsafe extern "C" fn hawq_arena_bytes(model: *const HawqModel) -> usize {
    // SAFETY: the caller's contract.
    unsafe { loaded(model) }.map_or(0, |m| m.model.arena_bytes())
}

/// How many outputs the model has (at least 1); 0 when `model` holds no loaded model.
///
/// # Safety
/// `model` is NULL or points to a `hawq_model`.
#[no_mangle]
pub unsafe extern "C" fn hawq_output_count(model: *const HawqModel) -> usize {
    // SAFETY: the caller's contract.
    unsafe { loaded(model) }.map_or(0, |m| m.model.output_count())
}

/// The model's input tensor (quantized, as it lies in the arena).
///
/// # Safety
/// `model` is NULL or points to a `hawq_model`; `out` is NULL or points to a writable
/// `hawq_tensor_info`.
#[no_mangle]
pub unsafe extern "C" fn hawq_input_info(model: *const HawqModel, out: *mut HawqTensorInfo) -> HawqStatus {
    status(|| {
        // SAFETY: the caller's contract.
        let m = unsafe { loaded(model) }?;
        check(out)?;
        // SAFETY: non-NULL, aligned (checked) and writable (contract).
        unsafe { out.write(HawqTensorInfo::of(m.model.input())) };
        Ok(())
    })
}

/// What `hawq_write_input_raw` takes: the kind of each element and the total bytes.
///
/// # Safety
/// `model` is NULL or points to a `hawq_model`; `kind` and `bytes` are NULL or point to
/// writable values of their types.
#[no_mangle]
pub unsafe extern "C" fn hawq_input_raw(
    model: *const HawqModel,
    kind: *mut HawqRawKind,
    bytes: *mut usize,
) -> HawqStatus {
    status(|| {
        // SAFETY: the caller's contract.
        let m = unsafe { loaded(model) }?;
        check(kind)?;
        check(bytes)?;
        let raw = m.model.raw_input();
        // SAFETY: both non-NULL, aligned (checked) and writable (contract).
        unsafe {
            kind.write(HawqRawKind::of(raw));
            bytes.write(m.model.input().elements() * raw.element_bytes());
        }
        Ok(())
    })
}

/// Output `index`'s tensor (0 is the first; below `hawq_output_count`).
///
/// # Safety
/// `model` is NULL or points to a `hawq_model`; `out` is NULL or points to a writable
/// `hawq_tensor_info`.
#[no_mangle]
pub unsafe extern "C" fn hawq_output_info(
    model: *const HawqModel,
    index: usize,
    out: *mut HawqTensorInfo,
) -> HawqStatus {
    status(|| {
        // SAFETY: the caller's contract.
        let m = unsafe { loaded(model) }?;
        check(out)?;
        let t = m.model.output_tensor(index).and_then(|i| m.model.tensor(i)).ok_or(HAWQ_ERR_NO_SUCH_OUTPUT)?;
        // SAFETY: non-NULL, aligned (checked) and writable (contract).
        unsafe { out.write(HawqTensorInfo::of(&t)) };
        Ok(())
    })
}

/// Prepares `out` to run `model` in `arena` (at least `hawq_arena_bytes(model)` bytes, any
/// alignment; 16-byte alignment helps the kernels). The interpreter refers to the model handle
/// and the arena: keep both in place and alive while it is used, and do not touch the arena
/// during a call. The arena must not overlap the model blob or either handle.
///
/// # Safety
/// `model` is NULL or points to a `hawq_model`; `arena` is NULL or points to `arena_len`
/// writable bytes; `out` is NULL or points to writable `hawq_interpreter` storage.
#[no_mangle]
pub unsafe extern "C" fn hawq_interpreter_init(
    model: *const HawqModel,
    arena: *mut u8,
    arena_len: usize,
    out: *mut HawqInterpreter,
) -> HawqStatus {
    // SAFETY: the caller's contract, with no workspace.
    unsafe { init(model, arena, arena_len, None, out) }
}

/// Bytes of workspace for `hawq_interpreter_init_with_workspace`: where a kernel reads a layer's
/// weights in another order than the model file's (x86-64 with AVX-512 VNNI), the room to lay
/// them out once rather than on every `hawq_invoke`; 0 on every other machine, and when `model`
/// holds no loaded model.
///
/// # Safety
/// `model` is NULL or points to a `hawq_model`.
#[no_mangle]
pub unsafe extern "C" fn hawq_workspace_bytes(model: *const HawqModel) -> usize {
    // SAFETY: the caller's contract.
    unsafe { loaded(model) }.map_or(0, |m| m.model.host_workspace_bytes())
}

/// `hawq_interpreter_init`, and lays out the weights of the layers whose kernel reads them in
/// another order into `workspace` (at least `hawq_workspace_bytes(model)` bytes, else
/// `HAWQ_ERR_SIZE_MISMATCH`), once: every `hawq_invoke` then reads them there (resnet8 on an
/// AVX-512 VNNI host: 59 µs per inference, against 76 µs laying them out on each). With
/// `hawq_workspace_bytes(model)` = 0, `workspace` may be NULL and `workspace_len` 0. Keep the
/// workspace in place, alive and unwritten while the interpreter is used; it must not overlap
/// the arena, the model blob or either handle. After another `hawq_model_load` into the model
/// handle the interpreter runs without the workspace (the same outputs, the per-call layout)
/// until it is initialized again.
///
/// # Safety
/// As `hawq_interpreter_init`; `workspace` is NULL or points to `workspace_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn hawq_interpreter_init_with_workspace(
    model: *const HawqModel,
    arena: *mut u8,
    arena_len: usize,
    workspace: *mut u8,
    workspace_len: usize,
    out: *mut HawqInterpreter,
) -> HawqStatus {
    // SAFETY: the caller's contract.
    unsafe { init(model, arena, arena_len, Some((workspace, workspace_len)), out) }
}

/// The checks and work of `hawq_interpreter_init_with_workspace` (`workspace` `None`: those of
/// `hawq_interpreter_init`).
///
/// # Safety
/// As `hawq_interpreter_init_with_workspace`.
unsafe fn init(
    model: *const HawqModel,
    arena: *mut u8,
    arena_len: usize,
    workspace: Option<(*mut u8, usize)>,
    out: *mut HawqInterpreter,
) -> HawqStatus {
    let asked = workspace.is_some();
    let (workspace, workspace_len) = workspace.unwrap_or((ptr::null_mut(), 0));
    status(|| {
        check(out)?;
        let slot = out.cast::<InterpreterSlot>();
        // SAFETY: non-NULL and aligned (checked), and large enough (static assertion).
        unsafe { ptr::addr_of_mut!((*slot).tag).write(0) };
        // SAFETY: the caller's contract.
        let m = unsafe { loaded(model) }?;
        if arena.is_null() || (workspace.is_null() && workspace_len > 0) {
            return Err(HAWQ_ERR_NULL_POINTER);
        }
        check_len::<u8>(arena_len)?;
        check_len::<u8>(workspace_len)?;
        if arena_len < m.model.arena_bytes() {
            return Err(HAWQ_ERR_ARENA_TOO_SMALL);
        }
        let handles = [
            (m.blob, m.blob_len),
            (model.cast(), size_of::<HawqModel>()),
            (out.cast_const().cast(), size_of::<HawqInterpreter>()),
        ];
        let touches = |p: *const u8, n: usize| handles.iter().any(|&(h, len)| overlap(p, n, h, len));
        if touches(arena, arena_len)
            || touches(workspace, workspace_len)
            || overlap(arena, arena_len, workspace, workspace_len)
        {
            return Err(HAWQ_ERR_BUFFERS_OVERLAP);
        }
        if asked {
            // SAFETY: the caller's contract for both (non-NULL or, for the workspace, NULL with
            // length 0: no bytes; lengths checked above); they do not overlap each other
            // (checked) and are this call's alone.
            let (arena, workspace) = unsafe {
                let workspace: &mut [u8] =
                    if workspace.is_null() { &mut [] } else { slice::from_raw_parts_mut(workspace, workspace_len) };
                (slice::from_raw_parts_mut(arena, arena_len), workspace)
            };
            // Too short (NULL where a workspace is needed included): HAWQ_ERR_SIZE_MISMATCH.
            Interpreter::with_workspace(&m.model, arena, workspace).map_err(HawqStatus::of)?;
        }
        let workspace = workspace.cast_const();
        let (tag, loads) = (INTERPRETER_TAG, m.loads);
        let bound = InterpreterSlot { tag, model, arena, arena_len, workspace, workspace_len, loads };
        // SAFETY: in bounds and aligned (above); plain words.
        unsafe { slot.write(bound) };
        Ok(())
    })
}

/// Writes the raw input (contract §6): `len` must be the bytes `hawq_input_raw` gives, one
/// `uint8_t`/`int8_t` or one little-endian `float` per element, in the source model's layout.
///
/// # Safety
/// `it` is NULL or points to a `hawq_interpreter`; `raw` is NULL or points to `len` readable
/// bytes, not in the arena.
#[no_mangle]
pub unsafe extern "C" fn hawq_write_input_raw(it: *mut HawqInterpreter, raw: *const u8, len: usize) -> HawqStatus {
    // SAFETY: the caller's contract.
    unsafe { write_input(it, raw, len, |i, raw| i.write_input_raw(raw)) }
}

/// As `hawq_write_input_raw`, with the channels interleaved per pixel (`[H, W, C]`, as cameras
/// deliver a frame) whatever layout the source model declared: a PyTorch (NCHW) model takes a
/// camera frame as it comes.
///
/// # Safety
/// As `hawq_write_input_raw`.
#[no_mangle]
pub unsafe extern "C" fn hawq_write_input_interleaved(
    it: *mut HawqInterpreter,
    raw: *const u8,
    len: usize,
) -> HawqStatus {
    // SAFETY: the caller's contract, the same as hawq_write_input_raw's.
    unsafe { write_input(it, raw, len, |i, raw| i.write_input_interleaved(raw)) }
}

/// Writes an RGB565 frame (`len` = 2 bytes per pixel, little-endian unless `big_endian` is
/// non-zero) to a model of three `uint8_t` input channels of the frame's size, each channel
/// widened to 8 bits. Another model is `HAWQ_ERR_WRONG_DTYPE` or `HAWQ_ERR_SIZE_MISMATCH`.
///
/// # Safety
/// As `hawq_write_input_raw`, `frame` for `raw`.
#[no_mangle]
pub unsafe extern "C" fn hawq_write_input_rgb565(
    it: *mut HawqInterpreter,
    frame: *const u8,
    len: usize,
    big_endian: i32,
) -> HawqStatus {
    // SAFETY: the caller's contract, the same as hawq_write_input_raw's.
    unsafe { write_input(it, frame, len, |i, raw| i.write_input_rgb565(raw, big_endian != 0)) }
}

/// The checks of `hawq_write_input_raw` and its siblings, then `write` of the input's bytes.
///
/// # Safety
/// As `hawq_write_input_raw`.
unsafe fn write_input(
    it: *mut HawqInterpreter,
    raw: *const u8,
    len: usize,
    write: impl FnOnce(&mut Interpreter<'_, '_>, &[u8]) -> Result<(), Error>,
) -> HawqStatus {
    status(|| {
        // SAFETY: the caller's contract.
        let (m, InterpreterSlot { arena, arena_len, .. }) = unsafe { interpreter(it) }?;
        if raw.is_null() {
            return Err(HAWQ_ERR_NULL_POINTER);
        }
        check_len::<u8>(len)?;
        if overlap(raw, len, arena, arena_len) {
            return Err(HAWQ_ERR_BUFFERS_OVERLAP);
        }
        // SAFETY: the caller's contract for `raw`; the arena was checked at initialization
        // (non-NULL, length) and is the interpreter's alone during the call (contract); the two
        // do not overlap (checked).
        let (raw, arena) = unsafe { (slice::from_raw_parts(raw, len), slice::from_raw_parts_mut(arena, arena_len)) };
        let mut interpreter = Interpreter::new(&m.model, arena).map_err(HawqStatus::of)?;
        write(&mut interpreter, raw).map_err(HawqStatus::of)
    })
}

/// Runs the model once on the input written last.
///
/// # Safety
/// `it` is NULL or points to a `hawq_interpreter`.
#[no_mangle]
pub unsafe extern "C" fn hawq_invoke(it: *mut HawqInterpreter) -> HawqStatus {
    status(|| {
        // SAFETY: the caller's contract.
        let (m, s) = unsafe { interpreter(it) }?;
        // SAFETY: checked at initialization (non-NULL, length); the interpreter's alone during
        // the call (contract).
        let arena = unsafe { slice::from_raw_parts_mut(s.arena, s.arena_len) };
        // A model loaded into the handle since the workspace was prepared runs without it (the
        // layout is another model's); initializing the interpreter again prepares it anew.
        let mut interpreter = if s.workspace.is_null() || s.loads != m.loads {
            Interpreter::new(&m.model, arena)
        } else {
            // SAFETY: checked at initialization (non-NULL, length, apart from the arena) and
            // prepared there; unwritten since (contract).
            let workspace = unsafe { slice::from_raw_parts(s.workspace, s.workspace_len) };
            Interpreter::with_prepared_workspace(&m.model, arena, workspace)
        }
        .map_err(HawqStatus::of)?;
        interpreter.invoke().map_err(HawqStatus::of)
    })
}

/// Output `index`'s bytes in the arena after `hawq_invoke` (`hawq_output_info` says how to read
/// them): `*data` points into the arena, valid until the next call that writes it.
///
/// # Safety
/// `it` is NULL or points to a `hawq_interpreter`; `data` and `len` are NULL or point to
/// writable values of their types.
#[no_mangle]
pub unsafe extern "C" fn hawq_output(
    it: *const HawqInterpreter,
    index: usize,
    data: *mut *const u8,
    len: *mut usize,
) -> HawqStatus {
    status(|| {
        // SAFETY: the caller's contract.
        let (m, InterpreterSlot { arena, arena_len, .. }) = unsafe { interpreter(it) }?;
        check(data)?;
        check(len)?;
        let t = m.model.output_tensor(index).and_then(|i| m.model.tensor(i)).ok_or(HAWQ_ERR_NO_SUCH_OUTPUT)?;
        let (start, n) = (t.offset as usize, t.bytes());
        // The loader proved every tensor lies inside the model's arena, and the arena is at
        // least that large (checked): this is a check, not a correction.
        if start.checked_add(n).is_none_or(|end| end > arena_len) {
            return Err(HAWQ_ERR_TENSOR_OUT_OF_ARENA);
        }
        // SAFETY: both out-pointers are non-NULL, aligned (checked) and writable (contract);
        // `start` lies inside the arena (checked), so the pointer stays in its allocation.
        unsafe {
            data.write(arena.add(start).cast_const());
            len.write(n);
        }
        Ok(())
    })
}

/// Output `index` as real values after `hawq_invoke`: dequantized (`scale * (q - zero_point)`),
/// or copied when the output is float. `out` holds `out_len` floats, at least the output's
/// `elements`; exactly that many are written.
///
/// # Safety
/// `it` is NULL or points to a `hawq_interpreter`; `out` is NULL or points to `out_len`
/// writable floats, not in the arena.
#[no_mangle]
pub unsafe extern "C" fn hawq_output_f32(
    it: *const HawqInterpreter,
    index: usize,
    out: *mut f32,
    out_len: usize,
) -> HawqStatus {
    status(|| {
        // SAFETY: the caller's contract.
        let (m, InterpreterSlot { arena, arena_len, .. }) = unsafe { interpreter(it) }?;
        check(out)?;
        check_len::<f32>(out_len)?;
        if overlap(out.cast_const().cast(), out_len * size_of::<f32>(), arena, arena_len) {
            return Err(HAWQ_ERR_BUFFERS_OVERLAP);
        }
        let tensor = m.model.output_tensor(index).ok_or(HAWQ_ERR_NO_SUCH_OUTPUT)?;
        // SAFETY: the arena as in hawq_invoke, read only; `out` by the caller's contract,
        // aligned and of a valid length (checked), disjoint from the arena (checked).
        let (arena, out) =
            unsafe { (slice::from_raw_parts(arena.cast_const(), arena_len), slice::from_raw_parts_mut(out, out_len)) };
        hawq_runtime::interpreter::read_tensor_f32(&m.model, arena, tensor, out).map(|_| ()).map_err(HawqStatus::of)
    })
}

/// The static library's panic handler on bare-metal targets. The runtime never panics on a
/// model its loader accepted, and this interface never on any argument; should a bug panic all
/// the same, an undefined instruction hands control to the firmware's HardFault (Arm) or
/// illegal-instruction trap (RISC-V) handler. No message is formatted (no `core::fmt`).
#[cfg(all(target_os = "none", feature = "panic-handler"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    trap()
}

#[cfg(all(target_os = "none", feature = "panic-handler", target_arch = "arm"))]
fn trap() -> ! {
    // SAFETY: an undefined instruction: it traps, nothing returns.
    unsafe { core::arch::asm!("udf #0", options(noreturn, nomem, nostack)) }
}

#[cfg(all(target_os = "none", feature = "panic-handler", any(target_arch = "riscv32", target_arch = "riscv64")))]
fn trap() -> ! {
    // SAFETY: an illegal instruction: it traps, nothing returns.
    unsafe { core::arch::asm!("unimp", options(noreturn, nomem, nostack)) }
}

#[cfg(all(
    target_os = "none",
    feature = "panic-handler",
    not(any(target_arch = "arm", target_arch = "riscv32", target_arch = "riscv64"))
))]
fn trap() -> ! {
    loop {
        core::hint::spin_loop();
    }
}
