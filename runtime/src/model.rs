//! Loading a model: header, checksum, tables, and a validation pass over every operation, so
//! that running it can neither panic nor touch memory outside its tensors.

use crate::error::Error;
use crate::format::decode::Refusal;
use crate::format::{
    split_header, ConcatParams, ConvParams, DType, Header, ModelMeta, Op, RawInput, TensorDesc, Tensors,
    CONCAT_PART_BYTES, MAX_CONCAT_INPUTS, MAX_EXTRA_OUTPUTS, MAX_TENSORS, TENSOR_RECORD_BYTES,
};
use crate::kernels::linked;
use crate::quant::{Bits, SHIFT_MAX, SHIFT_MIN};

/// The largest alignment the compiler rounds the arena's size up to.
pub const ARENA_ALIGNMENT_MAX: u64 = 64;

/// A validated model, borrowing its weights and tensor table from the blob. Its size does not
/// depend on the model: the tensor table and the ops stay in the blob.
#[derive(Debug, Clone)]
pub struct Model<'a> {
    header: Header,
    meta: ModelMeta<'a>,
    /// The model's input and output descriptors, decoded once: the firmware reads them on every
    /// inference.
    input: TensorDesc,
    output: TensorDesc,
    ops: &'a [u8],
}

impl<'a> Model<'a> {
    /// Parses and validates a model blob. Every later operation on the model relies on this.
    pub fn from_bytes(blob: &'a [u8]) -> Result<Self, Error> {
        Self::from_bytes_with_kernels::<{ linked::ALL }>(blob)
    }

    /// [`Model::from_bytes`] for a build with the kernel set `KERNELS` ([`linked`]): a model that
    /// needs a kernel outside it is refused ([`Error::KernelNotLinked`]), and the validation of
    /// the ops outside it is not compiled in (the loader of a one-model firmware is smaller).
    pub fn from_bytes_with_kernels<const KERNELS: u32>(blob: &'a [u8]) -> Result<Self, Error> {
        let (header, body) = split_header(blob)?;
        let (meta, ops) = crate::format::decode::take_meta(body).ok_or(Error::Malformed)?;
        let (input, output, needed) = validate_tensors(&header, &meta)?;
        let model = Model { header, meta, input, output, ops };
        let needed = needed.max(model.validate_ops::<KERNELS>()?);
        // The declared size is what a host allocates before running: it may round the extent of
        // the tensors and scratch up to the planner's alignment, never more.
        let arena = header.arena_bytes as u64;
        if arena > needed.next_multiple_of(ARENA_ALIGNMENT_MAX) {
            return Err(Error::ArenaSizeMismatch { declared: arena as u32, needed: needed as u32 });
        }
        Ok(model)
    }

    pub fn arena_bytes(&self) -> usize {
        self.header.arena_bytes as usize
    }

