//! Runs a validated model over a caller-provided arena, at the offsets the compiler planned.

use crate::error::Error;
use crate::format::{ConcatParams, InputLayout, Op, RawInput, TensorDesc, Tensors};
use crate::kernels as k;
use crate::kernels::linked::{self, has};
use crate::kernels::{ActFormat, Layer, Window};
use crate::model::Model;
use crate::quant::{round_half_away, store, Biases, Bits, Multipliers};

/// Executes one model in one arena. Create it once; call [`Interpreter::invoke`] per inference.
///
/// `KERNELS` is the set of kernels the build links ([`linked`]): every kernel by default; a
/// firmware that runs one model names that model's set ([`linked::required`], computed by its
/// build script) and links only those kernels.
///
/// On x86-64 with AVX-512 VNNI, [`Interpreter::with_workspace`] lays out the convolution, depthwise
/// and fully connected weights once, in a caller-provided workspace, for the kernels to read on every
/// inference (with [`Interpreter::new`] they lay them out on each call, a chunk at a time in a
/// bounded stack buffer: any model runs in a thread of 64 KiB of stack either way); the other paths prepare
/// nothing and the workspace is not part of the interpreter on other targets.
pub struct Interpreter<'m, 'a, const KERNELS: u32 = { linked::ALL }> {
    model: &'m Model<'m>,
    arena: &'a mut [u8],
    /// The prepared weights of every op in order ([`prepared_bytes`] each); empty: none.
    #[cfg(target_arch = "x86_64")]
    prepared: &'a [u8],
}

impl<'m, 'a> Interpreter<'m, 'a> {
    /// Checks that the arena is large enough for the model's plan; every kernel linked.
    pub fn new(model: &'m Model<'m>, arena: &'a mut [u8]) -> Result<Self, Error> {
        Self::with_kernels(model, arena)
    }

    /// As [`Interpreter::new`], and lays out the weights of the layers whose kernel reads them
    /// in another order into `workspace`, once, so that no inference does it again. `workspace`
    /// needs at least [`Model::host_workspace_bytes`] bytes (else [`Error::SizeMismatch`], with
    /// that size as `expected`); its contents on entry do not matter, and it stays borrowed by
    /// the interpreter. Only x86-64 with AVX-512 VNNI prepares anything today: elsewhere the size
    /// is 0 and an empty slice will do. The outputs are the same bytes either way.
    pub fn with_workspace(model: &'m Model<'m>, arena: &'a mut [u8], workspace: &'a mut [u8]) -> Result<Self, Error> {
        Self::with_kernels_and_workspace(model, arena, workspace)
    }

    /// An interpreter over a workspace that [`Interpreter::with_workspace`] (or
    /// [`Interpreter::with_kernels_and_workspace`]) prepared for this model at this address, and
    /// that nothing has written since: the weights are not laid out again, nor is the
    /// workspace's size worked out from the ops. For callers that make an interpreter per call
    /// (the C interface's `hawq_invoke`). An op whose region the workspace does not hold whole
    /// runs without it; a workspace holding anything else gives wrong outputs, never an access
    /// outside it or the arena: each kernel checks the length of its region and reads it as
    /// plain values.
    pub fn with_prepared_workspace(
        model: &'m Model<'m>,
        arena: &'a mut [u8],
        workspace: &'a [u8],
    ) -> Result<Self, Error> {
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut it = Self::with_kernels(model, arena)?;
        #[cfg(target_arch = "x86_64")]
        {
            it.prepared = workspace;
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = workspace;
        Ok(it)
    }
}

impl<'m, 'a, const KERNELS: u32> Interpreter<'m, 'a, KERNELS> {
    /// Checks that the arena is large enough for the model's plan and that the kernel set
    /// `KERNELS` holds every kernel the model needs ([`Error::KernelNotLinked`] names the first
    /// op that needs one it leaves out): `Interpreter::<{ KERNELS }>::with_kernels(&model, arena)`.
    pub fn with_kernels(model: &'m Model<'m>, arena: &'a mut [u8]) -> Result<Self, Error> {
        if arena.len() < model.arena_bytes() {
            return Err(Error::ArenaTooSmall { needed: model.arena_bytes() as u32, got: arena.len() as u32 });
        }
        if KERNELS != linked::ALL {
            // linked::first_missing, decoding only the set's ops (an op outside it ends the
            // iteration with KernelNotLinked).
            for (index, op) in model.linked_ops::<KERNELS>().enumerate() {
                let needs = linked::op_needs_under::<KERNELS>(&op?, model.tensors())
                    .ok_or(Error::BadTensorIndex { op: index as u16 })?;
                if !linked::has(KERNELS, needs) {
                    return Err(Error::KernelNotLinked { op: index as u16 });
                }
            }
        }
        Ok(Interpreter {
            model,
            arena,
            #[cfg(target_arch = "x86_64")]
            prepared: &[],
        })
    }

