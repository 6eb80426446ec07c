//! ConvTranspose of any kernel, square stride, pads and output padding (the U-Net and DCGAN
//! upsampler, `kernel 4, stride 2, pad 1`, among them) imports as a sub-pixel convolution,
//! depth-to-space and a crop, and computes what ONNX defines: checked against a direct
//! transposed convolution written from the operator's definition, with a Relu or a
//! BatchNormalization after it folded into the convolution.

mod onnx_builder;

use hawq_compiler::import::import_bytes;
use hawq_compiler::ir::OpKind;
use onnx_builder::{ints, tensor, Model};

struct Case {
    c: usize,
    o: usize,
    h: usize,
    w: usize,
    k: [usize; 2],
    s: usize,
    pads: [usize; 4],
    out_pad: [usize; 2],
}

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n).map(|i| (((i * 37 + seed * 11) % 23) as f32 - 11.0) / 13.0).collect()
}

/// `y[o, Y, X] = b[o] + Σ x[c, i, j]·w[c, o, a, b]` over `i·s + a − pad_top = Y`,
/// `j·s + b − pad_left = X` (ONNX ConvTranspose, group 1, no dilation), `[O, Ho, Wo]`.
fn direct(t: &Case, x: &[f32], w: &[f32], b: &[f32], ho: usize, wo: usize) -> Vec<f32> {
    let mut y = vec![0f32; t.o * ho * wo];
    for o in 0..t.o {
        for v in &mut y[o * ho * wo..(o + 1) * ho * wo] {
            *v = b[o];
        }
    }
    for c in 0..t.c {
        for i in 0..t.h {
            for j in 0..t.w {
                for o in 0..t.o {
                    for a in 0..t.k[0] {
                        for bb in 0..t.k[1] {
                            let (yy, xx) =
                                ((i * t.s + a) as i64 - t.pads[0] as i64, (j * t.s + bb) as i64 - t.pads[1] as i64);
                            if yy < 0 || xx < 0 || yy >= ho as i64 || xx >= wo as i64 {
                                continue;
                            }
                            let wv = w[((c * t.o + o) * t.k[0] + a) * t.k[1] + bb];
                            y[(o * ho + yy as usize) * wo + xx as usize] += x[(c * t.h + i) * t.w + j] * wv;
                        }
                    }
                }
            }
        }
    }
    y
}