    pub fn meta(&self) -> &ModelMeta<'a> {
        &self.meta
    }

    /// The tensor table, read in place (every record was validated by [`Model::from_bytes`]).
    pub fn tensors(&self) -> Tensors<'a> {
        self.meta.tensors
    }

    /// Tensor `index`'s descriptor; `None` past the end of the table.
    pub fn tensor(&self, index: u16) -> Option<TensorDesc> {
        self.meta.tensors.get(index as usize)
    }

    pub fn input(&self) -> &TensorDesc {
        &self.input
    }

    pub fn output(&self) -> &TensorDesc {
        &self.output
    }

    /// How many outputs the model has (1 + the graph's further outputs).
    pub fn output_count(&self) -> usize {
        1 + self.meta.extra_outputs.len() / 2
    }

    /// The tensor index of output `i` (0 is [`Model::output`]); `None` past the last.
    pub fn output_tensor(&self, i: usize) -> Option<u16> {
        let Some(extra) = i.checked_sub(1) else { return Some(self.meta.output) };
        let start = extra.checked_mul(2)?;
        self.meta.extra_outputs.get(start..start.checked_add(2)?).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    pub fn raw_input(&self) -> RawInput {
        self.meta.raw_input
    }

    /// The operations, decoded one at a time from the blob.
    pub fn ops(&self) -> OpIter<'a> {
        self.linked_ops::<{ linked::ALL }>()
    }

    /// [`Model::ops`] in a build with the kernel set `K`: an op outside it ends the iteration
    /// with [`Error::KernelNotLinked`] (its encoding is not read, so nothing after it is).
    pub fn linked_ops<const K: u32>(&self) -> OpIter<'a, K> {
        OpIter { rest: self.ops, index: 0, count: self.meta.op_count }
    }

    /// Bytes of the workspace [`crate::Interpreter::with_workspace`] needs on this machine to
    /// prepare the weights once (the layers whose kernel reads them in another order than the
    /// file's): 0 where no kernel path does (every target but x86-64 with AVX-512 VNNI, or with
    /// the `kernels-scalar` / `kernels-portable` features). Computed from the ops on each call.
    pub fn host_workspace_bytes(&self) -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            use crate::interpreter::{prepared_bytes, region_bytes, REGION_HEADER};
            let tensors = self.tensors();
            let (mut regions, mut ops) = (0, 0);
            for op in self.ops().filter_map(Result::ok) {
                regions += region_bytes(prepared_bytes(&op, tensors));
                ops += 1;
            }
            // Each op's region has a header with its length (see `Interpreter::prepared_at`).
            if regions == 0 {
                0
            } else {
                regions + ops * REGION_HEADER
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        0
    }

    /// Bytes of packed weights, biases and requantization arrays.
    pub fn weight_bytes(&self) -> usize {
        self.ops()
            .filter_map(Result::ok)
            .map(|op| match op {
                Op::Conv2d(p) | Op::DepthwiseConv2d(p) => {
                    p.weights.len() + p.channel.bias.len() + p.channel.multiplier.len()
                }
                Op::FullyConnected(p) => p.weights.len() + p.channel.bias.len() + p.channel.multiplier.len(),
                Op::Lut(p) => p.table.len(),
                _ => 0,
            })
            .sum()
    }

    /// Validates every op; returns the end of the highest op scratch.
    fn validate_ops<const K: u32>(&self) -> Result<u64, Error> {
        if self.meta.op_count == 0 {
            return Err(Error::EmptyModel);
        }
        let arena = self.header.arena_bytes as u64;
        let mut iter = self.linked_ops::<K>();
        let mut end = 0;
        for (index, op) in iter.by_ref().enumerate() {
            end = end.max(validate_op::<K>(&op?, index as u16, self.meta.tensors, arena)?);
        }
        if !iter.rest.is_empty() {
            return Err(Error::TrailingBytes);
        }
        Ok(end)
    }
}

/// Checks the tensor table record by record (whole records, known dtypes, shapes, zero points,
/// inside the arena), the scratch region and the model's input and output; returns the input
/// and output descriptors and the bytes the tensors and the scratch region span.
fn validate_tensors(header: &Header, meta: &ModelMeta<'_>) -> Result<(TensorDesc, TensorDesc, u64), Error> {
    let arena = header.arena_bytes as u64;
    let table = meta.tensors.as_bytes();
    if !table.len().is_multiple_of(TENSOR_RECORD_BYTES) {
        return Err(Error::Malformed);
    }
    if meta.tensors.len() > MAX_TENSORS {
        return Err(Error::TooManyTensors);
    }
    let scratch_end = meta.scratch_offset as u64 + meta.scratch_bytes as u64;
    let mut needed = scratch_end;
    for (i, record) in table.chunks_exact(TENSOR_RECORD_BYTES).enumerate() {
        // At most MAX_TENSORS records: the index fits.
        let tensor = i as u16;
        let t = record.try_into().ok().and_then(TensorDesc::from_record).ok_or(Error::Malformed)?;
        let mut elements: u64 = 1;
        for &d in &t.shape {
            if d == 0 {
                return Err(Error::BadShape { tensor });
            }
            elements *= d as u64;
        }
        if elements > u32::MAX as u64 / 4 {
            return Err(Error::BadShape { tensor });
        }
        let end = t.offset as u64 + t.dtype.bytes_for(elements as usize) as u64;
        if end > arena {
            return Err(Error::TensorOutOfArena { tensor });
        }
        needed = needed.max(end);
        // The accumulator bound of contract §3 assumes |a − z| ≤ 2^a − 1.
        if let Some(bits) = t.dtype.bits() {
            let (lo, hi) = bits.range();
            if !(lo..=hi).contains(&(t.zero_point as i32)) {
                return Err(Error::BadZeroPoint { tensor });
            }
        }
    }
    if scratch_end > arena {
        return Err(Error::ScratchOutOfArena);
    }
    let model_tensor = |i: u16| meta.tensors.get(i as usize).ok_or(Error::BadTensorIndex { op: u16::MAX });
    let (input, output) = (model_tensor(meta.input)?, model_tensor(meta.output)?);
    let extra = meta.extra_outputs;
    if !extra.len().is_multiple_of(2) || extra.len() / 2 > MAX_EXTRA_OUTPUTS {
        return Err(Error::Malformed);
    }
    for index in extra.chunks_exact(2) {
        model_tensor(u16::from_le_bytes([index[0], index[1]]))?;
    }
    let raw_ok = match meta.raw_input {
        RawInput::U8 | RawInput::I8 => input.dtype == DType::I8,
        RawInput::F32 => input.dtype != DType::F32,
    };
    if !raw_ok {
        return Err(Error::WrongDtype { op: u16::MAX });
    }
    Ok((input, output, needed))
}