    /// [`Interpreter::with_workspace`] with the kernel set `KERNELS` (as
    /// [`Interpreter::with_kernels`]).
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    pub fn with_kernels_and_workspace(
        model: &'m Model<'m>,
        arena: &'a mut [u8],
        workspace: &'a mut [u8],
    ) -> Result<Self, Error> {
        let mut it = Self::with_kernels(model, arena)?;
        let needed = model.host_workspace_bytes();
        if workspace.len() < needed {
            return Err(Error::SizeMismatch { expected: needed as u32, got: workspace.len() as u32 });
        }
        #[cfg(target_arch = "x86_64")]
        if needed > 0 {
            let tensors = model.tensors();
            let mut at = 0;
            for op in model.linked_ops::<KERNELS>() {
                let op = op?;
                let n = prepared_bytes(&op, tensors);
                let got = workspace.len() as u32;
                let header = workspace
                    .get_mut(at..at + REGION_HEADER)
                    .ok_or(Error::SizeMismatch { expected: needed as u32, got })?;
                header.copy_from_slice(&(n as u32).to_le_bytes());
                at += REGION_HEADER;
                if n > 0 {
                    let region = workspace
                        .get_mut(at..at + n + ALIGN_SLACK)
                        .ok_or(Error::SizeMismatch { expected: needed as u32, got })?;
                    let skip = aligned_start(region.as_ptr());
                    let dst = &mut region[skip..skip + n];
                    if !prepare(&op, tensors, dst) {
                        // Unreachable: the size came from the same layer.
                        return Err(Error::SizeMismatch { expected: n as u32, got: 0 });
                    }
                }
                at += region_bytes(n);
            }
            let prepared: &'a [u8] = workspace;
            it.prepared = &prepared[..needed];
        }
        Ok(it)
    }

    pub fn model(&self) -> &Model<'m> {
        self.model
    }

    /// The input tensor's bytes in the arena (quantized, contract §2), to fill directly.
    pub fn input_bytes_mut(&mut self) -> &mut [u8] {
        let t = *self.model.input();
        &mut self.arena[t.offset as usize..t.offset as usize + t.bytes()]
    }

    /// The output tensor's bytes in the arena after [`Interpreter::invoke`].
    pub fn output_bytes(&self) -> &[u8] {
        let t = self.model.output();
        &self.arena[t.offset as usize..t.offset as usize + t.bytes()]
    }

    /// Writes the sensor's raw values (contract §6): one byte per element for `u8`/`i8` models,
    /// four little-endian bytes per element for `f32` models, in the model's input layout.
    pub fn write_input_raw(&mut self, raw: &[u8]) -> Result<(), Error> {
        let nchw = self.model.meta().input_layout == InputLayout::Nchw;
        self.write_raw(raw, nchw)
    }

    /// [`Interpreter::write_input_raw`] with the channels interleaved per pixel (`[H, W, C]`, as
    /// cameras and most sensors deliver a frame) whatever layout the source model declared: an
    /// NCHW model (PyTorch's) is fed a camera frame as it comes, without a transposed copy.
    pub fn write_input_interleaved(&mut self, raw: &[u8]) -> Result<(), Error> {
        self.write_raw(raw, false)
    }

    /// Writes an RGB565 frame (two bytes per pixel, little-endian unless `big_endian`, as camera
    /// modules and displays use) to a `u8` model with three input channels, red, green and blue,
    /// of the frame's size: each channel widened to 8 bits by repeating its top bits
    /// (`r << 3 | r >> 2`, `g << 2 | g >> 4`: 0 stays 0, the largest value becomes 255, every
    /// value within one step of `r·255/31`). A model that does not take `u8` samples is
    /// [`Error::WrongDtype`] (`op: u16::MAX`, the input), one of another channel count
    /// [`Error::SizeMismatch`] (`expected: 3`), a frame of another size `SizeMismatch` too.
    pub fn write_input_rgb565(&mut self, frame: &[u8], big_endian: bool) -> Result<(), Error> {
        let t = *self.model.input();
        let pixels = t.elements() / 3;
        if self.model.raw_input() != RawInput::U8 {
            return Err(Error::WrongDtype { op: u16::MAX });
        }
        if t.shape[3] != 3 {
            return Err(Error::SizeMismatch { expected: 3, got: t.shape[3] as u32 });
        }
        if frame.len() != 2 * pixels {
            return Err(Error::SizeMismatch { expected: (2 * pixels) as u32, got: frame.len() as u32 });
        }
        let bits = t.dtype.bits().unwrap_or(Bits::B8);
        let buf = self.input_bytes_mut();
        for (p, px) in frame.chunks_exact(2).enumerate() {
            let v = if big_endian { u16::from_be_bytes([px[0], px[1]]) } else { u16::from_le_bytes([px[0], px[1]]) };
            let (r, g, b) = ((v >> 11) as u8, ((v >> 5) & 0x3F) as u8, (v & 0x1F) as u8);
            let rgb = [(r << 3) | (r >> 2), (g << 2) | (g >> 4), (b << 3) | (b >> 2)];
            for (c, x) in rgb.into_iter().enumerate() {
                store(buf, bits, 3 * p + c, (x ^ 0x80) as i8 as i32);
            }
        }
        k::clear_tail(buf, ActFormat { bits, zero_point: 0 }, t.elements());
        Ok(())
    }

