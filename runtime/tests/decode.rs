//! The op records (`format::encode_op`, `format::decode::take_op`): every op decodes from its
//! record to itself; a truncated record is refused; any other bytes are refused or decode to the
//! op whose record they are, so reader and writer cannot disagree on a field. The layouts of the
//! format's documentation are pinned byte by byte. Then the body's tables against postcard's
//! reading of them (`mod meta`).

use hawq_runtime::format::decode::{take_linked_op, take_op, Refusal};
use hawq_runtime::format::{
    encode_op, AddParams, ChannelParams, Clamp, ConcatParams, ConvParams, DepthToSpaceParams, FcParams, LutParams,
    MulParams, Op, PoolParams, ResizeParams, SliceParams, UnaryParams,
};
use hawq_runtime::kernels::linked;
use proptest::prelude::*;

/// Integers biased to the varint boundaries of the meta's encoding (one-, two-, three-byte
/// encodings) and the extremes.
fn edgy_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u32>(),
        Just(0u32),
        Just(127),
        Just(128),
        Just(16_383),
        Just(16_384),
        Just(u16::MAX as u32),
        Just(u32::MAX),
        0u32..300,
    ]
}

fn edgy_u16() -> impl Strategy<Value = u16> {
    prop_oneof![any::<u16>(), Just(0u16), Just(127), Just(128), Just(16_383), Just(16_384), Just(u16::MAX)]
}

fn edgy_i32() -> impl Strategy<Value = i32> {
    prop_oneof![any::<i32>(), Just(i32::MIN), Just(i32::MAX), Just(-1), Just(0), Just(-64), Just(64)]
}

fn blob() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..4), proptest::collection::vec(any::<u8>(), 120..140)]
}

#[derive(Debug, Clone)]
struct Fields {
    u16s: [u16; 6],
    u8s: [u8; 8],
    i8s: [i8; 4],
    i32s: [i32; 2],
    u32: u32,
    bytes: [Vec<u8>; 3],
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        proptest::array::uniform6(edgy_u16()),
        any::<[u8; 8]>(),
        any::<[i8; 4]>(),
        proptest::array::uniform2(edgy_i32()),
        edgy_u32(),
        [blob(), blob(), blob()],
    )
        .prop_map(|(u16s, u8s, i8s, i32s, u32, bytes)| Fields { u16s, u8s, i8s, i32s, u32, bytes })
}

/// The variants of `Op`; each op's index in the file is its place in this order.
const VARIANTS: u8 = 16;

/// Op `variant` (0..VARIANTS) with its fields from `f`.
fn op(variant: u8, f: &Fields) -> Op<'_> {
    let [a, b, c, d, e, g] = f.u16s;
    let [k0, k1, k2, k3, k4, k5, k6, k7] = f.u8s;
    let clamp = Clamp { min: f.i8s[0], max: f.i8s[1] };
    let channel = ChannelParams { bias: &f.bytes[1], bias_exponent: k7, multiplier: &f.bytes[2], shift_base: f.i8s[2] };
    let conv = ConvParams {
        input: a,
        output: b,
        kernel_h: k0,
        kernel_w: k1,
        stride_h: k2,
        stride_w: k3,
        pad_top: k4,
        pad_left: k5,
        weight_bits: k6,
        weights: &f.bytes[0],
        channel,
        clamp,
        scratch: f.u32,
    };
    let pool = PoolParams {
        input: a,
        output: b,
        kernel_h: c,
        kernel_w: d,
        stride_h: k0,
        stride_w: k1,
        pad_top: k2,
        pad_left: k3,
        multiplier: f.i32s[0],
        shift: f.i8s[3],
        clamp,
    };
    let unary = UnaryParams { input: a, output: b };
    match variant {
        0 => Op::Conv2d(conv),
        1 => Op::DepthwiseConv2d(conv),
        2 => Op::FullyConnected(FcParams {
            input: a,
            output: b,
            weight_bits: k6,
            weights: &f.bytes[0],
            channel,
            clamp,
            scratch: f.u32,
        }),
        3 => Op::AvgPool(pool),
        4 => Op::MaxPool(pool),
        5 => Op::Add(AddParams {
            a,
            b,
            output: c,
            multiplier_a: f.i32s[0],
            multiplier_b: f.i32s[1],
            shift: f.i8s[3],
            clamp,
        }),
        6 => Op::Reshape(unary),
        7 => Op::Softmax(unary),
        8 => Op::Dequantize(unary),
        9 => Op::Lut(LutParams { input: a, output: b, table: &f.bytes[0] }),
        10 => Op::Mul(MulParams { a, b, output: c, multiplier: f.i32s[0], shift: f.i8s[3], clamp }),
        11 => Op::Concat(ConcatParams { output: a, parts: &f.bytes[0] }),
        12 => Op::Slice(SliceParams { input: a, output: b, begin: [c, d, e], step: [g, a, b] }),
        13 => Op::Resize(ResizeParams { input: a, output: b, factor_h: k0, factor_w: k1 }),
        14 => Op::DepthToSpace(DepthToSpaceParams { input: a, output: b, block: k0 }),
        _ => Op::LogSoftmax(unary),
    }
}