/// Iterator over the encoded operations, decoding those of the kernel set `K`.
pub struct OpIter<'a, const K: u32 = { linked::ALL }> {
    rest: &'a [u8],
    index: u16,
    count: u16,
}

impl<'a, const K: u32> Iterator for OpIter<'a, K> {
    type Item = Result<Op<'a>, Error>;

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.count {
            return None;
        }
        let index = self.index;
        self.index += 1;
        match crate::format::decode::take_linked_op::<K>(self.rest) {
            Ok((op, rest)) => {
                self.rest = rest;
                Some(Ok(op))
            }
            Err(refusal) => {
                self.count = 0;
                Some(Err(match refusal {
                    Refusal::Malformed => Error::Malformed,
                    Refusal::NotLinked => Error::KernelNotLinked { op: index },
                }))
            }
        }
    }
}

fn tensor(tensors: Tensors<'_>, index: u16, op: u16) -> Result<TensorDesc, Error> {
    tensors.get(index as usize).ok_or(Error::BadTensorIndex { op })
}

fn quantized_bits(t: &TensorDesc, op: u16) -> Result<Bits, Error> {
    t.dtype.bits().ok_or(Error::WrongDtype { op })
}

fn region(t: &TensorDesc) -> (u64, u64) {
    (t.offset as u64, t.offset as u64 + t.bytes() as u64)
}

fn disjoint(a: &TensorDesc, b: &TensorDesc) -> bool {
    let (a0, a1) = region(a);
    let (b0, b1) = region(b);
    a1 <= b0 || b1 <= a0
}

/// Output may alias an input only exactly (same offset, same dtype and size), for elementwise ops.
fn disjoint_or_alias(input: &TensorDesc, output: &TensorDesc) -> bool {
    disjoint(input, output)
        || (input.offset == output.offset && input.dtype == output.dtype && input.bytes() == output.bytes())
}

/// An op's scratch, `bytes` at `offset`: inside the arena and, when not empty, disjoint from
/// the op's input and output. Returns its end (0 when empty).
fn check_scratch(
    offset: u32,
    bytes: usize,
    input: &TensorDesc,
    output: &TensorDesc,
    arena: u64,
    op: u16,
) -> Result<u64, Error> {
    if bytes == 0 {
        return Ok(0);
    }
    let (start, end) = (offset as u64, (offset as u64).saturating_add(bytes as u64));
    if end > arena {
        return Err(Error::OpScratchOutOfArena { op });
    }
    let apart = |t: &TensorDesc| {
        let (t0, t1) = region(t);
        end <= t0 || t1 <= start
    };
    if !apart(input) || !apart(output) {
        return Err(Error::ScratchOverlap { op });
    }
    Ok(end)
}

fn check_clamp(clamp: crate::format::Clamp, out: Bits, op: u16) -> Result<(), Error> {
    let (lo, hi) = out.range();
    let (min, max) = (clamp.min as i32, clamp.max as i32);
    if min > max || min < lo || max > hi {
        return Err(Error::BadParameter { op });
    }
    Ok(())
}