    /// Raw samples in NCHW (`nchw`) or NHWC order into the input tensor (contract §6).
    fn write_raw(&mut self, raw: &[u8], nchw: bool) -> Result<(), Error> {
        let t = *self.model.input();
        let kind = self.model.raw_input();
        let width = kind.element_bytes();
        let expected = t.elements() * width;
        if raw.len() != expected {
            return Err(Error::SizeMismatch { expected: expected as u32, got: raw.len() as u32 });
        }
        let (h, w, c) = (t.shape[1] as usize, t.shape[2] as usize, t.shape[3] as usize);
        let bits = t.dtype.bits().unwrap_or(Bits::B8);
        let buf = self.input_bytes_mut();
        // Integer samples in the runtime's order into an 8-bit tensor: a byte each (a uint8
        // sample is `x − 128` with its top bit flipped), no per-element dispatch.
        if !nchw && bits == Bits::B8 && matches!(kind, RawInput::U8 | RawInput::I8) {
            let flip = if kind == RawInput::U8 { 0x80 } else { 0 };
            for (d, &x) in buf.iter_mut().zip(raw) {
                *d = x ^ flip;
            }
            return Ok(());
        }
        for i in 0..t.elements() {
            // Element i of the NHWC arena is element (c, y, x) of a channel-major input.
            let src = if nchw { (i % c) * h * w + i / c } else { i };
            let x = &raw[src * width..src * width + width];
            let q = match (kind, x) {
                (RawInput::U8, &[v]) => (v ^ 0x80) as i8 as i32,
                (RawInput::I8, &[v]) => v as i8 as i32,
                (_, &[a, b, c, d]) => quantize(f32::from_le_bytes([a, b, c, d]), &t, bits),
                _ => 0,
            };
            store(buf, bits, i, q);
        }
        k::clear_tail(buf, ActFormat { bits, zero_point: 0 }, t.elements());
        Ok(())
    }

    /// Quantizes real-valued inputs with the input tensor's scale and zero point (contract §5).
    pub fn write_input_f32(&mut self, x: &[f32]) -> Result<(), Error> {
        let t = *self.model.input();
        if x.len() != t.elements() {
            return Err(Error::SizeMismatch { expected: t.elements() as u32, got: x.len() as u32 });
        }
        let bits = t.dtype.bits().unwrap_or(Bits::B8);
        let buf = self.input_bytes_mut();
        for (i, &v) in x.iter().enumerate() {
            store(buf, bits, i, quantize(v, &t, bits));
        }
        k::clear_tail(buf, ActFormat { bits, zero_point: 0 }, t.elements());
        Ok(())
    }

    /// The output as real values: dequantized, or copied when the output is already f32.
    /// Returns the number of values written.
    pub fn read_output_f32(&self, out: &mut [f32]) -> Result<usize, Error> {
        self.tensor_f32(self.model.meta().output, out)
    }

    /// Output `i`'s bytes (0 is [`Interpreter::output_bytes`]) after [`Interpreter::invoke`];
    /// `None` past the model's last output ([`Model::output_count`]).
    pub fn output_bytes_at(&self, i: usize) -> Option<&[u8]> {
        let t = self.model.tensor(self.model.output_tensor(i)?)?;
        self.arena.get(t.offset as usize..t.offset as usize + t.bytes())
    }

    /// Output `i` as real values, as [`Interpreter::read_output_f32`].
    pub fn read_output_at_f32(&self, i: usize, out: &mut [f32]) -> Result<usize, Error> {
        let tensor = self.model.output_tensor(i).ok_or(Error::BadTensorIndex { op: u16::MAX })?;
        self.tensor_f32(tensor, out)
    }

    /// Any tensor as real values, as [`read_tensor_f32`] (meaningful for the input once written,
    /// and for every tensor whose producer has run and whose bytes no later op reused).
    pub fn tensor_f32(&self, tensor: u16, out: &mut [f32]) -> Result<usize, Error> {
        read_tensor_f32(self.model, self.arena, tensor, out)
    }

    /// Runs every operation once.
    pub fn invoke(&mut self) -> Result<(), Error> {
        self.invoke_observed(|_, _, _| {})
    }