fn encode(op: &Op<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 1024];
    let n = encode_op(op, &mut buf).expect("fits");
    buf.truncate(n);
    buf
}

/// What any bytes may do: be refused, or be the record of the op they decode to, followed by
/// the rest.
fn refused_or_exact(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Some((op, rest)) = take_op(bytes) {
        let record = encode(&op);
        prop_assert_eq!(&bytes[..record.len()], &record[..], "bytes {:02x?}", bytes);
        prop_assert_eq!(rest, &bytes[record.len()..]);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn every_encoded_op_decodes_to_itself(variant in 0u8..VARIANTS, f in fields(), tail in blob()) {
        let op = op(variant, &f);
        let mut bytes = encode(&op);
        let n = bytes.len();
        bytes.extend_from_slice(&tail);
        let (decoded, rest) = take_op(&bytes).expect("a valid encoding");
        prop_assert_eq!(decoded, op);
        prop_assert_eq!(rest, &bytes[n..]);
    }

    #[test]
    fn a_truncated_record_is_refused(variant in 0u8..VARIANTS, f in fields(), cut in any::<prop::sample::Index>()) {
        let bytes = encode(&op(variant, &f));
        let short = &bytes[..cut.index(bytes.len())];
        prop_assert_eq!(take_linked_op::<{ linked::ALL }>(short).err(), Some(Refusal::Malformed));
    }

    #[test]
    fn mutated_records_are_refused_or_read_exactly(
        variant in 0u8..VARIANTS,
        f in fields(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(&op(variant, &f));
        for (at, v) in edits {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        refused_or_exact(&bytes)?;
    }

    #[test]
    fn arbitrary_bytes_are_refused_or_read_exactly(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        refused_or_exact(&bytes)?;
    }

    /// A build's reader (kernel set `K`) reads the ops of its set as the full one does and
    /// refuses the others after their kind byte, for valid records and mutated ones alike.
    #[test]
    fn a_narrowed_reader_reads_its_ops_and_refuses_the_rest(
        variant in 0u8..VARIANTS,
        f in fields(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    ) {
        const SET: u32 = linked::CONV2D | linked::FULLY_CONNECTED | linked::ADD | linked::SOFTMAX;
        let mut bytes = encode(&op(variant, &f));
        for (at, v) in edits {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        let full = take_op(&bytes);
        let narrowed = take_linked_op::<SET>(&bytes);
        let kind = bytes[0];
        if kind < VARIANTS {
            if linked::has(SET, linked::kind(&op(kind, &f))) {
                prop_assert_eq!(narrowed.ok(), full);
                prop_assert_eq!(narrowed.err().is_some(), full.is_none());
            } else {
                prop_assert_eq!(narrowed.err(), Some(Refusal::NotLinked));
            }
        } else {
            prop_assert_eq!(narrowed.err(), Some(Refusal::Malformed));
        }
    }
}

/// A variant's index is what a file stores: an op added later goes at the end of `Op`, so that
/// the files written before it keep their meaning. Reordering the enum fails here.
#[test]
fn variant_indices_are_the_format_s() {
    let f = Fields { u16s: [1; 6], u8s: [1; 8], i8s: [0; 4], i32s: [0; 2], u32: 0, bytes: [vec![], vec![], vec![]] };
    let names = [
        "conv2d",
        "depthwise_conv2d",
        "fully_connected",
        "avg_pool",
        "max_pool",
        "add",
        "reshape",
        "softmax",
        "dequantize",
        "lut",
        "mul",
        "concat",
        "slice",
        "resize",
        "depth_to_space",
        "log_softmax",
    ];
    // The fixed part of each kind's record (the format's table), here with empty byte strings.
    let fixed = [32, 32, 26, 20, 20, 18, 5, 5, 5, 9, 14, 7, 17, 7, 6, 5];
    assert_eq!(names.len(), VARIANTS as usize);
    for (variant, (name, fixed)) in (0..VARIANTS).zip(names.into_iter().zip(fixed)) {
        let op = op(variant, &f);
        assert_eq!(op.name(), name);
        let record = encode(&op);
        assert_eq!(record[0], variant, "{name}");
        assert_eq!(record.len(), fixed, "{name}");
    }
    // One past the last variant is no op.
    let past = [VARIANTS, 1, 2, 3, 4, 5, 6, 7];
    assert_eq!(take_linked_op::<{ linked::ALL }>(&past).err(), Some(Refusal::Malformed));
}

/// The offsets of the format's documentation, byte by byte, for the layouts with the most fields.
#[test]
fn records_hold_their_fields_where_the_format_says() {
    let channel = ChannelParams { bias: &[0xB0, 0xB1], bias_exponent: 0x16, multiplier: &[0xC0], shift_base: -3 };
    let conv = ConvParams {
        input: 0x0201,
        output: 0x0403,
        kernel_h: 0x21,
        kernel_w: 0x22,
        stride_h: 0x23,
        stride_w: 0x24,
        pad_top: 0x25,
        pad_left: 0x26,
        weight_bits: 4,
        weights: &[0xA0, 0xA1, 0xA2],
        channel,
        clamp: Clamp { min: -128, max: 127 },
        scratch: 0x0807_0605,
    };
    #[rustfmt::skip]
    let expected = [
        1, 4, 0x01, 0x02, 0x03, 0x04, 0x16, 0xFD, 0x80, 0x7F,
        0x05, 0x06, 0x07, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0,
        0x21, 0x22, 0x23, 0x24, 0x25, 0x26,
        0xA0, 0xA1, 0xA2, 0xB0, 0xB1, 0xC0,
    ];
    assert_eq!(encode(&Op::DepthwiseConv2d(conv)), expected);
    let pool = PoolParams {
        input: 0x0201,
        output: 0x0403,
        kernel_h: 0x0605,
        kernel_w: 0x0807,
        stride_h: 0x11,
        stride_w: 0x12,
        pad_top: 0x13,
        pad_left: 0x14,
        multiplier: 0x3433_3231,
        shift: -2,
        clamp: Clamp { min: -5, max: 6 },
    };
    #[rustfmt::skip]
    let expected = [
        4, 0x11, 0x12, 0x13, 0x14, 0xFE, 0xFB, 0x06,
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x31, 0x32, 0x33, 0x34,
    ];
    assert_eq!(encode(&Op::MaxPool(pool)), expected);
    let add = AddParams {
        a: 0x0201,
        b: 0x0403,
        output: 0x0605,
        multiplier_a: 0x1413_1211,
        multiplier_b: -1,
        shift: 7,
        clamp: Clamp { min: 0, max: 1 },
    };
    #[rustfmt::skip]
    let expected = [5, 7, 0, 1, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x11, 0x12, 0x13, 0x14, 0xFF, 0xFF, 0xFF, 0xFF];
    assert_eq!(encode(&Op::Add(add)), expected);
    let slice = SliceParams { input: 0x0201, output: 0x0403, begin: [5, 6, 7], step: [8, 9, 10] };
    let expected = [12, 0x01, 0x02, 0x03, 0x04, 5, 0, 6, 0, 7, 0, 8, 0, 9, 0, 10, 0];
    assert_eq!(encode(&Op::Slice(slice)), expected);
}

/// A log-softmax is its own kernel: a build that links softmax alone refuses it, and one that
/// links log-softmax alone reads it.
#[test]
fn log_softmax_needs_its_own_kernel() {
    let bytes = encode(&Op::LogSoftmax(UnaryParams { input: 3, output: 4 }));
    assert_eq!(take_linked_op::<{ linked::SOFTMAX }>(&bytes).err(), Some(Refusal::NotLinked));
    let (op, rest) = take_linked_op::<{ linked::LOG_SOFTMAX }>(&bytes).expect("linked");
    assert_eq!(op, Op::LogSoftmax(UnaryParams { input: 3, output: 4 }));
    assert!(rest.is_empty());
}

/// The body's tables (`format::decode::take_meta`) against postcard's reading of them.
mod meta {
    use super::{blob, edgy_u16, edgy_u32};
    use hawq_runtime::format::decode::take_meta;
    use hawq_runtime::format::{InputLayout, ModelMeta, RawInput, Tensors};
    use proptest::prelude::*;

    fn agree(bytes: &[u8]) -> Result<(), TestCaseError> {
        let theirs = postcard::take_from_bytes::<ModelMeta<'_>>(bytes).ok();
        prop_assert_eq!(take_meta(bytes), theirs, "bytes {:02x?}", bytes);
        Ok(())
    }

    fn encode(meta: &ModelMeta<'_>) -> Vec<u8> {
        let mut buf = vec![0u8; 1024];
        let n = postcard::to_slice(meta, &mut buf).expect("fits").len();
        buf.truncate(n);
        buf
    }

    fn with<'a>(tensors: &'a [u8], extra: &'a [u8], u16s: [u16; 3], u32s: [u32; 2], enums: (u8, u8)) -> ModelMeta<'a> {
        ModelMeta {
            tensors: Tensors::new(tensors),
            input: u16s[0],
            output: u16s[1],
            extra_outputs: extra,
            raw_input: [RawInput::U8, RawInput::I8, RawInput::F32][enums.0 as usize % 3],
            input_layout: [InputLayout::Nhwc, InputLayout::Nchw][enums.1 as usize % 2],
            scratch_offset: u32s[0],
            scratch_bytes: u32s[1],
            op_count: u16s[2],
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn every_encoded_meta_decodes_to_itself(
            tensors in blob(),
            extra in blob(),
            u16s in proptest::array::uniform3(edgy_u16()),
            u32s in proptest::array::uniform2(edgy_u32()),
            enums in any::<(u8, u8)>(),
            tail in blob(),
        ) {
            let meta = with(&tensors, &extra, u16s, u32s, enums);
            let mut bytes = encode(&meta);
            let n = bytes.len();
            bytes.extend_from_slice(&tail);
            let (decoded, rest) = take_meta(&bytes).expect("a valid encoding");
            prop_assert_eq!(decoded, meta);
            prop_assert_eq!(rest, &bytes[n..]);
            agree(&bytes)?;
        }

        #[test]
        fn truncated_and_mutated_metas_get_postcard_s_verdict(
            tensors in blob(),
            u16s in proptest::array::uniform3(edgy_u16()),
            u32s in proptest::array::uniform2(edgy_u32()),
            enums in any::<(u8, u8)>(),
            cut in any::<prop::sample::Index>(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        ) {
            let mut bytes = encode(&with(&tensors, &[1, 0], u16s, u32s, enums));
            for (at, v) in edits {
                let i = at.index(bytes.len());
                bytes[i] = v;
            }
            agree(&bytes)?;
            agree(&bytes[..cut.index(bytes.len() + 1)])?;
        }

        #[test]
        fn arbitrary_bytes_get_postcard_s_meta_verdict(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            agree(&bytes)?;
        }
    }
}