fn check_shift(shift: i8, op: u16) -> Result<(), Error> {
    if !(SHIFT_MIN..=SHIFT_MAX).contains(&shift) {
        return Err(Error::BadParameter { op });
    }
    Ok(())
}

/// `[1, H, W, C]` or a shape mismatch.
fn nhwc(t: &TensorDesc, op: u16) -> Result<(usize, usize, usize), Error> {
    if t.shape[0] != 1 {
        return Err(Error::ShapeMismatch { op });
    }
    Ok((t.shape[1] as usize, t.shape[2] as usize, t.shape[3] as usize))
}

/// Does the last output row's window still start inside the input (contract: no window lies
/// wholly in the padding), with padding smaller than the kernel?
fn window_fits(out: usize, stride: u8, pad: u8, kernel: usize, size: usize) -> bool {
    stride >= 1 && kernel >= 1 && (pad as usize) < kernel && (out - 1) * (stride as usize) < size + pad as usize
}

/// Checks the per-channel arrays of a conv or FC layer and its accumulator bound (contract §3).
fn check_channels(
    channel: &crate::format::ChannelParams<'_>,
    weights: &[u8],
    weight_bits: u8,
    reduction: usize,
    out_channels: usize,
    in_bits: Bits,
    op: u16,
) -> Result<(), Error> {
    let bits = Bits::from_u8(weight_bits).ok_or(Error::UnsupportedBits { op })?;
    let row = bits.packed_len(reduction);
    if channel.bias_exponent > crate::quant::BIAS_EXPONENT_MAX && channel.bias_exponent != crate::quant::BIAS_I32 {
        return Err(Error::BadParameter { op });
    }
    let bias_bytes = crate::quant::Biases::bytes_per_channel(channel.bias_exponent) as u64;
    let sizes_ok = weights.len() as u64 == row as u64 * out_channels as u64
        && channel.bias.len() as u64 == bias_bytes * out_channels as u64
        && channel.multiplier.len() as u64 == 2 * out_channels as u64;
    if !sizes_ok {
        return Err(Error::WeightSizeMismatch { op });
    }
    let multipliers = crate::quant::Multipliers { bytes: channel.multiplier, shift_base: channel.shift_base };
    for (_, s) in multipliers.iter() {
        check_shift(i8::try_from(s).map_err(|_| Error::BadParameter { op })?, op)?;
    }
    let biases = crate::quant::Biases { bytes: channel.bias, exponent: channel.bias_exponent };
    let mut max_bias = 0i64;
    for b in biases.iter() {
        max_bias = max_bias.max((b as i64).abs());
    }
    let bound = reduction as i64 * (1i64 << (bits.get() - 1)) * ((1i64 << in_bits.get()) - 1) + max_bias;
    if bound >= 1i64 << 31 {
        return Err(Error::AccumulatorOverflow { op });
    }
    Ok(())
}

/// Validates a conv or depthwise op; returns the end of its scratch.
fn validate_conv(p: &ConvParams<'_>, depthwise: bool, op: u16, tensors: Tensors<'_>, arena: u64) -> Result<u64, Error> {
    let input = &tensor(tensors, p.input, op)?;
    let output = &tensor(tensors, p.output, op)?;
    let in_bits = quantized_bits(input, op)?;
    let out_bits = quantized_bits(output, op)?;
    let (h, w, c) = nhwc(input, op)?;
    let (oh, ow, oc) = nhwc(output, op)?;
    let (kh, kw) = (p.kernel_h as usize, p.kernel_w as usize);
    if !window_fits(oh, p.stride_h, p.pad_top, kh, h) || !window_fits(ow, p.stride_w, p.pad_left, kw, w) {
        return Err(Error::ShapeMismatch { op });
    }
    let reduction = if depthwise {
        if oc % c != 0 {
            return Err(Error::ShapeMismatch { op });
        }
        kh * kw
    } else {
        kh * kw * c
    };
    check_channels(&p.channel, p.weights, p.weight_bits, reduction, oc, in_bits, op)?;
    check_clamp(p.clamp, out_bits, op)?;
    if !disjoint(input, output) {
        return Err(Error::OverlappingTensors { op });
    }
    let g = crate::kernels::Window {
        in_h: h,
        in_w: w,
        in_c: c,
        out_h: oh,
        out_w: ow,
        out_c: oc,
        kernel_h: kh,
        kernel_w: kw,
        stride_h: p.stride_h as usize,
        stride_w: p.stride_w as usize,
        pad_top: p.pad_top as usize,
        pad_left: p.pad_left as usize,
    };
    let bits = Bits::from_u8(p.weight_bits).ok_or(Error::UnsupportedBits { op })?;
    let bytes = if depthwise {
        crate::kernels::depthwise_conv2d_scratch_bytes(&g, bits, in_bits)
    } else {
        crate::kernels::conv2d_scratch_bytes(&g, bits, in_bits)
    };
    check_scratch(p.scratch, bytes, input, output, arena, op)
}