    /// Runs every operation once, calling `after(index, op, arena)` after each (per-layer timing
    /// on the device; per-layer comparison with the float model through [`read_tensor_f32`]).
    pub fn invoke_observed(&mut self, mut after: impl FnMut(usize, &Op<'m>, &[u8])) -> Result<(), Error> {
        let tensors = self.model.tensors();
        let mut at = 0;
        for (index, op) in self.model.linked_ops::<KERNELS>().enumerate() {
            let op = op?;
            let prepared = self.prepared_at(&op, &mut at);
            run_op::<KERNELS>(&op, index as u16, tensors, self.arena, prepared)?;
            after(index, &op, self.arena);
        }
        Ok(())
    }

    /// The prepared weights of the next op in order, whose region starts at `at` in the
    /// workspace (advanced past it). Their length is the region's header, written when they
    /// were prepared: working it out again from the op costs a depthwise layer the check of
    /// every channel's requantization on every inference (15% of DS-CNN's time).
    #[cfg(target_arch = "x86_64")]
    fn prepared_at(&self, _: &Op<'_>, at: &mut usize) -> Prepared<'a> {
        if self.prepared.is_empty() {
            return &[];
        }
        let n = match self.prepared.get(*at..*at + REGION_HEADER) {
            Some(h) => u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize,
            None => return &[],
        };
        *at += REGION_HEADER;
        let region = self.prepared.get(*at..*at + region_bytes(n)).unwrap_or(&[]);
        *at += region_bytes(n);
        let skip = aligned_start(region.as_ptr());
        region.get(skip..skip + n).unwrap_or(&[])
    }

    #[cfg(not(target_arch = "x86_64"))]
    #[inline(always)]
    fn prepared_at(&self, _: &Op<'_>, _: &mut usize) -> Prepared<'a> {
        core::marker::PhantomData
    }
}

#[cfg(feature = "threads")]
mod threads;
#[cfg(feature = "threads")]
pub use threads::Threads;

/// Tensor `tensor` of `model` in `arena` as real values: dequantized (contract §5), or copied
/// when it is f32. Returns the number of values written.
pub fn read_tensor_f32(model: &Model<'_>, arena: &[u8], tensor: u16, out: &mut [f32]) -> Result<usize, Error> {
    let t = &model.tensor(tensor).ok_or(Error::BadTensorIndex { op: u16::MAX })?;
    let n = t.elements();
    if out.len() < n {
        return Err(Error::SizeMismatch { expected: n as u32, got: out.len() as u32 });
    }
    let bytes = arena
        .get(range(t))
        .ok_or(Error::ArenaTooSmall { needed: (t.offset as usize + t.bytes()) as u32, got: arena.len() as u32 })?;
    match t.dtype.bits() {
        None => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        Some(bits) => {
            let scale = t.scale.to_f32();
            for (i, o) in out.iter_mut().take(n).enumerate() {
                *o = scale * (crate::quant::load(bytes, bits, i) - t.zero_point as i32) as f32;
            }
        }
    }
    Ok(n)
}

fn quantize(x: f32, t: &TensorDesc, bits: Bits) -> i32 {
    let (lo, hi) = bits.range();
    let q = round_half_away(x / t.scale.to_f32()).saturating_add(t.zero_point as i32);
    q.max(lo).min(hi)
}

fn format(t: &TensorDesc) -> ActFormat {
    ActFormat { bits: t.dtype.bits().unwrap_or(Bits::B8), zero_point: t.zero_point as i32 }
}

fn range(t: &TensorDesc) -> core::ops::Range<usize> {
    t.offset as usize..t.offset as usize + t.bytes()
}

/// Borrows a read-only input region and a disjoint output region of the arena.
fn split_io<'x>(arena: &'x mut [u8], input: &TensorDesc, output: &TensorDesc) -> (&'x [u8], &'x mut [u8]) {
    let (i, o) = (range(input), range(output));
    if i.end <= o.start {
        let (lo, hi) = arena.split_at_mut(o.start);
        (&lo[i], &mut hi[..o.len()])
    } else {
        let (lo, hi) = arena.split_at_mut(i.start);
        (&hi[..i.len()], &mut lo[o])
    }
}

/// Borrows a kernel's input (read-only), output and scratch (`bytes` at `scratch`): three
/// disjoint regions of the arena, which the validator proved; `None` when they are not (never
/// for a loaded model).
fn split_with_scratch<'x>(
    arena: &'x mut [u8],
    input: &TensorDesc,
    output: &TensorDesc,
    scratch: u32,
    bytes: usize,
) -> Option<(&'x [u8], &'x mut [u8], &'x mut [u8])> {
    if bytes == 0 {
        let (src, dst) = split_io(arena, input, output);
        return Some((src, dst, &mut []));
    }
    let (i, o) = (range(input), range(output));
    let s = scratch as usize..(scratch as usize).checked_add(bytes)?;
    // Split at the region that starts between the other two (one `around` per order: no sorting
    // of the regions, and the roles are constant in each arm).
    Some(match (i.start < o.start, o.start < s.start, i.start < s.start) {
        (true, true, _) => {
            let (i, o, s) = around(arena, i, o, s)?;
            (i, o, s)
        }
        (true, false, true) => {
            let (i, s, o) = around(arena, i, s, o)?;
            (i, o, s)
        }
        (true, false, false) => {
            let (s, i, o) = around(arena, s, i, o)?;
            (i, o, s)
        }
        (false, true, true) => {
            let (o, i, s) = around(arena, o, i, s)?;
            (i, o, s)
        }
        (false, true, false) => {
            let (o, s, i) = around(arena, o, s, i)?;
            (i, o, s)
        }
        (false, false, _) => {
            let (s, o, i) = around(arena, s, o, i)?;
            (i, o, s)
        }
    })
}

/// The regions `first`, `mid` and `last` of `arena`, in that order of their starts; `None`
/// unless they are apart and inside it.
#[inline(never)]
fn around(
    arena: &mut [u8],
    first: core::ops::Range<usize>,
    mid: core::ops::Range<usize>,
    last: core::ops::Range<usize>,
) -> Option<(&mut [u8], &mut [u8], &mut [u8])> {
    let (left, rest) = arena.split_at_mut_checked(mid.start)?;
    let (middle, right) = rest.split_at_mut_checked(mid.end.checked_sub(mid.start)?)?;
    let first = left.get_mut(first)?;
    let last = right.get_mut(last.start.checked_sub(mid.end)?..last.end.checked_sub(mid.end)?)?;
    Some((first, middle, last))
}

/// A convolution's or depthwise convolution's window.
pub(crate) fn conv_window(p: &crate::format::ConvParams<'_>, input: &TensorDesc, output: &TensorDesc) -> Window {
    window(input, output, (p.kernel_h as usize, p.kernel_w as usize), (p.stride_h, p.stride_w), (p.pad_top, p.pad_left))
}

fn window(input: &TensorDesc, output: &TensorDesc, kernel: (usize, usize), stride: (u8, u8), pad: (u8, u8)) -> Window {
    Window {
        in_h: input.shape[1] as usize,
        in_w: input.shape[2] as usize,
        in_c: input.shape[3] as usize,
        out_h: output.shape[1] as usize,
        out_w: output.shape[2] as usize,
        out_c: output.shape[3] as usize,
        kernel_h: kernel.0,
        kernel_w: kernel.1,
        stride_h: stride.0 as usize,
        stride_w: stride.1 as usize,
        pad_top: pad.0 as usize,
        pad_left: pad.1 as usize,
    }
}

/// The kernels' view of a weighted op (convolution, depthwise or fully connected): its input's
/// format, its weights at `bits`, and its requantization into `output`.
pub(crate) fn weighted_layer<'w>(
    weights: &'w [u8],
    bits: Bits,
    c: &crate::format::ChannelParams<'w>,
    clamp: crate::format::Clamp,
    [input, output]: [&TensorDesc; 2],
    prepared: Prepared<'w>,
) -> Layer<'w> {
    let rq = k::Requant {
        bias: Biases { bytes: c.bias, exponent: c.bias_exponent },
        multiplier: Multipliers { bytes: c.multiplier, shift_base: c.shift_base },
        out: format(output),
        min: clamp.min as i32,
        max: clamp.max as i32,
    };
    Layer { in_fmt: format(input), weights, weight_bits: bits, rq, prepared }
}

