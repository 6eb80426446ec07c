//! The loader's hand decoder of an op (`format::decode::take_op`) against postcard's: the same
//! value and remainder on every encoding the compiler can write, and the same verdict on truncated,
//! mutated and arbitrary bytes.

use hawq_runtime::format::decode::{take_linked_op, take_op, Refusal};
use hawq_runtime::format::{
    AddParams, ChannelParams, Clamp, ConcatParams, ConvParams, DepthToSpaceParams, FcParams, LutParams, MulParams, Op,
    PoolParams, ResizeParams, SliceParams, UnaryParams,
};
use hawq_runtime::kernels::linked;
use proptest::prelude::*;

/// Integers biased to the varint boundaries (one-, two-, three-byte encodings and the extremes).
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
    let n = postcard::to_slice(op, &mut buf).expect("fits").len();
    buf.truncate(n);
    buf
}

/// Both decoders on `bytes`: the same op and remainder, or both refuse.
fn agree(bytes: &[u8]) -> Result<(), TestCaseError> {
    let theirs = postcard::take_from_bytes::<Op<'_>>(bytes).ok();
    let ours = take_op(bytes);
    prop_assert_eq!(ours, theirs, "bytes {:02x?}", bytes);
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
        agree(&bytes)?;
    }

    #[test]
    fn truncated_and_mutated_encodings_get_postcard_s_verdict(
        variant in 0u8..VARIANTS,
        f in fields(),
        cut in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let mut bytes = encode(&op(variant, &f));
        for (at, v) in edits {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        agree(&bytes)?;
        agree(&bytes[..cut.index(bytes.len() + 1)])?;
    }

    /// A build's decoder (kernel set `K`) reads the ops of its set as the full one does and
    /// refuses the others after their variant index, for valid encodings and mutated ones alike.
    #[test]
    fn a_narrowed_decoder_reads_its_ops_and_refuses_the_rest(
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
        match postcard::take_from_bytes::<u32>(&bytes) {
            Ok((index, _)) if index < VARIANTS as u32 => {
                let kind = match full {
                    Some((op, _)) => linked::kind(&op),
                    // The kind by variant index when the fields are malformed.
                    None => linked::kind(&op(index as u8, &f)),
                };
                if linked::has(SET, kind) {
                    prop_assert_eq!(narrowed.ok(), full);
                    prop_assert_eq!(narrowed.err().is_some(), full.is_none());
                } else {
                    prop_assert_eq!(narrowed.err(), Some(Refusal::NotLinked));
                }
            }
            _ => prop_assert_eq!(narrowed.err(), Some(Refusal::Malformed)),
        }
    }

    #[test]
    fn arbitrary_bytes_get_postcard_s_verdict(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        agree(&bytes)?;
    }

    #[test]
    fn overlong_and_overflowing_varints_get_postcard_s_verdict(
        variant in 0u8..VARIANTS,
        prefix in proptest::collection::vec(0x80u8..=0xFF, 0..12),
        last in any::<u8>(),
        tail in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        // A variant index, then a run of continuation bytes where the first u16 field starts.
        let mut bytes = vec![variant];
        bytes.extend_from_slice(&prefix);
        bytes.push(last);
        bytes.extend_from_slice(&tail);
        agree(&bytes)?;
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
    assert_eq!(names.len(), VARIANTS as usize);
    for (variant, name) in (0..VARIANTS).zip(names) {
        let op = op(variant, &f);
        assert_eq!(op.name(), name);
        assert_eq!(encode(&op)[0], variant, "{name}");
    }
    // One past the last variant is no op, for postcard and the hand decoder alike.
    let past = [VARIANTS, 1, 2];
    assert!(take_op(&past).is_none());
    assert!(postcard::take_from_bytes::<Op<'_>>(&past).is_err());
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