/// Whether the kernel set `K` links `op`'s kind: a constant in each arm of a `match` on the op,
/// so that the arms of the kinds `K` leaves out are not compiled.
#[inline(always)]
fn kind_linked<const K: u32>(op: &Op<'_>) -> bool {
    linked::has(K, linked::kind(op))
}

/// Validates one op; returns the end of its scratch (0 for ops without).
fn validate_op<const K: u32>(op: &Op<'_>, index: u16, tensors: Tensors<'_>, arena: u64) -> Result<u64, Error> {
    let i = index;
    if K != linked::ALL {
        let needs = linked::op_needs_under::<K>(op, tensors).ok_or(Error::BadTensorIndex { op: i })?;
        if !linked::has(K, needs) {
            return Err(Error::KernelNotLinked { op: i });
        }
    }
    match op {
        Op::Conv2d(p) if kind_linked::<K>(op) => validate_conv(p, false, i, tensors, arena),
        Op::DepthwiseConv2d(p) if kind_linked::<K>(op) => validate_conv(p, true, i, tensors, arena),
        Op::FullyConnected(p) if kind_linked::<K>(op) => {
            let input = &tensor(tensors, p.input, i)?;
            let output = &tensor(tensors, p.output, i)?;
            let in_bits = quantized_bits(input, i)?;
            let out_bits = quantized_bits(output, i)?;
            let (n, m) = (input.elements(), output.elements());
            check_channels(&p.channel, p.weights, p.weight_bits, n, m, in_bits, i)?;
            check_clamp(p.clamp, out_bits, i)?;
            if !disjoint(input, output) {
                return Err(Error::OverlappingTensors { op: i });
            }
            let bits = Bits::from_u8(p.weight_bits).ok_or(Error::UnsupportedBits { op: i })?;
            let bytes = crate::kernels::fully_connected_scratch_bytes(n, m, bits, in_bits);
            check_scratch(p.scratch, bytes, input, output, arena, i)
        }
        Op::AvgPool(p) | Op::MaxPool(p) if kind_linked::<K>(op) => {
            let input = &tensor(tensors, p.input, i)?;
            let output = &tensor(tensors, p.output, i)?;
            let in_bits = quantized_bits(input, i)?;
            let out_bits = quantized_bits(output, i)?;
            let (h, w, c) = nhwc(input, i)?;
            let (oh, ow, oc) = nhwc(output, i)?;
            let (kh, kw) = (p.kernel_h as usize, p.kernel_w as usize);
            if c != oc
                || !window_fits(oh, p.stride_h, p.pad_top, kh, h)
                || !window_fits(ow, p.stride_w, p.pad_left, kw, w)
            {
                return Err(Error::ShapeMismatch { op: i });
            }
            if (kh * kw) as u64 * ((1u64 << in_bits.get()) - 1) >= 1 << 31 {
                return Err(Error::AccumulatorOverflow { op: i });
            }
            check_shift(p.shift, i)?;
            if p.multiplier < 0 {
                return Err(Error::BadParameter { op: i });
            }
            check_clamp(p.clamp, out_bits, i)?;
            if !disjoint(input, output) {
                return Err(Error::OverlappingTensors { op: i });
            }
            Ok(0)
        }
        Op::Add(p) if kind_linked::<K>(op) => {
            let a = &tensor(tensors, p.a, i)?;
            let b = &tensor(tensors, p.b, i)?;
            let output = &tensor(tensors, p.output, i)?;
            quantized_bits(a, i)?;
            quantized_bits(b, i)?;
            let out_bits = quantized_bits(output, i)?;
            if a.shape != output.shape || b.shape != output.shape {
                return Err(Error::ShapeMismatch { op: i });
            }
            check_shift(p.shift, i)?;
            if p.multiplier_a < 0 || p.multiplier_b < 0 {
                return Err(Error::BadParameter { op: i });
            }
            check_clamp(p.clamp, out_bits, i)?;
            if !disjoint_or_alias(a, output) || !disjoint_or_alias(b, output) {
                return Err(Error::OverlappingTensors { op: i });
            }
            Ok(0)
        }
        Op::Reshape(p) if kind_linked::<K>(op) => {
            let input = &tensor(tensors, p.input, i)?;
            let output = &tensor(tensors, p.output, i)?;
            if input.dtype != output.dtype {
                return Err(Error::WrongDtype { op: i });
            }
            if input.elements() != output.elements() {
                return Err(Error::ShapeMismatch { op: i });
            }
            // A view: the interpreter does nothing for it (a copy would link memcpy, 730 B, into
            // firmware that needs no other).
            if input.offset != output.offset {
                return Err(Error::NotInPlace { op: i });
            }
            Ok(0)
        }
        Op::Softmax(p) | Op::LogSoftmax(p) | Op::Dequantize(p) if kind_linked::<K>(op) => {
            let input = &tensor(tensors, p.input, i)?;
            let output = &tensor(tensors, p.output, i)?;
            quantized_bits(input, i)?;
            if output.dtype != DType::F32 {
                return Err(Error::WrongDtype { op: i });
            }
            if input.elements() != output.elements() {
                return Err(Error::ShapeMismatch { op: i });
            }
            // (Log-)softmax takes `exp` of `s·(a − max) ≤ 0`, which needs `s ≥ 0`: micromath's
            // `exp` is wrong (and debug-asserts) for NaN and for arguments near 89.
            let scale = input.scale.to_f32();
            if matches!(op, Op::Softmax(_) | Op::LogSoftmax(_)) && !(scale >= 0.0 && scale.is_finite()) {
                return Err(Error::BadParameter { op: i });
            }
            if !disjoint(input, output) {
                return Err(Error::OverlappingTensors { op: i });
            }
            Ok(0)
        }
        Op::Lut(p) if kind_linked::<K>(op) => {
            let input = &tensor(tensors, p.input, i)?;
            let output = &tensor(tensors, p.output, i)?;
            let in_bits = quantized_bits(input, i)?;
            let out_bits = quantized_bits(output, i)?;
            if input.shape != output.shape {
                return Err(Error::ShapeMismatch { op: i });
            }
            let row = 1usize << in_bits.get();
            let rows = p.table.len() / row;
            if p.table.len() % row != 0 || (rows != 1 && rows != nhwc(output, i)?.2) {
                return Err(Error::WeightSizeMismatch { op: i });
            }
            let (lo, hi) = out_bits.range();
            if p.table.iter().any(|&b| !(lo..=hi).contains(&(b as i8 as i32))) {
                return Err(Error::BadParameter { op: i });
            }
            if !disjoint(input, output) {
                return Err(Error::OverlappingTensors { op: i });
            }
            Ok(0)
        }
        Op::Mul(p) if kind_linked::<K>(op) => {
            let a = &tensor(tensors, p.a, i)?;
            let b = &tensor(tensors, p.b, i)?;
            let output = &tensor(tensors, p.output, i)?;
            quantized_bits(a, i)?;
            quantized_bits(b, i)?;
            let out_bits = quantized_bits(output, i)?;
            let channels = nhwc(output, i)?.2;
            if a.shape != output.shape || (b.shape != output.shape && b.shape != [1, 1, 1, channels as u16]) {
                return Err(Error::ShapeMismatch { op: i });
            }
            check_shift(p.shift, i)?;
            if p.multiplier < 0 {
                return Err(Error::BadParameter { op: i });
            }
            check_clamp(p.clamp, out_bits, i)?;
            // `a` may be overwritten in place (read before written); `b` may be shorter, so never.
            if !disjoint_or_alias(a, output) || !disjoint(b, output) {
                return Err(Error::OverlappingTensors { op: i });
            }
            Ok(0)
        }
        Op::Concat(p) if kind_linked::<K>(op) => validate_concat(p, i, tensors).map(|()| 0),
        Op::Slice(p) if kind_linked::<K>(op) => {
            let (input, output) = same_quantization(tensors, p.input, p.output, i)?;
            let (ih, iw, ic) = nhwc(&input, i)?;
            let (oh, ow, oc) = nhwc(&output, i)?;
            let fits = |begin: u16, step: u16, n: usize, size: usize| {
                step >= 1 && (begin as usize + (n - 1) * step as usize) < size
            };
            if !fits(p.begin[0], p.step[0], oh, ih)
                || !fits(p.begin[1], p.step[1], ow, iw)
                || !fits(p.begin[2], p.step[2], oc, ic)
            {
                return Err(Error::ShapeMismatch { op: i });
            }
            Ok(0)
        }
        Op::Resize(p) if kind_linked::<K>(op) => {
            let (input, output) = same_quantization(tensors, p.input, p.output, i)?;
            let (ih, iw, ic) = nhwc(&input, i)?;
            let (fh, fw) = (p.factor_h as usize, p.factor_w as usize);
            if fh == 0 || fw == 0 || nhwc(&output, i)? != (ih * fh, iw * fw, ic) {
                return Err(Error::ShapeMismatch { op: i });
            }
            Ok(0)
        }
        Op::DepthToSpace(p) if kind_linked::<K>(op) => {
            let (input, output) = same_quantization(tensors, p.input, p.output, i)?;
            let (ih, iw, ic) = nhwc(&input, i)?;
            let b = p.block as usize;
            if b == 0 || ic % (b * b) != 0 || nhwc(&output, i)? != (ih * b, iw * b, ic / (b * b)) {
                return Err(Error::ShapeMismatch { op: i });
            }
            Ok(0)
        }
        _ => Err(Error::KernelNotLinked { op: i }),
    }
}