/// Decodes the descriptors of one validated operation (op `index` of the list) from the table,
/// once per op, and runs it. The validator proved every index in the table, so the error is
/// unreachable for a loaded model; it is a value rather than a panic all the same. Decoding
/// here, apart from the kernel dispatch, keeps one copy of the decoding in the firmware (inlined
/// in every arm it cost 0.5–1.3 KB more flash on Cortex-M) at about 60 more instructions per op.
fn run_op<const K: u32>(
    op: &Op<'_>,
    index: u16,
    tensors: Tensors<'_>,
    arena: &mut [u8],
    prepared: Prepared<'_>,
) -> Result<(), Error> {
    let t = |i: u16| tensors.get(i as usize).ok_or(Error::BadTensorIndex { op: index });
    if let Op::Concat(p) = op {
        if !has(K, linked::CONCAT) {
            return Err(Error::KernelNotLinked { op: index });
        }
        return run_concat(p, index, tensors, arena);
    }
    // Every other op has one or two inputs.
    let (a, b) = op.operands().unwrap_or((0, None));
    let first = t(a)?;
    let output = t(op.output())?;
    let second = match b {
        Some(b) => t(b)?,
        None => output,
    };
    match dispatch::<K>(op, [first, second, output], arena, prepared) {
        Dispatched::Ran => Ok(()),
        Dispatched::Overlap => Err(Error::OverlappingTensors { op: index }),
        Dispatched::NotLinked => Err(Error::KernelNotLinked { op: index }),
    }
}

/// What [`dispatch`] did: the two failures are unreachable for a model that loaded and passed
/// [`Interpreter::with_kernels`]'s check.
enum Dispatched {
    Ran,
    /// An op's regions of the arena are not disjoint.
    Overlap,
    /// The op, its weight width or its activation width is outside the kernel set.
    NotLinked,
}

