//! Malformed ONNX models (issue 11): each is rejected with one line naming the file, the node
//! (name and op) and the reason, both by the library (`import`) and by the CLI (exit code 1, not
//! a panic's 101). The models are built in code from `onnx_builder::Model::base()`, a small valid
//! model, with one thing broken.

mod onnx_builder;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hawq_compiler::onnx_proto::{AttributeProto, TensorProto};
use onnx_builder::{float, int, ints, string, tensor, tensor_i64, Model};

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/digits").join(file)
}

fn hawq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hawq")).args(args).output().expect("hawq runs")
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Writes `model` as `<file>.onnx`, and asserts that both `import` and `hawq compile` reject it
/// with one line mentioning the file and each of `needles`, the CLI exiting with code 1.
fn assert_rejected(model: &Model, file: &str, needles: &[&str]) {
    assert_rejected_with(model, file, needles, &[]);
}

fn assert_rejected_with(model: &Model, file: &str, needles: &[&str], compile_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{file}.onnx"));
    std::fs::write(&path, model.bytes()).unwrap();
    let file_name = format!("{file}.onnx");

    let err = match hawq_compiler::import::import(&path) {
        Ok(_) => panic!("{file}: import accepted the model"),
        Err(e) => format!("{e:#}"),
    };
    assert!(!err.contains('\n'), "{file}: the error should be one line: {err}");
    for n in std::iter::once(file_name.as_str()).chain(needles.iter().copied()) {
        assert!(err.contains(n), "{file}: the error should mention '{n}': {err}");
    }

    let out = dir.path().join("out.hq");
    let calib = example("calib.npz");
    let mut args = vec!["compile", p(&path), "--calib", p(&calib), "--input-scale", "0.0625"];
    args.extend_from_slice(compile_args);
    args.extend_from_slice(&["-o", p(&out)]);
    let o = hawq(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{file}: exit code; stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{file}: expected one line of error, got:\n{stderr}");
    for n in std::iter::once(file_name.as_str()).chain(needles.iter().copied()) {
        assert!(lines[0].contains(n), "{file}: the CLI error should mention '{n}': {}", lines[0]);
    }
    assert!(!out.exists(), "{file}: no model file is written");
}

/// The base model itself imports and compiles: every rejection below is caused by its mutation.
#[test]
fn base_model_compiles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("base.onnx");
    std::fs::write(&path, Model::base().bytes()).unwrap();
    let graph = hawq_compiler::import::import(&path).unwrap();
    assert_eq!(graph.output_shape(), &[10]);
    let out = dir.path().join("base.hq");
    let o = hawq(&[
        "compile",
        p(&path),
        "--calib",
        p(&example("calib.npz")),
        "--input-scale",
        "0.0625",
        "--bits",
        "4",
        "-o",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn conv_strides_must_be_two_positive_values() {
    let m = Model::base().attr("conv", ints("strides", &[]));
    assert_rejected(&m, "strides_empty", &["'conv'", "(Conv)", "'strides'", "two values"]);
    let m = Model::base().attr("conv", ints("strides", &[0, 0]));
    assert_rejected(&m, "strides_zero", &["'conv'", "(Conv)", "'strides' [0, 0]"]);
    let m = Model::base().attr("conv", ints("strides", &[-1, 1]));
    assert_rejected(&m, "strides_negative", &["'conv'", "'strides' [-1, 1]"]);
}

#[test]
fn same_padding_with_stride_zero_is_rejected() {
    for auto_pad in ["SAME_UPPER", "SAME_LOWER"] {
        let mut m = Model::base().attr("conv", string("auto_pad", auto_pad)).attr("conv", ints("strides", &[0, 0]));
        m.node_mut("conv").attribute.retain(|a| a.name != "pads");
        assert_rejected(&m, "same_stride_zero", &["'conv'", "(Conv)", "'strides' [0, 0]"]);
    }
}

#[test]
fn pool_attributes_must_have_one_positive_value_per_spatial_axis() {
    let m = Model::base().attr("pool", ints("strides", &[2]));
    assert_rejected(&m, "pool_stride_rank", &["'pool'", "(MaxPool)", "'strides' [2]", "one per spatial axis"]);
    let m = Model::base().attr("pool", ints("kernel_shape", &[2]));
    assert_rejected(&m, "pool_kernel_rank", &["'pool'", "(MaxPool)", "'kernel_shape' [2]"]);
    let m = Model::base().attr("pool", ints("kernel_shape", &[0, 2]));
    assert_rejected(&m, "pool_kernel_zero", &["'pool'", "'kernel_shape' [0, 2]"]);
    let m = Model::base().attr("pool", ints("kernel_shape", &[2, -2]));
    assert_rejected(&m, "pool_kernel_negative", &["'pool'", "'kernel_shape' [2, -2]"]);
    let m = Model::base().attr("pool", ints("pads", &[0, 0]));
    assert_rejected(&m, "pool_pads_rank", &["'pool'", "'pads' [0, 0]", "four values"]);
    // A window wholly in the padding has no input to pool.
    let m = Model::base().attr("pool", ints("pads", &[2, 0, 0, 0]));
    assert_rejected(&m, "pool_pads_beyond_kernel", &["'pool'", "'pads'", "smaller than the 2x2 kernel"]);
}

#[test]
fn conv_pads_kernel_shape_and_dilations_are_checked() {
    let m = Model::base().attr("conv", ints("pads", &[1, 1]));
    assert_rejected(&m, "conv_pads_rank", &["'conv'", "(Conv)", "'pads' [1, 1]", "four values"]);
    let m = Model::base().attr("conv", ints("pads", &[1, -1, 1, 1]));
    assert_rejected(&m, "conv_pads_negative", &["'conv'", "'pads' [1, -1, 1, 1]"]);
    let m = Model::base().attr("conv", ints("pads", &[1, 3, 1, 1]));
    assert_rejected(&m, "conv_pads_beyond_kernel", &["'conv'", "'pads' [1, 3, 1, 1]", "smaller than the 3x3 kernel"]);
    let m = Model::base().attr("conv", ints("dilations", &[1]));
    assert_rejected(&m, "conv_dilations_rank", &["'conv'", "'dilations' [1]"]);
    let m = Model::base().attr("conv", ints("dilations", &[0, 0]));
    assert_rejected(&m, "conv_dilations_zero", &["'conv'", "'dilations' [0, 0]"]);
    let m = Model::base().attr("conv", ints("kernel_shape", &[3]));
    assert_rejected(&m, "conv_kernel_rank", &["'conv'", "'kernel_shape' [3]", "3x3"]);
    let m = Model::base().attr("conv", ints("kernel_shape", &[0, 3]));
    assert_rejected(&m, "conv_kernel_zero", &["'conv'", "'kernel_shape' [0, 3]"]);
    let m = Model::base().attr("conv", int("group", 0));
    assert_rejected(&m, "conv_group_zero", &["'conv'", "'group' = 0"]);
}

#[test]
fn batch_norm_parameters_must_match_and_variance_be_non_negative() {
    let m = Model::base().init(tensor("bn_bias", &[1], vec![0.0]));
    assert_rejected(
        &m,
        "bn_short_bias",
        &["'bn'", "(BatchNormalization)", "bias 'bn_bias' has 1 values", "2 channels"],
    );
    let m = Model::base().init(tensor("bn_mean", &[3], vec![0.0; 3]));
    assert_rejected(&m, "bn_long_mean", &["'bn'", "mean 'bn_mean' has 3 values"]);
    let m = Model::base().init(tensor("bn_var", &[2], vec![1.0, -0.5]));
    assert_rejected(&m, "bn_negative_var", &["'bn'", "(BatchNormalization)", "var 'bn_var' is -0.5 at channel 1"]);
    let m = Model::base().init(tensor("bn_var", &[2], vec![0.0, 1.0])).attr("bn", float("epsilon", 0.0));
    assert_rejected(&m, "bn_zero_var_eps", &["'bn'", "var 'bn_var' is 0 at channel 0", "epsilon 0"]);
}

/// The base model with one more node, `op` on constants (named `folded`, output unused), which
/// the importer evaluates.
fn with_folded_shape(op: &str, inputs: &[&str], attrs: Vec<AttributeProto>, extra: Vec<TensorProto>) -> Model {
    let mut m = Model::base();
    for t in extra {
        m = m.init(t);
    }
    m.node_before("fc", op, "folded", inputs, &["folded_out"], attrs)
}

#[test]
fn constant_folding_rejects_out_of_range_arguments() {
    let c = || tensor("k", &[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let m = with_folded_shape("Transpose", &["k"], vec![ints("perm", &[0, 0])], vec![c()]);
    assert_rejected(&m, "fold_transpose", &["'folded'", "(Transpose)", "'perm' [0, 0]", "not a permutation"]);
    let m = with_folded_shape("Transpose", &["k"], vec![ints("perm", &[0, 1, 2])], vec![c()]);
    assert_rejected(&m, "fold_transpose_rank", &["'folded'", "'perm' [0, 1, 2]"]);

    let m = with_folded_shape("Reshape", &["k", "s"], vec![], vec![c(), tensor_i64("s", &[2], vec![4, 2])]);
    assert_rejected(
        &m,
        "fold_reshape_count",
        &["'folded'", "(Reshape)", "cannot reshape [2, 3] (6 elements) to [4, 2]"],
    );
    let m = with_folded_shape("Reshape", &["k", "s"], vec![], vec![c(), tensor_i64("s", &[3], vec![-1, -1, 2])]);
    assert_rejected(&m, "fold_reshape_two_infer", &["'folded'", "more than one -1"]);
    let m = with_folded_shape("Reshape", &["k", "s"], vec![], vec![c(), tensor_i64("s", &[3], vec![0, 0, 0])]);
    assert_rejected(&m, "fold_reshape_copy", &["'folded'", "copies dimension 2"]);
    let m = with_folded_shape("Reshape", &["k", "s"], vec![], vec![c(), tensor_i64("s", &[2], vec![-1, 4])]);
    assert_rejected(&m, "fold_reshape_infer", &["'folded'", "no -1 makes [2, 3]"]);

    let m = with_folded_shape("Unsqueeze", &["k", "a"], vec![], vec![c(), tensor_i64("a", &[1], vec![5])]);
    assert_rejected(&m, "fold_unsqueeze", &["'folded'", "(Unsqueeze)", "axis 5 is out of range for a rank-3 tensor"]);
    let m = with_folded_shape("Unsqueeze", &["k", "a"], vec![], vec![c(), tensor_i64("a", &[2], vec![0, 0])]);
    assert_rejected(&m, "fold_unsqueeze_repeat", &["'folded'", "repeat an axis"]);
    let m = with_folded_shape("Squeeze", &["k", "a"], vec![], vec![c(), tensor_i64("a", &[1], vec![-3])]);
    assert_rejected(&m, "fold_squeeze", &["'folded'", "(Squeeze)", "axis -3 is out of range"]);
    let m = with_folded_shape("Squeeze", &["k", "a"], vec![], vec![c(), tensor_i64("a", &[1], vec![1])]);
    assert_rejected(&m, "fold_squeeze_size", &["'folded'", "size is 3, not 1"]);

    let m = with_folded_shape("Gather", &["k", "i"], vec![], vec![c(), tensor_i64("i", &[1], vec![2])]);
    assert_rejected(&m, "fold_gather", &["'folded'", "(Gather)", "index 2 is out of range for axis 0 of size 2"]);
    let m = with_folded_shape("Gather", &["k", "i"], vec![], vec![c(), tensor_i64("i", &[1], vec![-3])]);
    assert_rejected(&m, "fold_gather_negative", &["'folded'", "index -3"]);
    let m = with_folded_shape("Gather", &["k", "i"], vec![int("axis", 2)], vec![c(), tensor_i64("i", &[1], vec![0])]);
    assert_rejected(&m, "fold_gather_axis", &["'folded'", "'axis' 2 is out of range"]);

    let m = with_folded_shape("Concat", &["k", "k"], vec![int("axis", 2)], vec![c()]);
    assert_rejected(&m, "fold_concat_axis", &["'folded'", "(Concat)", "'axis' 2 is out of range"]);
    let m =
        with_folded_shape("Concat", &["k", "d"], vec![int("axis", 0)], vec![c(), tensor("d", &[2, 2], vec![0.0; 4])]);
    assert_rejected(&m, "fold_concat_shapes", &["'folded'", "do not concatenate on axis 0"]);
}

#[test]
fn activation_reshapes_reject_bad_arguments() {
    // Reshape [1, 32] to [1, 33]; to [-1, -1]; Flatten axis 3 of a rank-4 map is fine, 5 is not.
    let reshape = |spec: Vec<i64>| {
        let n = spec.len() as i64;
        Model::base()
            .init(tensor_i64("spec", &[n], spec))
            .node_before("fc", "Reshape", "reshape", &["f", "spec"], &["f2"], vec![])
            .rewire("fc", 0, "f2")
    };
    assert_rejected(&reshape(vec![1, 33]), "act_reshape_count", &["'reshape'", "(Reshape)", "to [1, 33]"]);
    assert_rejected(&reshape(vec![-1, -1]), "act_reshape_infer", &["'reshape'", "more than one -1"]);
    assert_rejected(&reshape(vec![1, -2]), "act_reshape_negative", &["'reshape'", "negative dimension -2"]);
    let m = Model::base().attr("flatten", int("axis", 5));
    assert_rejected(&m, "flatten_axis", &["'flatten'", "(Flatten)", "'axis' 5 is out of range"]);
    let m = Model::base().attr("flatten", int("axis", -5));
    assert_rejected(&m, "flatten_axis_negative", &["'flatten'", "'axis' -5"]);
    let m = Model::base()
        .node_before("flatten", "Transpose", "transpose", &["p"], &["t"], vec![ints("perm", &[0, 1, 1, 3])])
        .rewire("flatten", 0, "t");
    assert_rejected(&m, "act_transpose", &["'transpose'", "(Transpose)", "not a permutation"]);
    let m = Model::base().node("Softmax", "softmax", &["logits"], &["probs"], vec![int("axis", 7)]);
    let mut m = m;
    m.graph.output[0].name = "probs".into();
    assert_rejected(&m, "softmax_axis", &["'softmax'", "(Softmax)", "'axis' 7 is out of range"]);
}

#[test]
fn division_by_a_zero_constant_is_rejected() {
    let m = Model::base()
        .init(tensor("divisor", &[1, 2, 1, 1], vec![2.0, 0.0]))
        .node_before("bn", "Div", "div", &["c", "divisor"], &["c2"], vec![])
        .rewire("bn", 0, "c2");
    assert_rejected(&m, "div_zero", &["'div'", "(Div)", "divisor 'divisor' is zero (channel 1)"]);
    let mut m = Model::base().init(tensor("zero", &[], vec![0.0]));
    m.node_mut("fc").output[0] = "logits_raw".into();
    let m = m.node("Div", "div_fc", &["logits_raw", "zero"], &["logits"], vec![]);
    assert_rejected(&m, "div_zero_fc", &["'div_fc'", "(Div)", "divisor 'zero' is zero"]);
}

#[test]
fn non_finite_constants_are_rejected_naming_the_tensor() {
    let mut w: Vec<f32> = (0..18).map(|i| i as f32 / 18.0).collect();
    w[4] = f32::NAN;
    let m = Model::base().init(tensor("w", &[2, 1, 3, 3], w.clone()));
    assert_rejected(&m, "nan_weight", &["'conv'", "(Conv)", "tensor 'w' holds NaN at element 4"]);
    w[4] = f32::INFINITY;
    let m = Model::base().init(tensor("w", &[2, 1, 3, 3], w));
    assert_rejected(&m, "inf_weight", &["'conv'", "tensor 'w' holds inf"]);
    let m = Model::base().init(tensor("fc_b", &[10], vec![f32::NEG_INFINITY; 10]));
    assert_rejected(&m, "inf_bias", &["'fc'", "(Gemm)", "tensor 'fc_b' holds -inf"]);
    let m = Model::base().init(tensor("bn_scale", &[2], vec![1.0, f32::NAN]));
    assert_rejected(&m, "nan_bn", &["'bn'", "(BatchNormalization)", "tensor 'bn_scale' holds NaN"]);
    // A folded constant: 1 / 0 = inf, then used as a per-channel scale.
    let m = Model::base()
        .init(tensor("one", &[2], vec![1.0, 1.0]))
        .init(tensor("zeros", &[2], vec![0.0, 0.0]))
        .node_before("bn", "Div", "inverse", &["one", "zeros"], &["k"], vec![])
        .node_before("bn", "Reshape", "k4", &["k", "k_shape"], &["k4_out"], vec![])
        .init(tensor_i64("k_shape", &[4], vec![1, 2, 1, 1]))
        .node_before("bn", "Mul", "scale", &["c", "k4_out"], &["c2"], vec![])
        .rewire("bn", 0, "c2");
    assert_rejected(&m, "inf_folded", &["'k4'", "(Reshape)", "tensor 'k' holds inf"]);
    // Double-precision weights beyond the f32 range.
    let mut m = Model::base();
    m.graph.initializer.retain(|t| t.name != "b");
    m = m.init(TensorProto {
        dims: vec![2],
        data_type: hawq_compiler::onnx_proto::data_type::DOUBLE,
        double_data: vec![1e300, 0.0],
        name: "b".into(),
        ..Default::default()
    });
    assert_rejected(&m, "f32_overflow", &["'conv'", "bias element 0 is not finite in f32"]);
    let m = Model::base().attr("bn", float("epsilon", f32::NAN));
    assert_rejected(&m, "nan_epsilon", &["'bn'", "'epsilon' = NaN"]);
}

/// Inf weights at 4 and 2 bits are an import error before GPTQ sees them.
#[test]
fn infinite_weights_fail_at_import_at_every_bit_width() {
    let m = Model::base().init(tensor("fc_w", &[10, 32], vec![f32::INFINITY; 320]));
    for bits in ["4", "2"] {
        assert_rejected_with(&m, "inf_gptq", &["'fc'", "(Gemm)", "tensor 'fc_w' holds inf"], &["--bits", bits]);
    }
}

#[test]
fn clip_bounds_beyond_the_range_mean_no_clamp() {
    // Conv outputs all positive (bias 10), so the output's zero point is −128 and a −1e30 lower
    // bound used to wrap around i32 (a panic with overflow checks, a clamp to the top otherwise).
    let build = |clip: bool| {
        let mut m = Model::base().init(tensor("b", &[2], vec![10.0, 10.0]));
        m.graph.node.retain(|n| n.name != "relu");
        m = m.rewire("pool", 0, "n");
        if clip {
            m = m
                .init(tensor("lo", &[], vec![-1e30]))
                .init(tensor("hi", &[], vec![1e30]))
                .node_before("pool", "Clip", "clip", &["n", "lo", "hi"], &["clipped"], vec![])
                .rewire("pool", 0, "clipped");
        }
        m
    };
    let dir = tempfile::tempdir().unwrap();
    let x = ndarray::Array4::<u8>::from_shape_fn((4, 1, 8, 8), |(n, _, y, x)| ((n * 5 + y * 3 + x) % 17) as u8);
    let xin = dir.path().join("x.npy");
    ndarray_npy::write_npy(&xin, &x).unwrap();
    let mut outputs = Vec::new();
    for clip in [false, true] {
        let model = dir.path().join(format!("clip_{clip}.onnx"));
        std::fs::write(&model, build(clip).bytes()).unwrap();
        let hq = dir.path().join(format!("clip_{clip}.hq"));
        let o =
            hawq(&["compile", p(&model), "--calib", p(&example("calib.npz")), "--input-scale", "0.0625", "-o", p(&hq)]);
        assert!(o.status.success(), "clip {clip}: {}", String::from_utf8_lossy(&o.stderr));
        let y = dir.path().join(format!("y_{clip}.npy"));
        let o = hawq(&["run", p(&hq), "--input", p(&xin), "-o", p(&y)]);
        assert!(o.status.success(), "clip {clip}: {}", String::from_utf8_lossy(&o.stderr));
        outputs.push(ndarray_npy::read_npy::<_, ndarray::Array2<f32>>(&y).unwrap());
    }
    assert_eq!(outputs[0], outputs[1], "a ±1e30 Clip must compile to the unclamped model");
    assert!(outputs[0].iter().any(|&v| v != outputs[0][[0, 0]]), "the outputs vary (the test sees a clamp)");

    // NaN bounds are an error.
    let m = build(true).init(tensor("hi", &[], vec![f32::NAN]));
    assert_rejected(&m, "clip_nan", &["'clip'", "(Clip)", "'max' bound is NaN"]);
}

#[test]
fn file_driven_sizes_are_bounded_before_allocating() {
    for pad in [1i64 << 40, 1 << 62, i64::MAX] {
        let m = Model::base().attr("conv", ints("pads", &[pad, pad, pad, pad]));
        assert_rejected(&m, "huge_pads", &["'conv'", "(Conv)", "'pads'", "16777216"]);
    }
    // In the accepted range, but the output would be 2 × 10006² elements.
    let m = Model::base().attr("conv", ints("pads", &[5000, 5000, 5000, 5000]));
    assert_rejected(&m, "big_output", &["'conv'", "(Conv)", "more than 16777216 elements", "2^24"]);
    // A big window over a small output: the im2col work bound.
    let m = Model::base()
        .init(tensor("w", &[2, 1, 3, 3], vec![0.1; 18]))
        .attr("conv", ints("pads", &[1400, 1400, 1400, 1400]))
        .attr("conv", ints("strides", &[1, 1]));
    assert_rejected(&m, "big_window", &["'conv'", "window work", "67108864"]);
    let m = Model::base().attr("pool", ints("kernel_shape", &[1 << 40, 2]));
    assert_rejected(&m, "huge_kernel", &["'pool'", "(MaxPool)", "'kernel_shape'"]);
    // Initializers whose dimensions overflow or are negative, with no data behind them.
    let mut m = Model::base();
    m = m.init(TensorProto {
        dims: vec![1 << 32, 1 << 32, 1 << 32],
        data_type: 1,
        name: "w".into(),
        ..Default::default()
    });
    assert_rejected(&m, "overflowing_dims", &["tensor 'w' of shape", "16777216"]);
    let m = Model::base().init(TensorProto { dims: vec![-2, 9], data_type: 1, name: "w".into(), ..Default::default() });
    assert_rejected(&m, "negative_dims", &["tensor 'w' has the negative dimension -2"]);
    // A reshape of a constant to a giant shape, and an input with giant dimensions.
    let m = with_folded_shape(
        "Reshape",
        &["k", "s"],
        vec![],
        vec![tensor("k", &[2], vec![1.0, 2.0]), tensor_i64("s", &[3], vec![1 << 30, 1 << 30, 1 << 30])],
    );
    assert_rejected(&m, "giant_reshape", &["'folded'", "(Reshape)", "cannot reshape [2]"]);
    let mut m = Model::base();
    m.graph.input[0] = onnx_builder::value_info("x", &[1, 1, 1 << 31, 1 << 31]);
    assert_rejected(&m, "giant_input", &["tensor 'x'", "16777216"]);
    // Broadcasting two small constants into a big one.
    let m = with_folded_shape(
        "Mul",
        &["row", "col"],
        vec![],
        vec![tensor("row", &[1, 5000], vec![1.0; 5000]), tensor("col", &[5000, 1], vec![1.0; 5000])],
    );
    assert_rejected(&m, "giant_broadcast", &["'folded'", "(Mul)", "[5000, 5000]", "16777216"]);
}

/// A graph with two outputs: both are kept to the end of the run and readable on the device,
/// the second (a feature map) within a step of the float model's.
#[test]
fn several_outputs_are_all_readable_on_the_device() {
    use hawq_compiler::data::Dataset;
    use hawq_compiler::ir::InputTransform;
    use hawq_compiler::pipeline::{compile, prepare};
    use hawq_compiler::quantize::BitConfig;
    let graph = hawq_compiler::import::import_bytes(&Model::base().output("p", &[1, 2, 4, 4]).bytes()).unwrap();
    assert_eq!(graph.extra_outputs.len(), 1);
    let p = graph.extra_outputs[0];
    assert_eq!(graph.values[p].shape, [4, 4, 2]);
    let calib = Dataset::load(&example("calib.npz")).unwrap();
    let transform = InputTransform { scale: 1.0 / 16.0, offset: 0.0 };
    let prepared = prepare(graph, &calib, transform).unwrap();
    let compiled = compile(&prepared, &BitConfig::uniform(&prepared.graph, 8, 8)).unwrap();
    let model = hawq_runtime::Model::from_bytes(&compiled.blob).unwrap();
    assert_eq!(model.output_count(), 2);
    assert_eq!(model.output_tensor(1), Some(p as u16));
    assert_eq!(model.output_tensor(2), None);
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut it = hawq_runtime::Interpreter::new(&model, &mut arena).unwrap();
    it.write_input_raw(&calib.raw(0)).unwrap();
    it.invoke().unwrap();
    let mut got = vec![0f32; 32];
    assert_eq!(it.read_output_at_f32(1, &mut got).unwrap(), 32);
    assert!(it.output_bytes_at(2).is_none());
    let real = calib.real(0, transform);
    let float =
        hawq_compiler::float_exec::run_all(&prepared.graph, &prepared.graph.input_layout.to_nhwc(&real, (8, 8, 1)));
    let step = model.tensor(p as u16).unwrap().scale.to_f32();
    for (g, w) in got.iter().zip(&float[p]) {
        assert!((g - w).abs() <= 1.5 * step, "second output {g} vs float {w} (step {step})");
    }
}

#[test]
fn every_unsupported_op_is_reported_at_once() {
    let m = Model::base()
        .node("Softplus", "/act/Softplus", &["logits"], &["s1"], vec![])
        .node("Mish", "/act/Mish", &["s1"], &["s2"], vec![])
        .node("Softplus", "/act/Softplus_1", &["s2"], &["s3"], vec![]);
    assert_rejected(
        &m,
        "unsupported",
        &["unsupported ops: Softplus (2 nodes: /act/Softplus, /act/Softplus_1), Mish (node /act/Mish)"],
    );
    // One unsupported node keeps the node-first form.
    let m = Model::base().node("Softplus", "/act/Softplus", &["logits"], &["s1"], vec![]);
    assert_rejected(&m, "one_unsupported", &["node '/act/Softplus' (Softplus): operator 'Softplus' is not supported"]);
    // Other domains are named with theirs.
    let mut m = Model::base().node("FusedConv", "fused", &["logits"], &["s1"], vec![]);
    m.node_mut("fused").domain = "com.microsoft".into();
    let m = m.node("Mish", "mish", &["s1"], &["s2"], vec![]);
    assert_rejected(&m, "domain", &["com.microsoft::FusedConv (node fused)", "Mish (node mish)"]);
}