fn check(t: &Case, after: Option<&str>) {
    let ho = (t.h - 1) * t.s + t.k[0] + t.out_pad[0] - t.pads[0] - t.pads[2];
    let wo = (t.w - 1) * t.s + t.k[1] + t.out_pad[1] - t.pads[1] - t.pads[3];
    let (x, w, b) = (values(t.c * t.h * t.w, 1), values(t.c * t.o * t.k[0] * t.k[1], 2), values(t.o, 3));
    let dims = |v: &[usize]| v.iter().map(|&d| d as i64).collect::<Vec<_>>();
    let attrs = vec![
        ints("strides", &[t.s as i64; 2]),
        ints("pads", &dims(&t.pads)),
        ints("output_padding", &dims(&t.out_pad)),
        ints("kernel_shape", &dims(&t.k)),
    ];
    let mut m = Model::new("x", &dims(&[1, t.c, t.h, t.w]))
        .init(tensor("w", &dims(&[t.c, t.o, t.k[0], t.k[1]]), w.clone()))
        .init(tensor("b", &[t.o as i64], b.clone()))
        .node("ConvTranspose", "up", &["x", "w", "b"], &["u"], attrs);
    let mut want = direct(t, &x, &w, &b, ho, wo);
    match after {
        Some("Relu") => {
            m = m.node("Relu", "relu", &["u"], &["y"], vec![]);
            want.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        Some("BatchNormalization") => {
            let (scale, bias) = (values(t.o, 4), values(t.o, 5));
            let mean = values(t.o, 6);
            let var: Vec<f32> = values(t.o, 7).iter().map(|v| 0.5 + v.abs()).collect();
            for (n, v) in want.iter_mut().enumerate() {
                let o = n / (ho * wo);
                *v = (*v - mean[o]) / (var[o] + 1e-5).sqrt() * scale[o] + bias[o];
            }
            m = m
                .init(tensor("s", &[t.o as i64], scale))
                .init(tensor("bb", &[t.o as i64], bias))
                .init(tensor("m", &[t.o as i64], mean))
                .init(tensor("v", &[t.o as i64], var))
                .node("BatchNormalization", "bn", &["u", "s", "bb", "m", "v"], &["y"], vec![]);
        }
        _ => m = m.node("Identity", "id", &["u"], &["y"], vec![]),
    }
    let m = m.output("y", &dims(&[1, t.o, ho, wo]));
    let label = format!("k {:?} s {} pads {:?} output_padding {:?} then {after:?}", t.k, t.s, t.pads, t.out_pad);
    let g = import_bytes(&m.bytes()).unwrap_or_else(|e| panic!("{label}: {e:#}"));
    // One convolution (a Relu or BatchNormalization folded into it), no other arithmetic.
    let convs = g.nodes.iter().filter(|n| matches!(n.op, OpKind::Conv(_))).count();
    assert_eq!(convs, 1, "{label}: {:?}", g.nodes.iter().map(|n| n.op.name()).collect::<Vec<_>>());
    assert!(g.nodes.iter().all(|n| !matches!(n.op, OpKind::Activation(_))), "{label}");
    let nhwc = g.input_layout.to_nhwc(&x, (t.h, t.w, t.c));
    let got = hawq_compiler::float_exec::run(&g, &nhwc);
    assert_eq!(got.len(), want.len(), "{label}");
    for yy in 0..ho {
        for xx in 0..wo {
            for o in 0..t.o {
                let (g_, w_) = (got[(yy * wo + xx) * t.o + o], want[(o * ho + yy) * wo + xx]);
                assert!((g_ - w_).abs() <= 1e-4 * (1.0 + w_.abs()), "{label}: [{o}, {yy}, {xx}] {g_} vs {w_}");
            }
        }
    }
}

#[test]
fn conv_transpose_of_any_kernel_pads_and_output_padding_matches_its_definition() {
    let cases = [
        // The U-Net / DCGAN upsampler.
        Case { c: 3, o: 2, h: 4, w: 5, k: [4, 4], s: 2, pads: [1, 1, 1, 1], out_pad: [0, 0] },
        // PyTorch's `ConvTranspose2d(k=3, s=2, padding=1, output_padding=1)`: exactly ×2.
        Case { c: 2, o: 3, h: 3, w: 4, k: [3, 3], s: 2, pads: [1, 1, 1, 1], out_pad: [1, 1] },
        // Kernel equal to stride (the 1×1 + depth-to-space form, no crop).
        Case { c: 2, o: 2, h: 3, w: 3, k: [2, 2], s: 2, pads: [0; 4], out_pad: [0, 0] },
        // Stride 1 (a convolution with the flipped kernel), asymmetric pads.
        Case { c: 2, o: 2, h: 4, w: 3, k: [3, 3], s: 1, pads: [1, 0, 0, 1], out_pad: [0, 0] },
        // A non-square kernel, stride 3, a kernel that is not a multiple of it.
        Case { c: 1, o: 2, h: 3, w: 2, k: [5, 2], s: 3, pads: [2, 0, 1, 0], out_pad: [2, 1] },
        // A DCGAN generator's first layer: a 1×1 latent of more channels than columns (read
        // channel-major because a ConvTranspose reads it, not by its dimensions).
        Case { c: 4, o: 1, h: 1, w: 1, k: [4, 4], s: 1, pads: [0; 4], out_pad: [0, 0] },
        Case { c: 4, o: 2, h: 1, w: 2, k: [3, 3], s: 2, pads: [0; 4], out_pad: [0, 0] },
    ];
    for t in &cases {
        for after in [None, Some("Relu"), Some("BatchNormalization")] {
            check(t, after);
        }
    }
}

/// The lowered ops run on the integer runtime: a DCGAN-style upsampler (kernel 4, stride 2,
/// pad 1, then Relu) compiled at 8 bits stays within a few output steps of the float model.
#[test]
fn a_padded_conv_transpose_runs_on_the_integer_runtime() {
    use hawq_compiler::data::{Dataset, RawData};
    use hawq_compiler::ir::InputTransform;
    use hawq_compiler::pipeline::{compile, prepare};
    use hawq_compiler::quantize::BitConfig;

    let t = Case { c: 3, o: 4, h: 5, w: 6, k: [4, 4], s: 2, pads: [1, 1, 1, 1], out_pad: [0, 0] };
    let (ho, wo) = (10, 12);
    let m = Model::new("x", &[1, 3, 5, 6])
        .init(tensor("w", &[3, 4, 4, 4], values(3 * 4 * 16, 2)))
        .init(tensor("b", &[4], values(4, 3)))
        .node(
            "ConvTranspose",
            "up",
            &["x", "w", "b"],
            &["u"],
            vec![ints("strides", &[2, 2]), ints("pads", &[1, 1, 1, 1])],
        )
        .node("Relu", "relu", &["u"], &["y"], vec![])
        .output("y", &[1, 4, ho, wo]);
    let g = import_bytes(&m.bytes()).unwrap();
    let samples = 64;
    let x: Vec<f32> = (0..samples * t.c * t.h * t.w).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
    let data = Dataset {
        path: "synthetic".into(),
        x: RawData::F32(ndarray::ArrayD::from_shape_vec(vec![samples, t.c, t.h, t.w], x.clone()).unwrap()),
        y: Vec::new(),
    };
    let p = prepare(g.clone(), &data, InputTransform::default()).unwrap();
    let compiled = compile(&p, &BitConfig::uniform(&p.graph, 8, 8)).unwrap();
    let model = hawq_runtime::Model::from_bytes(&compiled.blob).unwrap();
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut it = hawq_runtime::Interpreter::new(&model, &mut arena).unwrap();
    let sample = &x[..t.c * t.h * t.w];
    let nhwc = g.input_layout.to_nhwc(sample, (t.h, t.w, t.c));
    let float = hawq_compiler::float_exec::run(&g, &nhwc);
    it.write_input_f32(&nhwc).unwrap();
    it.invoke().unwrap();
    let mut got = vec![0f32; float.len()];
    assert_eq!(it.read_output_f32(&mut got).unwrap(), float.len());
    let top = float.iter().fold(0f32, |m, v| m.max(v.abs()));
    let step = top / 255.0;
    for (q, f) in got.iter().zip(&float) {
        assert!((q - f).abs() <= 4.0 * step, "{q} vs {f} (step {step})");
    }
}

#[test]
fn conv_transpose_forms_outside_the_lowering_are_refused_naming_the_reason() {
    let base =
        || Model::new("x", &[1, 2, 3, 3]).init(tensor("w", &[2, 2, 3, 3], values(36, 1))).output("y", &[1, 2, 6, 6]);
    for (attrs, needle) in [
        (vec![ints("strides", &[2, 1])], "square stride"),
        (vec![ints("strides", &[2, 2]), ints("dilations", &[2, 2])], "dilation"),
        (vec![ints("strides", &[2, 2]), ints("output_padding", &[2, 0])], "output_padding"),
        (vec![ints("strides", &[2, 2]), ints("pads", &[4, 4, 4, 4])], "pads"),
    ] {
        let m = base().node("ConvTranspose", "up", &["x", "w"], &["y"], attrs);
        let err = format!("{:#}", import_bytes(&m.bytes()).expect_err(needle));
        assert!(err.contains("up") && err.contains(needle), "{needle}: {err}");
    }
}