/// The weight width `bits` if the kernel set `K` links it (a constant test the compiler folds,
/// so the kernels of the widths `K` leaves out are not in the binary).
#[inline(always)]
fn linked_weight_bits<const K: u32>(bits: u8) -> Option<Bits> {
    match bits {
        8 if has(K, linked::WEIGHTS_8) => Some(Bits::B8),
        4 if has(K, linked::WEIGHTS_4) => Some(Bits::B4),
        2 if has(K, linked::WEIGHTS_2) => Some(Bits::B2),
        _ => None,
    }
}

/// Dispatches one validated operation to its kernel, with its descriptors already decoded:
/// `[input, second input (or the output), output]`. Each arm runs only if the kernel set `K`
/// links it.
fn dispatch<const K: u32>(
    op: &Op<'_>,
    [first, second, last]: [TensorDesc; 3],
    arena: &mut [u8],
    prepared: Prepared<'_>,
) -> Dispatched {
    use Dispatched::{NotLinked, Overlap, Ran};
    // A 4-bit tensor needs the 4-bit kernels (8-bit activations are always linked).
    let four = |t: &TensorDesc| t.dtype == crate::format::DType::I4;
    if !has(K, linked::ACTS_4) && (four(&first) || four(&second) || four(&last)) {
        return NotLinked;
    }
    // One guard per kind rather than `has(K, linked::kind(op))`: the same test, but LLVM lays
    // the dispatch out better this way (resnet8 int8 +0.25% instructions with the call).
    match op {
        Op::Conv2d(_) if !has(K, linked::CONV2D) => return NotLinked,
        Op::DepthwiseConv2d(_) if !has(K, linked::DEPTHWISE_CONV2D) => return NotLinked,
        Op::FullyConnected(_) if !has(K, linked::FULLY_CONNECTED) => return NotLinked,
        Op::AvgPool(_) if !has(K, linked::AVG_POOL) => return NotLinked,
        Op::MaxPool(_) if !has(K, linked::MAX_POOL) => return NotLinked,
        Op::Add(_) if !has(K, linked::ADD) => return NotLinked,
        Op::Softmax(_) if !has(K, linked::SOFTMAX) => return NotLinked,
        Op::Dequantize(_) if !has(K, linked::DEQUANTIZE) => return NotLinked,
        Op::Lut(_) if !has(K, linked::LUT) => return NotLinked,
        Op::Mul(_) if !has(K, linked::MUL) => return NotLinked,
        Op::Slice(_) if !has(K, linked::SLICE) => return NotLinked,
        Op::Resize(_) if !has(K, linked::RESIZE) => return NotLinked,
        Op::DepthToSpace(_) if !has(K, linked::DEPTH_TO_SPACE) => return NotLinked,
        Op::LogSoftmax(_) if !has(K, linked::LOG_SOFTMAX) => return NotLinked,
        _ => {}
    }
    match op {
        Op::Conv2d(p) | Op::DepthwiseConv2d(p) => {
            let (input, output) = (first, last);
            let g = conv_window(p, &input, &output);
            let Some(bits) = linked_weight_bits::<K>(p.weight_bits) else { return NotLinked };
            let layer = weighted_layer(p.weights, bits, &p.channel, p.clamp, [&input, &output], prepared);
            let in_fmt = layer.in_fmt;
            let conv = matches!(op, Op::Conv2d(_));
            let bytes = if conv {
                k::conv2d_scratch_bytes(&g, bits, in_fmt.bits)
            } else {
                k::depthwise_conv2d_scratch_bytes(&g, bits, in_fmt.bits)
            };
            let Some((src, dst, scratch)) = split_with_scratch(arena, &input, &output, p.scratch, bytes) else {
                return Overlap;
            };
            if conv {
                k::conv2d::<K>(&g, &layer, src, dst, scratch);
            } else {
                k::depthwise_conv2d::<K>(&g, &layer, src, dst, scratch);
            }
        }
        Op::FullyConnected(p) => {
            // One arm per linked width, each with its width a constant down to the kernel's
            // row loop: a tiny layer's cost is mostly this glue, and a build with two widths
            // otherwise paid ~25 instructions a layer to test the width again on the way down.
            return match p.weight_bits {
                8 if has(K, linked::WEIGHTS_8) => run_fc::<K>(p, [first, last], Bits::B8, arena, prepared),
                4 if has(K, linked::WEIGHTS_4) => run_fc::<K>(p, [first, last], Bits::B4, arena, prepared),
                2 if has(K, linked::WEIGHTS_2) => run_fc::<K>(p, [first, last], Bits::B2, arena, prepared),
                _ => NotLinked,
            };
        }
        Op::AvgPool(p) | Op::MaxPool(p) => {
            let (input, output) = (first, last);
            let g = window(
                &input,
                &output,
                (p.kernel_h as usize, p.kernel_w as usize),
                (p.stride_h, p.stride_w),
                (p.pad_top, p.pad_left),
            );
            let rq = k::PoolRequant {
                multiplier: p.multiplier,
                shift: p.shift,
                out: format(&output),
                min: p.clamp.min as i32,
                max: p.clamp.max as i32,
            };
            let (src, dst) = split_io(arena, &input, &output);
            if matches!(op, Op::AvgPool(_)) {
                k::avg_pool::<K>(&g, src, format(&input), &rq, dst);
            } else {
                k::max_pool(&g, src, format(&input), &rq, dst);
            }
        }
        Op::Add(p) => {
            let (a, b, output) = (first, second, last);
            let rq = k::AddRequant {
                multiplier_a: p.multiplier_a,
                multiplier_b: p.multiplier_b,
                shift: p.shift,
                out: format(&output),
                min: p.clamp.min as i32,
                max: p.clamp.max as i32,
            };
            k::add::<K>(
                arena,
                output.elements(),
                (a.offset as usize, format(&a)),
                (b.offset as usize, format(&b)),
                output.offset as usize,
                &rq,
            );
        }
        // A view of its input's bytes (validated), nothing to do.
        Op::Reshape(_) => {}
        Op::Softmax(_) => {
            let (input, output) = (first, last);
            let (src, dst) = split_io(arena, &input, &output);
            k::softmax(src, format(&input), input.scale.to_f32(), input.shape[3] as usize, dst);
        }
        Op::LogSoftmax(_) => {
            let (input, output) = (first, last);
            let (src, dst) = split_io(arena, &input, &output);
            k::log_softmax(src, format(&input), input.scale.to_f32(), input.shape[3] as usize, dst);
        }
        Op::Dequantize(_) => {
            let (input, output) = (first, last);
            let (src, dst) = split_io(arena, &input, &output);
            k::dequantize(src, format(&input), input.scale.to_f32(), dst);
        }
        Op::Lut(p) => {
            let (input, output) = (first, last);
            let (src, dst) = split_io(arena, &input, &output);
            let n = (output.elements(), output.shape[3] as usize);
            k::lut((src, format(&input)), p.table, n, (dst, format(&output)));
        }
        Op::Mul(p) => {
            let (a, b, output) = (first, second, last);
            let rq = k::AddRequant {
                multiplier_a: p.multiplier,
                multiplier_b: 0,
                shift: p.shift,
                out: format(&output),
                min: p.clamp.min as i32,
                max: p.clamp.max as i32,
            };
            let a = (a.offset as usize, format(&a));
            let b = (b.offset as usize, format(&b), b.elements());
            k::mul(arena, output.elements(), a, b, output.offset as usize, &rq);
        }
        Op::Slice(p) => {
            let (input, output) = (first, last);
            let (src, dst) = split_io(arena, &input, &output);
            let (begin, step) = (p.begin.map(|v| v as usize), p.step.map(|v| v as usize));
            k::slice(src, hwc(&input), format(&input), begin, step, hwc(&output), dst);
        }
        Op::Resize(p) => {
            let (input, output) = (first, last);
            let (src, dst) = split_io(arena, &input, &output);
            k::resize_nearest(src, hwc(&input), format(&input), (p.factor_h as usize, p.factor_w as usize), dst);
        }
        Op::DepthToSpace(p) => {
            let (input, output) = (first, last);
            let (src, dst) = split_io(arena, &input, &output);
            k::depth_to_space(src, hwc(&input), format(&input), p.block as usize, dst);
        }
        // Decoded with its parts by `run_concat`.
        Op::Concat(_) => {}
    }
    Ran
}