/// The input and output of an op that moves elements unchanged: both quantized with the same
/// dtype, scale and zero point, and disjoint.
fn same_quantization(
    tensors: Tensors<'_>,
    input: u16,
    output: u16,
    op: u16,
) -> Result<(TensorDesc, TensorDesc), Error> {
    let input = tensor(tensors, input, op)?;
    let output = tensor(tensors, output, op)?;
    quantized_bits(&input, op)?;
    if input.dtype != output.dtype || input.scale != output.scale || input.zero_point != output.zero_point {
        return Err(Error::WrongDtype { op });
    }
    if !disjoint(&input, &output) {
        return Err(Error::OverlappingTensors { op });
    }
    Ok((input, output))
}

/// Every part: a quantized tensor of the output's height and width, disjoint from the output,
/// with a valid multiplier; the channels add up to the output's.
fn validate_concat(p: &ConcatParams<'_>, op: u16, tensors: Tensors<'_>) -> Result<(), Error> {
    let output = &tensor(tensors, p.output, op)?;
    quantized_bits(output, op)?;
    let (h, w, c) = nhwc(output, op)?;
    let parts = p.part_count();
    if !p.parts.len().is_multiple_of(CONCAT_PART_BYTES) || parts == 0 || parts > MAX_CONCAT_INPUTS {
        return Err(Error::BadParameter { op });
    }
    let mut channels = 0usize;
    for part in (0..parts).filter_map(|k| p.part(k)) {
        let input = &tensor(tensors, part.tensor, op)?;
        quantized_bits(input, op)?;
        let (ih, iw, ic) = nhwc(input, op)?;
        if (ih, iw) != (h, w) {
            return Err(Error::ShapeMismatch { op });
        }
        channels += ic;
        check_shift(part.shift, op)?;
        if part.multiplier < 0 {
            return Err(Error::BadParameter { op });
        }
        if !disjoint(input, output) {
            return Err(Error::OverlappingTensors { op });
        }
    }
    if channels != c {
        return Err(Error::ShapeMismatch { op });
    }
    Ok(())
}