/// An op's prepared weights ([`Interpreter::with_workspace`]): a slice of the workspace on
/// x86-64, nothing elsewhere (so that the microcontroller builds carry no trace of them).
pub(crate) use crate::kernels::reference::Prepared;

/// [`dispatch`]'s fully connected arm at the weight width `bits` (a constant where it is called).
#[inline(always)]
fn run_fc<const K: u32>(
    p: &crate::format::FcParams<'_>,
    [input, output]: [TensorDesc; 2],
    bits: Bits,
    arena: &mut [u8],
    prepared: Prepared<'_>,
) -> Dispatched {
    let (n, m) = (input.elements(), output.elements());
    let layer = weighted_layer(p.weights, bits, &p.channel, p.clamp, [&input, &output], prepared);
    let bytes = k::fully_connected_scratch_bytes(n, m, bits, layer.in_fmt.bits);
    let Some((src, dst, scratch)) = split_with_scratch(arena, &input, &output, p.scratch, bytes) else {
        return Dispatched::Overlap;
    };
    k::fully_connected::<K>(n, m, &layer, src, dst, scratch);
    Dispatched::Ran
}

/// What a layer's prepared weights are made from: the kernel's shape and the layer.
#[cfg(target_arch = "x86_64")]
enum Preparable<'w> {
    Conv(Window, Layer<'w>),
    Depthwise(Window, Layer<'w>),
    Fc(usize, usize, Layer<'w>),
}

#[cfg(target_arch = "x86_64")]
fn preparable<'w>(op: &Op<'w>, tensors: Tensors<'_>) -> Option<Preparable<'w>> {
    let bits = |b: u8| match b {
        8 => Some(Bits::B8),
        4 => Some(Bits::B4),
        2 => Some(Bits::B2),
        _ => None,
    };
    match op {
        Op::Conv2d(p) | Op::DepthwiseConv2d(p) => {
            let input = tensors.get(p.input as usize)?;
            let output = tensors.get(p.output as usize)?;
            let g = conv_window(p, &input, &output);
            let b = bits(p.weight_bits)?;
            let layer = weighted_layer(p.weights, b, &p.channel, p.clamp, [&input, &output], &[]);
            Some(match op {
                Op::Conv2d(_) => Preparable::Conv(g, layer),
                _ => Preparable::Depthwise(g, layer),
            })
        }
        Op::FullyConnected(p) => {
            let input = tensors.get(p.input as usize)?;
            let output = tensors.get(p.output as usize)?;
            let (n, m) = (input.elements(), output.elements());
            let layer = weighted_layer(p.weights, bits(p.weight_bits)?, &p.channel, p.clamp, [&input, &output], &[]);
            Some(Preparable::Fc(n, m, layer))
        }
        _ => None,
    }
}

/// Bytes of workspace an op's prepared weights take beyond their size: they start at the first
/// 64-byte boundary of their region (so that the 64-byte loads of the kernels do not split
/// cache lines), which the interpreter finds the same way when it prepares and when it runs.
#[cfg(target_arch = "x86_64")]
const ALIGN_SLACK: usize = 63;

/// Bytes before each op's region in the workspace: the length of its prepared weights (`u32`
/// LE, 0 for none).
#[cfg(target_arch = "x86_64")]
pub(crate) const REGION_HEADER: usize = 4;

/// Bytes of workspace of an op whose prepared weights have `n` bytes (after its header).
#[cfg(target_arch = "x86_64")]
pub(crate) fn region_bytes(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        n + ALIGN_SLACK
    }
}

/// Where an op's prepared weights start in its region.
#[cfg(target_arch = "x86_64")]
fn aligned_start(region: *const u8) -> usize {
    region.align_offset(64).min(ALIGN_SLACK)
}

/// Bytes of an op's prepared weights on this machine's path (0: none).
#[cfg(target_arch = "x86_64")]
pub(crate) fn prepared_bytes(op: &Op<'_>, tensors: Tensors<'_>) -> usize {
    let path = k::prepared_path();
    match preparable(op, tensors) {
        Some(Preparable::Conv(g, layer)) => k::conv2d_prepared_bytes_on(path, &g, &layer),
        Some(Preparable::Depthwise(g, layer)) => k::depthwise_conv2d_prepared_bytes_on(path, &g, &layer),
        Some(Preparable::Fc(n, m, layer)) => k::fully_connected_prepared_bytes_on(path, n, m, &layer),
        None => 0,
    }
}

/// Lays out an op's weights into `dst` ([`prepared_bytes`] bytes).
#[cfg(target_arch = "x86_64")]
fn prepare(op: &Op<'_>, tensors: Tensors<'_>, dst: &mut [u8]) -> bool {
    let path = k::prepared_path();
    match preparable(op, tensors) {
        Some(Preparable::Conv(g, layer)) => k::prepare_conv2d_on(path, &g, &layer, dst),
        Some(Preparable::Depthwise(g, layer)) => k::prepare_depthwise_conv2d_on(path, &g, &layer, dst),
        Some(Preparable::Fc(n, m, layer)) => k::prepare_fully_connected_on(path, n, m, &layer, dst),
        None => false,
    }
}

fn hwc(t: &TensorDesc) -> k::Hwc {
    (t.shape[1] as usize, t.shape[2] as usize, t.shape[3] as usize)
}

/// A concatenation: each part requantized into its channels of the output (contract §5).
fn run_concat(p: &ConcatParams<'_>, index: u16, tensors: Tensors<'_>, arena: &mut [u8]) -> Result<(), Error> {
    let t = |i: u16| tensors.get(i as usize).ok_or(Error::BadTensorIndex { op: index });
    let output = t(p.output)?;
    let (h, w, c) = hwc(&output);
    let mut first_channel = 0;
    for part in (0..p.part_count()).filter_map(|i| p.part(i)) {
        let input = t(part.tensor)?;
        let input = k::ConcatInput {
            offset: input.offset as usize,
            fmt: format(&input),
            channels: input.shape[3] as usize,
            multiplier: part.multiplier,
            shift: part.shift,
        };
        k::concat_part(arena, h * w, &input, (output.offset as usize, format(&output), c), first_channel);
        first_channel += input.channels;
    }
    let out = output.offset as usize..output.offset as usize + output.bytes();
    k::clear_tail(&mut arena[out], format(&output), output.elements());
    Ok(())
}
