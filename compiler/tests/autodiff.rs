//! Checks of `hawq_compiler::autodiff` on small random graphs built directly in the IR, against an
//! independent naive f64 reference forward pass written here (seven-loop convolutions, explicit
//! windows), so that finite differences are taken in f64 where f32 would limit them.
//!
//! Every finite difference asserts that the activation pattern (each clamp's side, each max
//! pool's argmax, each activation's piece) is the same at every evaluation point as at the base
//! point, so no difference straddles a ReLU kink, an activation's kink or a max-pool tie; and each
//! case asserts that its base point is at least `MIN_MARGIN` away from any kink or tie.

use hawq_compiler::autodiff::{
    gradients, hvp, loss_value, quadratic_forms, traces, traces_and_forms, Estimator, LayerDirection, LayerTrace, Loss,
    Method, TraceOptions, Traces, WeightVector,
};
use hawq_compiler::float_exec;
use hawq_compiler::ir::{Activation, Clamp, Conv, Fc, Graph, InputLayout, Node, OpKind, Value, ValueId, Window};
use ndarray::{Array1, Array2, Array4};

// ---------------------------------------------------------------------------------------------
// Random numbers and graph building.

struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }

    fn vec(&mut self, len: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..len).map(|_| self.uniform(lo, hi)).collect()
    }
}

struct Builder {
    values: Vec<Value>,
    nodes: Vec<Node>,
    rng: SplitMix,
}

fn square(k: usize, s: usize, pads: [usize; 4]) -> Window {
    Window { kernel: [k, k], stride: [s, s], pads }
}

impl Builder {
    fn new(input_shape: &[usize], seed: u64) -> Builder {
        Builder {
            values: vec![Value { name: "input".into(), shape: input_shape.to_vec() }],
            nodes: Vec::new(),
            rng: SplitMix(seed),
        }
    }

    fn node(&mut self, op: OpKind, inputs: Vec<ValueId>, shape: Vec<usize>) -> ValueId {
        let id = self.values.len();
        let name = format!("{}{}", op.name(), self.nodes.len());
        self.values.push(Value { name: format!("{name}_out"), shape });
        self.nodes.push(Node { name, op, inputs, output: id });
        id
    }

    fn hwc(&self, x: ValueId) -> (usize, usize, usize) {
        self.values[x].hwc()
    }

    fn conv(&mut self, x: ValueId, out_c: usize, window: Window, depthwise: bool, clamp: Clamp) -> ValueId {
        let (h, w, in_c) = self.hwc(x);
        let weight_in_c = if depthwise { 1 } else { in_c };
        let [kh, kw] = window.kernel;
        let fan_in = (kh * kw * weight_in_c) as f32;
        let bound = 1.7 / fan_in.sqrt();
        let weight = Array4::from_shape_vec(
            (out_c, kh, kw, weight_in_c),
            self.rng.vec(out_c * kh * kw * weight_in_c, -bound, bound),
        )
        .unwrap();
        let bias = Array1::from(self.rng.vec(out_c, -0.3, 0.5));
        let (oh, ow) = window.output_hw(h, w).unwrap();
        self.node(OpKind::Conv(Conv { weight, bias, window, depthwise, clamp }), vec![x], vec![oh, ow, out_c])
    }

    fn fc(&mut self, x: ValueId, outputs: usize, clamp: Clamp) -> ValueId {
        let inputs = self.values[x].elements();
        let bound = 1.7 / (inputs as f32).sqrt();
        let weight = Array2::from_shape_vec((outputs, inputs), self.rng.vec(outputs * inputs, -bound, bound)).unwrap();
        let bias = Array1::from(self.rng.vec(outputs, -0.3, 0.5));
        self.node(OpKind::Fc(Fc { weight, bias, clamp }), vec![x], vec![outputs])
    }

    fn pool(&mut self, x: ValueId, max: bool, window: Window) -> ValueId {
        let (h, w, c) = self.hwc(x);
        let (oh, ow) = window.output_hw(h, w).unwrap();
        let op = if max { OpKind::MaxPool(window) } else { OpKind::AvgPool(window) };
        self.node(op, vec![x], vec![oh, ow, c])
    }

    fn add(&mut self, a: ValueId, b: ValueId, clamp: Clamp) -> ValueId {
        let shape = self.values[a].shape.clone();
        self.node(OpKind::Add(clamp), vec![a, b], shape)
    }

    fn reshape(&mut self, x: ValueId) -> ValueId {
        let len = self.values[x].elements();
        self.node(OpKind::Reshape, vec![x], vec![len])
    }

    fn softmax(&mut self, x: ValueId) -> ValueId {
        let shape = self.values[x].shape.clone();
        self.node(OpKind::Softmax, vec![x], shape)
    }

    fn activation(&mut self, x: ValueId, f: Activation) -> ValueId {
        let shape = self.values[x].shape.clone();
        self.node(OpKind::Activation(f), vec![x], shape)
    }

    /// `a · b`, `b` of `a`'s shape or one per channel.
    fn mul(&mut self, a: ValueId, b: ValueId, clamp: Clamp) -> ValueId {
        let shape = self.values[a].shape.clone();
        self.node(OpKind::Mul(clamp), vec![a, b], shape)
    }

    fn concat(&mut self, parts: &[ValueId]) -> ValueId {
        let (h, w, _) = self.hwc(parts[0]);
        let channels = parts.iter().map(|&p| self.hwc(p).2).sum();
        self.node(OpKind::Concat, parts.to_vec(), vec![h, w, channels])
    }

    fn slice(&mut self, x: ValueId, begin: [usize; 3], step: [usize; 3], shape: [usize; 3]) -> ValueId {
        self.node(OpKind::Slice { begin, step }, vec![x], shape.to_vec())
    }

    fn resize(&mut self, x: ValueId, factor: [usize; 2]) -> ValueId {
        let (h, w, c) = self.hwc(x);
        self.node(OpKind::Resize(factor), vec![x], vec![h * factor[0], w * factor[1], c])
    }

    fn depth_to_space(&mut self, x: ValueId, block: usize) -> ValueId {
        let (h, w, c) = self.hwc(x);
        self.node(OpKind::DepthToSpace(block), vec![x], vec![h * block, w * block, c / (block * block)])
    }

    fn finish(self, output: ValueId) -> Graph {
        Graph {
            values: self.values,
            nodes: self.nodes,
            input: 0,
            output,
            input_layout: InputLayout::Nhwc,
            extra_outputs: Vec::new(),
        }
    }
}

struct Case {
    name: &'static str,
    graph: Graph,
    loss: Loss,
    inputs: Vec<Vec<f32>>,
    labels: Vec<f64>,
    /// The op of the first node that makes the network not piecewise linear under the loss (a
    /// softmax inside it, a smooth activation, a product of two input-dependent values); `None`
    /// for piecewise-linear networks, where Gauss–Newton is the exact Hessian.
    nonlinearity: Option<&'static str>,
}

impl Case {
    fn piecewise_linear(&self) -> bool {
        self.nonlinearity.is_none()
    }
}

/// Random inputs at least `MIN_MARGIN` away from every kink and tie (rejection sampling).
fn inputs_for(graph: &Graph, rng: &mut SplitMix, samples: usize) -> Vec<Vec<f32>> {
    let len = graph.values[graph.input].elements();
    let reference = Ref::new(graph);
    let mut inputs = Vec::new();
    for _ in 0..100_000 {
        let x = rng.vec(len, -1.0, 1.0);
        if reference.forward(&x, None).margin >= MIN_MARGIN {
            inputs.push(x);
            if inputs.len() == samples {
                return inputs;
            }
        }
    }
    panic!("no inputs away from the kinks");
}

/// Conv 3x3 stride 2 with asymmetric pads (ReLU), depthwise 3x3 with multiplier 2 (ReLU6),
/// pointwise 1x1, residual add with ReLU, conv 3x3 stride 1 with asymmetric pads, max pool,
/// padded average pool (taps inside only), reshape, fc (ReLU), fc, softmax; cross-entropy.
fn cnn_softmax() -> Case {
    let mut b = Builder::new(&[9, 8, 2], 11);
    let c1 = b.conv(0, 4, square(3, 2, [0, 1, 1, 0]), false, Clamp::RELU);
    let c2 = b.conv(c1, 8, square(3, 1, [1, 1, 1, 1]), true, Clamp::RELU6);
    let c3 = b.conv(c2, 4, square(1, 1, [0; 4]), false, Clamp::NONE);
    let sum = b.add(c3, c1, Clamp::RELU);
    let c4 = b.conv(sum, 5, square(3, 1, [1, 0, 1, 2]), false, Clamp::NONE);
    let mp = b.pool(c4, true, square(2, 2, [0; 4]));
    let ap = b.pool(mp, false, square(3, 1, [1, 1, 1, 1]));
    let flat = b.reshape(ap);
    let f1 = b.fc(flat, 6, Clamp::RELU);
    let f2 = b.fc(f1, 4, Clamp::NONE);
    let out = b.softmax(f2);
    let mut rng = SplitMix(12);
    let graph = b.finish(out);
    let inputs = inputs_for(&graph, &mut rng, 3);
    Case {
        name: "cnn_softmax",
        graph,
        loss: Loss::CrossEntropy,
        inputs,
        labels: vec![2.0, 0.0, 3.0],
        nonlinearity: None,
    }
}

/// Conv 3x3 with a clip clamp, depthwise 3x3 (multiplier 1, asymmetric pads, ReLU6), pointwise
/// conv, max pool with bottom/right padding, global average pool, reshape, fc to logits (no
/// softmax); cross-entropy.
fn logits() -> Case {
    let mut b = Builder::new(&[6, 6, 1], 21);
    let c1 = b.conv(0, 3, square(3, 1, [1, 1, 1, 1]), false, Clamp { lo: -0.5, hi: 0.8 });
    let dw = b.conv(c1, 3, square(3, 1, [0, 1, 2, 1]), true, Clamp::RELU6);
    let c2 = b.conv(dw, 4, square(1, 1, [0; 4]), false, Clamp::NONE);
    let mp = b.pool(c2, true, square(2, 2, [0, 0, 1, 1]));
    let ap = b.pool(mp, false, square(3, 1, [0; 4]));
    let flat = b.reshape(ap);
    let out = b.fc(flat, 5, Clamp::NONE);
    let mut rng = SplitMix(22);
    let graph = b.finish(out);
    let inputs = inputs_for(&graph, &mut rng, 3);
    Case { name: "logits", graph, loss: Loss::CrossEntropy, inputs, labels: vec![4.0, 1.0, 0.0], nonlinearity: None }
}

/// A 1-output regression MLP with a strided conv front; MSE.
fn regression() -> Case {
    let mut b = Builder::new(&[5, 5, 2], 31);
    let c1 = b.conv(0, 3, square(2, 2, [0, 0, 1, 1]), false, Clamp::RELU);
    let flat = b.reshape(c1);
    let f1 = b.fc(flat, 8, Clamp::RELU);
    let f2 = b.fc(f1, 6, Clamp { lo: -1.0, hi: 1.0 });
    let out = b.fc(f2, 1, Clamp::NONE);
    let mut rng = SplitMix(32);
    let graph = b.finish(out);
    let inputs = inputs_for(&graph, &mut rng, 4);
    Case { name: "regression", graph, loss: Loss::Mse, inputs, labels: vec![0.3, -0.7, 1.2, 0.1], nonlinearity: None }
}

/// An MLP autoencoder 10 → 6 → 4 → 6 → 10; reconstruction loss.
fn autoencoder() -> Case {
    let mut b = Builder::new(&[10], 41);
    let f1 = b.fc(0, 6, Clamp::RELU);
    let f2 = b.fc(f1, 4, Clamp::RELU);
    let f3 = b.fc(f2, 6, Clamp::RELU);
    let out = b.fc(f3, 10, Clamp::NONE);
    let mut rng = SplitMix(42);
    let graph = b.finish(out);
    let inputs = inputs_for(&graph, &mut rng, 4);
    Case { name: "autoencoder", graph, loss: Loss::Reconstruction, inputs, labels: Vec::new(), nonlinearity: None }
}

/// Conv, reshape, fc, softmax, with MSE on the probabilities: the softmax stays inside the loss,
/// so the network is not piecewise linear (Gauss–Newton is not the Hessian).
fn softmax_mse() -> Case {
    let mut b = Builder::new(&[4, 4, 2], 51);
    let c1 = b.conv(0, 3, square(3, 1, [1, 1, 1, 1]), false, Clamp::RELU);
    let flat = b.reshape(c1);
    let f1 = b.fc(flat, 3, Clamp::NONE);
    let out = b.softmax(f1);
    let mut rng = SplitMix(52);
    let graph = b.finish(out);
    let inputs = inputs_for(&graph, &mut rng, 3);
    Case {
        name: "softmax_mse",
        graph,
        loss: Loss::Mse,
        inputs,
        labels: vec![0.2, 0.5, 0.9],
        nonlinearity: Some("softmax"),
    }
}

/// Conv, SiLU, strided conv, GELU, depthwise conv, ELU, reshape, fc, tanh, fc, sigmoid, fc to
/// logits; cross-entropy. Smooth activations: not piecewise linear.
fn smooth_activations() -> Case {
    let mut b = Builder::new(&[5, 5, 2], 61);
    let c1 = b.conv(0, 3, square(3, 1, [1, 1, 1, 1]), false, Clamp::NONE);
    let a1 = b.activation(c1, Activation::Silu);
    let c2 = b.conv(a1, 4, square(3, 2, [1, 1, 1, 1]), false, Clamp::NONE);
    let a2 = b.activation(c2, Activation::Gelu);
    let c3 = b.conv(a2, 4, square(3, 1, [1, 0, 1, 2]), true, Clamp::NONE);
    let a3 = b.activation(c3, Activation::Elu(0.7));
    let flat = b.reshape(a3);
    let f1 = b.fc(flat, 5, Clamp::NONE);
    let t = b.activation(f1, Activation::Tanh);
    let f2 = b.fc(t, 4, Clamp::NONE);
    let s = b.activation(f2, Activation::Sigmoid);
    let out = b.fc(s, 4, Clamp::NONE);
    let mut rng = SplitMix(62);
    let graph = b.finish(out);
    let inputs = inputs_for(&graph, &mut rng, 3);
    Case {
        name: "smooth_activations",
        graph,
        loss: Loss::CrossEntropy,
        inputs,
        labels: vec![1.0, 3.0, 0.0],
        nonlinearity: Some("silu"),
    }
}

/// Conv, leaky ReLU, strided conv, PReLU with a slope per channel, global average pool, reshape,
/// fc, PReLU with one slope, fc, hard sigmoid, fc to logits; cross-entropy. Piecewise linear.
fn piecewise_linear_activations() -> Case {
    let mut b = Builder::new(&[5, 5, 2], 71);
    let c1 = b.conv(0, 3, square(3, 1, [1, 1, 1, 1]), false, Clamp::NONE);
    let a1 = b.activation(c1, Activation::LeakyRelu(0.1));
    let c2 = b.conv(a1, 4, square(3, 2, [0, 1, 1, 0]), false, Clamp::NONE);
    let a2 = b.activation(c2, Activation::PRelu(vec![0.2, -0.3, 0.5, 1.5]));
    let pool = b.pool(a2, false, square(2, 1, [0; 4]));
    let flat = b.reshape(pool);
    let f1 = b.fc(flat, 6, Clamp::NONE);
    let a3 = b.activation(f1, Activation::PRelu(vec![0.25]));
    let f2 = b.fc(a3, 5, Clamp::NONE);
    let a4 = b.activation(f2, Activation::HardSigmoid { alpha: 0.4, beta: 0.5 });
    let out = b.fc(a4, 4, Clamp::NONE);
    let mut rng = SplitMix(72);
    let graph = b.finish(out);
    let inputs = inputs_for(&graph, &mut rng, 3);
    Case {
        name: "piecewise_linear_activations",
        graph,
        loss: Loss::CrossEntropy,
        inputs,
        labels: vec![0.0, 2.0, 3.0],
        nonlinearity: None,
    }
}

/// Conv, hard swish, squeeze-and-excitation (global average pool, reshape, fc with ReLU, fc,
/// sigmoid, product broadcast over positions), strided conv, reshape, fc to logits;
/// cross-entropy.
fn squeeze_excitation() -> Case {
    let mut b = Builder::new(&[4, 4, 2], 81);
    let c1 = b.conv(0, 4, square(3, 1, [1, 1, 1, 1]), false, Clamp::NONE);
    let h = b.activation(c1, Activation::HardSwish);
    let pool = b.pool(h, false, square(4, 1, [0; 4]));
    let flat = b.reshape(pool);
    let f1 = b.fc(flat, 2, Clamp::RELU);
    let f2 = b.fc(f1, 4, Clamp::NONE);
    let gate = b.activation(f2, Activation::Sigmoid);
    let scaled = b.mul(h, gate, Clamp::NONE);
    let c2 = b.conv(scaled, 3, square(3, 2, [1, 1, 1, 1]), false, Clamp::NONE);
    let flat2 = b.reshape(c2);
    let out = b.fc(flat2, 3, Clamp::NONE);
    let mut rng = SplitMix(82);
    let graph = b.finish(out);
    let inputs = inputs_for(&graph, &mut rng, 3);
    Case {
        name: "squeeze_excitation",
        graph,
        loss: Loss::CrossEntropy,
        inputs,
        labels: vec![2.0, 0.0, 1.0],
        nonlinearity: Some("hard_swish"),
    }
}

/// Squeeze-and-excitation with piecewise-linear activations only (hard sigmoid gate, product
/// with a ReLU clamp): the product of two values that both depend on the input alone makes the
/// network not piecewise linear. MSE on 2 outputs.
fn hard_squeeze_excitation() -> Case {
    let mut b = Builder::new(&[4, 4, 2], 91);
    let c1 = b.conv(0, 3, square(3, 1, [1, 1, 1, 1]), false, Clamp::NONE);
    let pool = b.pool(c1, false, square(4, 1, [0; 4]));
    let flat = b.reshape(pool);
    let f1 = b.fc(flat, 2, Clamp::RELU);
    let f2 = b.fc(f1, 3, Clamp::NONE);
    let gate = b.activation(f2, Activation::HardSigmoid { alpha: 1.0 / 6.0, beta: 0.5 });
    let scaled = b.mul(c1, gate, Clamp::RELU);
    let c2 = b.conv(scaled, 2, square(2, 2, [0; 4]), false, Clamp::NONE);
    let flat2 = b.reshape(c2);
    let out = b.fc(flat2, 2, Clamp::NONE);
    let mut rng = SplitMix(92);
    let graph = b.finish(out);
    let inputs = inputs_for(&graph, &mut rng, 3);
    Case {
        name: "hard_squeeze_excitation",
        graph,
        loss: Loss::Mse,
        inputs,
        labels: vec![0.4, -0.6, 1.1],
        nonlinearity: Some("mul"),
    }
}

/// A gated unit: conv times the hard sigmoid of another conv of the input (same shapes), the
/// product squared (a product of a value with itself), reshape, fc; MSE on one output. Only the
/// products make it not piecewise linear.
fn gated() -> Case {
    let mut b = Builder::new(&[3, 3, 2], 101);
    let c1 = b.conv(0, 3, square(3, 1, [1, 1, 1, 1]), false, Clamp::NONE);
    let c2 = b.conv(0, 3, square(3, 1, [1, 1, 1, 1]), false, Clamp::NONE);
    let gate = b.activation(c2, Activation::HardSigmoid { alpha: 0.3, beta: 0.5 });
    let gated = b.mul(c1, gate, Clamp::NONE);
    let squared = b.mul(gated, gated, Clamp::NONE);
    let flat = b.reshape(squared);
    let out = b.fc(flat, 1, Clamp::NONE);
    let mut rng = SplitMix(102);
    let graph = b.finish(out);
    let inputs = inputs_for(&graph, &mut rng, 3);
    Case { name: "gated", graph, loss: Loss::Mse, inputs, labels: vec![0.3, -0.2, 0.8], nonlinearity: Some("mul") }
}

/// Conv (ReLU), pointwise conv of it, and the concatenation of the second conv, the first (read
/// twice) and the input itself; strided conv, reshape, fc to logits; cross-entropy.
fn concat() -> Case {
    let mut b = Builder::new(&[4, 4, 2], 111);
    let c1 = b.conv(0, 3, square(3, 1, [1, 1, 1, 1]), false, Clamp::RELU);
    let c2 = b.conv(c1, 2, square(1, 1, [0; 4]), false, Clamp::NONE);
    let joined = b.concat(&[c2, c1, 0]);
    let c3 = b.conv(joined, 3, square(3, 2, [0, 0, 1, 1]), false, Clamp::NONE);
    let flat = b.reshape(c3);
    let out = b.fc(flat, 4, Clamp::NONE);
    let mut rng = SplitMix(112);
    let graph = b.finish(out);
    let inputs = inputs_for(&graph, &mut rng, 3);
    Case { name: "concat", graph, loss: Loss::CrossEntropy, inputs, labels: vec![3.0, 1.0, 0.0], nonlinearity: None }
}

/// Conv (ReLU), a strided slice of rows, columns and channels, reshape, fc to logits.
fn slice() -> Case {
    let mut b = Builder::new(&[6, 6, 2], 121);
    let c1 = b.conv(0, 5, square(3, 1, [1, 1, 1, 1]), false, Clamp::RELU);
    let part = b.slice(c1, [1, 0, 1], [2, 2, 2], [3, 3, 2]);
    let flat = b.reshape(part);
    let out = b.fc(flat, 3, Clamp::NONE);
    let mut rng = SplitMix(122);
    let graph = b.finish(out);
    let inputs = inputs_for(&graph, &mut rng, 3);
    Case { name: "slice", graph, loss: Loss::CrossEntropy, inputs, labels: vec![2.0, 0.0, 1.0], nonlinearity: None }
}

/// Conv (ReLU), nearest resize by 2x3, conv with stride 3, reshape, fc to logits.
fn resize() -> Case {
    let mut b = Builder::new(&[3, 3, 2], 131);
    let c1 = b.conv(0, 3, square(3, 1, [1, 1, 1, 1]), false, Clamp::RELU);
    let up = b.resize(c1, [2, 3]);
    let c2 = b.conv(up, 2, square(3, 3, [0; 4]), false, Clamp::NONE);
    let flat = b.reshape(c2);
    let out = b.fc(flat, 4, Clamp::NONE);
    let mut rng = SplitMix(132);
    let graph = b.finish(out);
    let inputs = inputs_for(&graph, &mut rng, 3);
    Case { name: "resize", graph, loss: Loss::CrossEntropy, inputs, labels: vec![1.0, 3.0, 2.0], nonlinearity: None }
}

/// Conv to 4·2 channels, depth-to-space by 2, strided conv (ReLU), reshape, fc to one output;
/// MSE.
fn depth_to_space() -> Case {
    let mut b = Builder::new(&[3, 3, 2], 141);
    let c1 = b.conv(0, 8, square(3, 1, [1, 1, 1, 1]), false, Clamp::NONE);
    let spread = b.depth_to_space(c1, 2);
    let c2 = b.conv(spread, 3, square(3, 2, [1, 1, 0, 0]), false, Clamp::RELU);
    let flat = b.reshape(c2);
    let out = b.fc(flat, 1, Clamp::NONE);
    let mut rng = SplitMix(142);
    let graph = b.finish(out);
    let inputs = inputs_for(&graph, &mut rng, 3);
    Case { name: "depth_to_space", graph, loss: Loss::Mse, inputs, labels: vec![0.5, -0.1, 0.2], nonlinearity: None }
}

fn all_cases() -> Vec<Case> {
    vec![
        cnn_softmax(),
        logits(),
        regression(),
        autoencoder(),
        softmax_mse(),
        smooth_activations(),
        piecewise_linear_activations(),
        squeeze_excitation(),
        hard_squeeze_excitation(),
        gated(),
        concat(),
        slice(),
        resize(),
        depth_to_space(),
    ]
}

// ---------------------------------------------------------------------------------------------
// The f64 reference.

/// Parameters in f64, so perturbations are not rounded to f32.
#[derive(Clone)]
struct Ref<'g> {
    graph: &'g Graph,
    w: Vec<Vec<f64>>,
    b: Vec<Vec<f64>>,
}

struct Forward {
    values: Vec<Vec<f64>>,
    /// Each clamp's side per element (−1 at or below lo, 0 inside, 1 at or above hi) and each max
    /// pool's argmax.
    pattern: Vec<i64>,
    /// Smallest distance of a pre-activation to a finite clamp bound, or of a max-pool window's
    /// maximum to its runner-up.
    margin: f64,
}

/// A perturbation of one element of one value (added after its producer's clamp).
type Bump = Option<(ValueId, usize, f64)>;

impl<'g> Ref<'g> {
    fn new(graph: &'g Graph) -> Ref<'g> {
        let params = WeightVector::of(graph);
        let to64 = |v: &Vec<Vec<f32>>| v.iter().map(|x| x.iter().map(|&a| f64::from(a)).collect()).collect();
        Ref { graph, w: to64(&params.weights), b: to64(&params.biases) }
    }

    fn moved(&self, dir: &WeightVector, h: f64) -> Ref<'g> {
        let mut r = self.clone();
        let apply = |p: &mut Vec<Vec<f64>>, d: &Vec<Vec<f32>>| {
            for (block, db) in p.iter_mut().zip(d) {
                if !db.is_empty() {
                    block.iter_mut().zip(db).for_each(|(x, &dx)| *x += h * f64::from(dx));
                }
            }
        };
        apply(&mut r.w, &dir.weights);
        apply(&mut r.b, &dir.biases);
        r
    }

    fn head(&self, loss: Loss) -> ValueId {
        if loss == Loss::CrossEntropy && self.graph.ends_in_softmax() {
            self.graph.nodes.last().unwrap().inputs[0]
        } else {
            self.graph.output
        }
    }

    fn forward(&self, input: &[f32], bump: Bump) -> Forward {
        let g = self.graph;
        let mut values: Vec<Vec<f64>> = vec![Vec::new(); g.values.len()];
        values[g.input] = input.iter().map(|&x| f64::from(x)).collect();
        let mut pattern = Vec::new();
        let mut margin = f64::INFINITY;
        let bump_value = |v: ValueId, values: &mut Vec<Vec<f64>>| {
            if let Some((bv, e, h)) = bump {
                if bv == v {
                    values[v][e] += h;
                }
            }
        };
        bump_value(g.input, &mut values);
        let clamp_all = |pre: Vec<f64>, c: Clamp, pattern: &mut Vec<i64>, margin: &mut f64| -> Vec<f64> {
            let (lo, hi) = (f64::from(c.lo), f64::from(c.hi));
            pre.into_iter()
                .map(|p| {
                    if lo.is_finite() {
                        *margin = margin.min((p - lo).abs());
                    }
                    if hi.is_finite() {
                        *margin = margin.min((p - hi).abs());
                    }
                    if !c.is_none() {
                        pattern.push(if p <= lo {
                            -1
                        } else if p >= hi {
                            1
                        } else {
                            0
                        });
                    }
                    p.max(lo).min(hi)
                })
                .collect()
        };
        for (n, node) in g.nodes.iter().enumerate() {
            let x = &values[node.inputs[0]];
            let (ih, iw, ic) = g.values[node.inputs[0]].hwc();
            let (oh, ow, oc) = g.values[node.output].hwc();
            let inside = |y: isize, xx: isize| y >= 0 && xx >= 0 && (y as usize) < ih && (xx as usize) < iw;
            let out = match &node.op {
                OpKind::Conv(c) => {
                    let win = c.window;
                    let (kh, kw) = (win.kernel[0], win.kernel[1]);
                    let wic = if c.depthwise { 1 } else { ic };
                    let w = &self.w[n];
                    let mut pre = vec![0.0; oh * ow * oc];
                    for oy in 0..oh {
                        for ox in 0..ow {
                            for o in 0..oc {
                                let mut acc = self.b[n][o];
                                for ky in 0..kh {
                                    for kx in 0..kw {
                                        let y = (oy * win.stride[0] + ky) as isize - win.pads[0] as isize;
                                        let xx = (ox * win.stride[1] + kx) as isize - win.pads[1] as isize;
                                        if !inside(y, xx) {
                                            continue;
                                        }
                                        for i in 0..wic {
                                            let channel = if c.depthwise { o / (oc / ic) } else { i };
                                            acc += x[(y as usize * iw + xx as usize) * ic + channel]
                                                * w[((o * kh + ky) * kw + kx) * wic + i];
                                        }
                                    }
                                }
                                pre[(oy * ow + ox) * oc + o] = acc;
                            }
                        }
                    }
                    clamp_all(pre, c.clamp, &mut pattern, &mut margin)
                }
                OpKind::Fc(f) => {
                    let (outs, ins) = f.weight.dim();
                    let pre =
                        (0..outs).map(|o| self.b[n][o] + (0..ins).map(|i| self.w[n][o * ins + i] * x[i]).sum::<f64>());
                    clamp_all(pre.collect(), f.clamp, &mut pattern, &mut margin)
                }
                OpKind::AvgPool(win) | OpKind::MaxPool(win) => {
                    let max = matches!(node.op, OpKind::MaxPool(_));
                    let mut out = vec![0.0; oh * ow * oc];
                    for oy in 0..oh {
                        for ox in 0..ow {
                            for ch in 0..oc {
                                let mut taps = Vec::new();
                                for ky in 0..win.kernel[0] {
                                    for kx in 0..win.kernel[1] {
                                        let y = (oy * win.stride[0] + ky) as isize - win.pads[0] as isize;
                                        let xx = (ox * win.stride[1] + kx) as isize - win.pads[1] as isize;
                                        if inside(y, xx) {
                                            let index = (y as usize * iw + xx as usize) * ic + ch;
                                            taps.push((x[index], index));
                                        }
                                    }
                                }
                                out[(oy * ow + ox) * oc + ch] = if max {
                                    let mut best = 0;
                                    for (t, &(v, _)) in taps.iter().enumerate() {
                                        if v > taps[best].0 {
                                            best = t;
                                        }
                                    }
                                    for (t, &(v, _)) in taps.iter().enumerate() {
                                        if t != best {
                                            margin = margin.min(taps[best].0 - v);
                                        }
                                    }
                                    pattern.push(taps[best].1 as i64);
                                    taps[best].0
                                } else {
                                    taps.iter().map(|t| t.0).sum::<f64>() / taps.len() as f64
                                };
                            }
                        }
                    }
                    out
                }
                OpKind::Add(c) => {
                    let y = &values[node.inputs[1]];
                    let pre = x.iter().zip(y).map(|(a, b)| a + b).collect();
                    clamp_all(pre, *c, &mut pattern, &mut margin)
                }
                OpKind::Reshape => x.clone(),
                OpKind::Softmax => {
                    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = x.iter().map(|v| (v - max).exp()).collect();
                    let s: f64 = e.iter().sum();
                    e.iter().map(|v| v / s).collect()
                }
                OpKind::LogSoftmax => {
                    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let lse = x.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                    x.iter().map(|v| v - max - lse).collect()
                }
                OpKind::Activation(f) => {
                    let kinks = activation_kinks(f);
                    x.iter()
                        .enumerate()
                        .map(|(i, &v)| {
                            for &k in &kinks {
                                margin = margin.min((v - k).abs());
                            }
                            pattern.push(kinks.iter().filter(|&&k| v >= k).count() as i64);
                            activation(f, v, i % oc.max(1))
                        })
                        .collect()
                }
                OpKind::Mul(c) => {
                    let y = &values[node.inputs[1]];
                    let pre = x.iter().enumerate().map(|(i, a)| a * y[i % y.len()]).collect();
                    clamp_all(pre, *c, &mut pattern, &mut margin)
                }
                OpKind::Concat => {
                    let mut out = Vec::new();
                    for pixel in 0..oh * ow {
                        for &i in &node.inputs {
                            let c = g.values[i].hwc().2;
                            out.extend_from_slice(&values[i][pixel * c..(pixel + 1) * c]);
                        }
                    }
                    out
                }
                OpKind::Slice { begin, step } => {
                    let mut out = Vec::new();
                    for y in 0..oh {
                        for xx in 0..ow {
                            for c in 0..oc {
                                let (sy, sx, sc) =
                                    (begin[0] + y * step[0], begin[1] + xx * step[1], begin[2] + c * step[2]);
                                out.push(x[(sy * iw + sx) * ic + sc]);
                            }
                        }
                    }
                    out
                }
                OpKind::Resize([fh, fw]) => {
                    let mut out = Vec::new();
                    for y in 0..oh {
                        for xx in 0..ow {
                            for c in 0..oc {
                                out.push(x[((y / fh) * iw + xx / fw) * ic + c]);
                            }
                        }
                    }
                    out
                }
                OpKind::DepthToSpace(block) => {
                    // out[y·b + i, x·b + j, c] = in[y, x, (i·b + j)·C + c].
                    let mut out = vec![0.0; oh * ow * oc];
                    for y in 0..ih {
                        for xx in 0..iw {
                            for i in 0..*block {
                                for j in 0..*block {
                                    for c in 0..oc {
                                        let (oy, ox) = (y * block + i, xx * block + j);
                                        out[(oy * ow + ox) * oc + c] = x[(y * iw + xx) * ic + (i * block + j) * oc + c];
                                    }
                                }
                            }
                        }
                    }
                    out
                }
            };
            values[node.output] = out;
            bump_value(node.output, &mut values);
        }
        Forward { values, pattern, margin }
    }

    /// Per-sample loss and the activation pattern.
    fn sample_loss(&self, loss: Loss, input: &[f32], label: f64, bump: Bump) -> (f64, Forward) {
        let f = self.forward(input, bump);
        let z = &f.values[self.head(loss)];
        let value = match loss {
            Loss::CrossEntropy => {
                let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                lse - z[label as usize]
            }
            Loss::Mse => z.iter().map(|v| (v - label).powi(2)).sum::<f64>() / z.len() as f64,
            Loss::Reconstruction => {
                z.iter().zip(input).map(|(v, &x)| (v - f64::from(x)).powi(2)).sum::<f64>() / z.len() as f64
            }
        };
        (value, f)
    }

    /// Batch loss; asserts that every sample's activation pattern is `patterns[s]`.
    fn loss(&self, case: &Case, patterns: &[Vec<i64>]) -> f64 {
        let mut total = 0.0;
        for (s, x) in case.inputs.iter().enumerate() {
            let (l, f) = self.sample_loss(case.loss, x, label(case, s), None);
            assert_eq!(f.pattern, patterns[s], "{}: a finite-difference step changed sample {s}'s pattern", case.name);
            total += l;
        }
        total / case.inputs.len() as f64
    }

    fn patterns(&self, case: &Case) -> Vec<Vec<i64>> {
        case.inputs.iter().map(|x| self.forward(x, None).pattern).collect()
    }
}

/// An activation in f64, from its definition (GELU through the IR's erf, which the executor uses).
fn activation(f: &Activation, x: f64, channel: usize) -> f64 {
    let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
    let negative_slope = |slope: f32| if x >= 0.0 { x } else { f64::from(slope) * x };
    match f {
        Activation::Sigmoid => sigmoid(x),
        Activation::Tanh => x.tanh(),
        Activation::Erf => hawq_compiler::ir::erf(x),
        Activation::Clamp(c) => x.clamp(f64::from(c.lo), f64::from(c.hi)),
        Activation::HardSigmoid { alpha, beta } => (f64::from(*alpha) * x + f64::from(*beta)).clamp(0.0, 1.0),
        Activation::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        Activation::Silu => x * sigmoid(x),
        Activation::Gelu => 0.5 * x * (1.0 + hawq_compiler::ir::erf(x / std::f64::consts::SQRT_2)),
        Activation::LeakyRelu(alpha) => negative_slope(*alpha),
        Activation::Elu(alpha) => {
            if x >= 0.0 {
                x
            } else {
                f64::from(*alpha) * x.exp_m1()
            }
        }
        Activation::Selu { alpha, gamma } => {
            f64::from(*gamma) * if x >= 0.0 { x } else { f64::from(*alpha) * x.exp_m1() }
        }
        Activation::PRelu(slopes) => negative_slope(if slopes.len() == 1 { slopes[0] } else { slopes[channel] }),
    }
}

/// Where an activation, its derivative or its second derivative jumps.
fn activation_kinks(f: &Activation) -> Vec<f64> {
    match f {
        Activation::HardSigmoid { alpha, beta } => {
            let (alpha, beta) = (f64::from(*alpha), f64::from(*beta));
            vec![-beta / alpha, (1.0 - beta) / alpha]
        }
        Activation::HardSwish => vec![-3.0, 3.0],
        Activation::LeakyRelu(_) | Activation::Elu(_) | Activation::Selu { .. } | Activation::PRelu(_) => vec![0.0],
        Activation::Clamp(c) => vec![f64::from(c.lo), f64::from(c.hi)],
        _ => Vec::new(),
    }
}

fn label(case: &Case, s: usize) -> f64 {
    case.labels.get(s).copied().unwrap_or(0.0)
}

/// Values the loss depends on.
fn live_values(graph: &Graph, loss: Loss) -> Vec<bool> {
    let head = Ref::new(graph).head(loss);
    let mut live = vec![false; graph.values.len()];
    live[head] = true;
    for n in graph.nodes.iter().rev() {
        if live[n.output] {
            n.inputs.iter().for_each(|&i| live[i] = true);
        }
    }
    live
}

fn random_direction(graph: &Graph, seed: u64, with_biases: bool) -> WeightVector {
    let mut rng = SplitMix(seed);
    let mut v = WeightVector::zeros(graph);
    v.weights.iter_mut().for_each(|b| b.iter_mut().for_each(|x| *x = rng.uniform(-1.0, 1.0)));
    if with_biases {
        v.biases.iter_mut().for_each(|b| b.iter_mut().for_each(|x| *x = rng.uniform(-1.0, 1.0)));
    }
    v
}

fn basis(graph: &Graph, node: usize, index: usize) -> WeightVector {
    let mut v = WeightVector::zeros(graph);
    v.weights[node][index] = 1.0;
    v
}

fn max_abs(v: impl IntoIterator<Item = f64>) -> f64 {
    v.into_iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// The smallest distance from a kink or tie of every case's base point. The f32 executor differs
/// from the f64 reference by ~1e-6, and the finite-difference steps below (1e-4 on all parameters
/// along directions with entries in [-1, 1], 1e-3 on one activation) move pre-activations by
/// ~1e-3 at most; the pattern assertions check it.
const MIN_MARGIN: f64 = 1e-2;

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn reference_matches_float_executor_and_cases_avoid_kinks() {
    for case in all_cases() {
        let reference = Ref::new(&case.graph);
        for (s, x) in case.inputs.iter().enumerate() {
            let expected = reference.forward(x, None);
            assert!(expected.margin >= MIN_MARGIN, "{}: sample {s} is {} from a kink", case.name, expected.margin);
            for (v, actual) in float_exec::run_all(&case.graph, x).iter().enumerate() {
                for (a, e) in actual.iter().zip(&expected.values[v]) {
                    assert!(
                        (f64::from(*a) - e).abs() <= 1e-5 * (1.0 + e.abs()),
                        "{}: value {v}: {a} vs {e}",
                        case.name
                    );
                }
            }
        }
        let loss = loss_value(&case.graph, case.loss, &case.inputs, &case.labels).unwrap();
        let reference_loss = reference.loss(&case, &reference.patterns(&case));
        assert!((loss - reference_loss).abs() <= 1e-5 * reference_loss.abs(), "{}: loss", case.name);
    }
}

/// (a) Weight, bias and activation gradients against f64 central differences (step 1e-4, so
/// truncation is ~1e-8 relative and rounding ~1e-12). The autodiff side runs in f32 (sums of up to
/// ~100 products, rounding ~1e-6 of the largest term each), so the tolerance is
/// `2e-4 · (|g| + ‖g‖∞ / 10)`: relative for the large entries, absolute for entries that are
/// small by cancellation.
#[test]
fn gradients_match_central_differences() {
    let h = 1e-4;
    for case in all_cases() {
        let g = gradients(&case.graph, case.loss, &case.inputs, &case.labels).unwrap();
        let reference = Ref::new(&case.graph);
        let patterns = reference.patterns(&case);
        let base = reference.loss(&case, &patterns);
        assert!((g.loss - base).abs() <= 1e-5 * base.abs(), "{}: loss {} vs {base}", case.name, g.loss);

        let mut checked = 0;
        for (n, node) in case.graph.nodes.iter().enumerate() {
            if !node.op.has_weights() {
                continue;
            }
            for (bias, block) in [(false, &g.params.weights[n]), (true, &g.params.biases[n])] {
                let scale = max_abs(block.iter().map(|&x| f64::from(x)));
                for (i, &analytic) in block.iter().enumerate() {
                    let mut dir = WeightVector::zeros(&case.graph);
                    if bias {
                        dir.biases[n][i] = 1.0;
                    } else {
                        dir.weights[n][i] = 1.0;
                    }
                    let plus = reference.moved(&dir, h).loss(&case, &patterns);
                    let minus = reference.moved(&dir, -h).loss(&case, &patterns);
                    let fd = (plus - minus) / (2.0 * h);
                    let analytic = f64::from(analytic);
                    assert!(
                        (analytic - fd).abs() <= 2e-4 * (fd.abs() + scale / 10.0),
                        "{}: node {n} {} {i}: {analytic} vs {fd}",
                        case.name,
                        if bias { "bias" } else { "weight" }
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 0);

        let live = live_values(&case.graph, case.loss);
        let n_samples = case.inputs.len() as f64;
        for (s, x) in case.inputs.iter().enumerate() {
            for (v, adjoint) in g.activations[s].iter().enumerate() {
                assert_eq!(
                    adjoint.is_empty(),
                    !live[v],
                    "{}: value {v} has a gradient iff the loss reads it",
                    case.name
                );
                let scale = max_abs(adjoint.iter().map(|&a| f64::from(a)));
                for (e, &analytic) in adjoint.iter().enumerate() {
                    let (plus, fp) = reference.sample_loss(case.loss, x, label(&case, s), Some((v, e, h)));
                    let (minus, fm) = reference.sample_loss(case.loss, x, label(&case, s), Some((v, e, -h)));
                    assert_eq!(fp.pattern, patterns[s], "{}: bump of value {v} changed the pattern", case.name);
                    assert_eq!(fm.pattern, patterns[s], "{}: bump of value {v} changed the pattern", case.name);
                    // The batch loss is the mean, so its derivative is the per-sample one over N.
                    let fd = (plus - minus) / (2.0 * h) / n_samples;
                    let analytic = f64::from(analytic);
                    assert!(
                        (analytic - fd).abs() <= 2e-4 * (fd.abs() + scale / 10.0),
                        "{}: sample {s} value {v} element {e}: {analytic} vs {fd}",
                        case.name
                    );
                }
            }
        }
    }
}

/// (b) `H v` against central differences of the (f32) gradients along `v`, for `v` on the last
/// weight layer (weights and biases), after which there is no kink, so a large step is safe:
/// h = 1e-2 keeps the f32 rounding of the perturbed weights (~6e-8 · |w| / h ≈ 6e-6) and of the
/// gradients (~1e-6 · ‖g‖ / h ≈ 1e-4 · ‖g‖) small, while the truncation error (h² times a third
/// derivative of the softmax or quadratic loss) is ~1e-4; tolerance `2e-3 · ‖Hv‖∞` per entry of
/// every block (the cross-layer blocks `H_jL v` included). Full directions, through every layer,
/// are checked in f64 below.
#[test]
fn hvp_matches_central_differences_of_gradients() {
    let h = 1e-2f32;
    for case in all_cases() {
        let reference = Ref::new(&case.graph);
        let patterns = reference.patterns(&case);
        let last = case.graph.nodes.iter().rposition(|n| n.op.has_weights()).unwrap();
        let mut v = random_direction(&case.graph, 7, true);
        for n in 0..last {
            v.weights[n].iter_mut().chain(v.biases[n].iter_mut()).for_each(|x| *x = 0.0);
        }
        let hv = hvp(&case.graph, case.loss, &case.inputs, &case.labels, &v).unwrap();
        let plus_graph = v.apply(&case.graph, h);
        let minus_graph = v.apply(&case.graph, -h);
        for g in [&plus_graph, &minus_graph] {
            assert_eq!(Ref::new(g).patterns(&case), patterns, "{}: the step changed the pattern", case.name);
        }
        let plus = gradients(&plus_graph, case.loss, &case.inputs, &case.labels).unwrap().params;
        let minus = gradients(&minus_graph, case.loss, &case.inputs, &case.labels).unwrap().params;
        let blocks = |w: &WeightVector| -> Vec<Vec<f32>> { w.weights.iter().chain(&w.biases).cloned().collect() };
        let (hv_b, plus_b, minus_b) = (blocks(&hv), blocks(&plus), blocks(&minus));
        let scale = max_abs(hv_b.iter().flatten().map(|&x| f64::from(x)));
        assert!(scale > 1e-3, "{}: Hv is too small to test", case.name);
        for ((a, p), m) in hv_b.iter().zip(&plus_b).zip(&minus_b) {
            for ((&a, &p), &m) in a.iter().zip(p).zip(m) {
                let fd = (f64::from(p) - f64::from(m)) / (2.0 * f64::from(h));
                assert!((f64::from(a) - fd).abs() <= 2e-3 * scale, "{}: Hv {a} vs differences {fd}", case.name);
            }
        }
    }
}

/// `[L(+a+b) − L(+a−b) − L(−a+b) + L(−a−b)] / 4h²`, the mixed second difference `≈ aᵀ H b` of the
/// f64 reference loss (asserting the pattern at each point).
fn mixed_difference(case: &Case, reference: &Ref, patterns: &[Vec<i64>], a: &WeightVector, b: &WeightVector) -> f64 {
    let h = 1e-4;
    let at = |x: f64, y: f64| reference.moved(a, x).moved(b, y).loss(case, patterns);
    (at(h, h) - at(h, -h) - at(-h, h) + at(-h, -h)) / (4.0 * h * h)
}

/// (b) `H v` for a random direction over all weights and biases, entry by entry, against f64
/// mixed second differences `e_iᵀ H v` of the reference loss (h = 1e-4: rounding
/// ~2e-16 · L / h² = 2e-8 · L, truncation ~h² relative), and `uᵀ H v` for another random `u`.
/// The f32 product is good to ~1e-5 of its largest entry: tolerance `1e-4 · (‖Hv‖∞ + |e_iᵀHv|)`.
#[test]
fn hvp_matches_mixed_second_differences_of_reference_loss() {
    for case in all_cases() {
        let reference = Ref::new(&case.graph);
        let patterns = reference.patterns(&case);
        let u = random_direction(&case.graph, 101, true);
        let v = random_direction(&case.graph, 202, true);
        let hv = hvp(&case.graph, case.loss, &case.inputs, &case.labels, &v).unwrap();
        let analytic = u.dot(&hv);
        let fd = mixed_difference(&case, &reference, &patterns, &u, &v);
        assert!((analytic - fd).abs() <= 1e-4 * fd.abs().max(1e-2), "{}: uᵀHv {analytic} vs {fd}", case.name);

        let scale = max_abs(hv.weights.iter().chain(&hv.biases).flatten().map(|&x| f64::from(x)));
        for (n, node) in case.graph.nodes.iter().enumerate() {
            if !node.op.has_weights() {
                continue;
            }
            for bias in [false, true] {
                let block = if bias { &hv.biases[n] } else { &hv.weights[n] };
                for (i, &analytic) in block.iter().enumerate() {
                    let mut e = WeightVector::zeros(&case.graph);
                    if bias {
                        e.biases[n][i] = 1.0;
                    } else {
                        e.weights[n][i] = 1.0;
                    }
                    let fd = mixed_difference(&case, &reference, &patterns, &e, &v);
                    let analytic = f64::from(analytic);
                    assert!(
                        (analytic - fd).abs() <= 1e-4 * (scale + fd.abs()),
                        "{}: node {n} {} {i}: Hv {analytic} vs {fd}",
                        case.name,
                        if bias { "bias" } else { "weight" }
                    );
                }
            }
        }
    }
}

/// (d) The Hessian is symmetric: `uᵀ(Hv) = vᵀ(Hu)` for random u, v over all weights and biases.
#[test]
fn hvp_is_symmetric() {
    for case in all_cases() {
        for seed in [1u64, 2, 3] {
            let u = random_direction(&case.graph, seed * 17, true);
            let v = random_direction(&case.graph, seed * 31 + 5, true);
            let hu = hvp(&case.graph, case.loss, &case.inputs, &case.labels, &u).unwrap();
            let hv = hvp(&case.graph, case.loss, &case.inputs, &case.labels, &v).unwrap();
            let (a, b) = (u.dot(&hv), v.dot(&hu));
            let scale = (u.dot(&u) * hv.dot(&hv)).sqrt();
            assert!((a - b).abs() <= 1e-5 * scale, "{}: uᵀHv {a} vs vᵀHu {b}", case.name);
        }
    }
}

/// `quadratic_forms` gives `vᵀ H v` for directions within one layer each (with and without a
/// bias part, several on the same layer), equal to `v · hvp(v)`, on every case (the
/// non-piecewise-linear one too: both are the exact Hessian). Mis-sized directions are errors.
#[test]
fn quadratic_forms_match_hessian_vector_products() {
    for case in all_cases() {
        let mut directions = Vec::new();
        for (k, (n, node)) in case.graph.nodes.iter().enumerate().filter(|(_, nd)| nd.op.has_weights()).enumerate() {
            for with_biases in [true, false] {
                let v = random_direction(&case.graph, 7000 + 10 * k as u64 + u64::from(with_biases), with_biases);
                let biases = if with_biases { v.biases[n].clone() } else { Vec::new() };
                assert_eq!(v.weights[n].len(), node.op.weight_count());
                directions.push(LayerDirection { node: n, weights: v.weights[n].clone(), biases });
            }
        }
        let forms = quadratic_forms(&case.graph, case.loss, &case.inputs, &case.labels, &directions).unwrap();
        assert_eq!(forms.len(), directions.len());
        for (d, &form) in directions.iter().zip(&forms) {
            let mut v = WeightVector::zeros(&case.graph);
            v.weights[d.node] = d.weights.clone();
            if !d.biases.is_empty() {
                v.biases[d.node] = d.biases.clone();
            }
            let hv = hvp(&case.graph, case.loss, &case.inputs, &case.labels, &v).unwrap();
            let want = v.dot(&hv);
            // Both are f32 products accumulated in f64: good to ~1e-6 of ‖v‖‖Hv‖ (≥ |vᵀHv|).
            let scale = (v.dot(&v) * hv.dot(&hv)).sqrt();
            assert!(scale > 1e-6, "{} node {}: Hv is too small to test", case.name, d.node);
            assert!(
                (form - want).abs() <= 1e-5 * scale,
                "{} node {}: vᵀHv {form} vs v·hvp(v) {want}",
                case.name,
                d.node
            );
        }
        let mut wrong = directions[0].clone();
        wrong.weights.pop();
        assert!(quadratic_forms(&case.graph, case.loss, &case.inputs, &case.labels, &[wrong]).is_err());
    }
}

/// `traces_and_forms` gives exactly what `traces` and `quadratic_forms` give apart, whether the
/// forms come from the traces' backward passes (piecewise-linear cases with few outputs) or are
/// computed after them.
#[test]
fn traces_and_forms_equal_the_separate_results() {
    for case in all_cases() {
        let directions: Vec<LayerDirection> = case
            .graph
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, nd)| nd.op.has_weights())
            .map(|(n, _)| {
                let v = random_direction(&case.graph, 9100 + n as u64, true);
                LayerDirection { node: n, weights: v.weights[n].clone(), biases: v.biases[n].clone() }
            })
            .collect();
        let opts = TraceOptions::default();
        let bar = indicatif::ProgressBar::hidden();
        let (both, forms) =
            traces_and_forms(&case.graph, case.loss, &case.inputs, &case.labels, &opts, &directions, &bar).unwrap();
        let alone = traces(&case.graph, case.loss, &case.inputs, &case.labels, &opts, &bar).unwrap();
        let forms_alone = quadratic_forms(&case.graph, case.loss, &case.inputs, &case.labels, &directions).unwrap();
        assert_eq!(forms, forms_alone, "{}", case.name);
        assert_eq!(both.estimator, alone.estimator, "{}", case.name);
        for (a, b) in both.weights.iter().zip(&alone.weights) {
            assert_eq!((a.node, a.trace, &a.channels), (b.node, b.trace, &b.channels), "{}", case.name);
        }
        assert_eq!(both.activations.len(), alone.activations.len(), "{}", case.name);
        for (a, b) in both.activations.iter().zip(&alone.activations) {
            assert_eq!((a.value, a.trace), (b.value, b.trace), "{}", case.name);
        }
    }
}

/// Exact per-layer traces `Tr(H_ii)` from one HVP per basis vector of the layer's weights.
fn basis_traces(case: &Case) -> Vec<(usize, f64)> {
    basis_channel_traces(case).into_iter().map(|d| (d.node, d.channels.iter().sum())).collect()
}

/// A weight layer's exact per-output-channel traces `Tr(H_{i,c})`, and the sums `Σ|H_jj|` of the
/// absolute values of each channel's diagonal entries: the size of the diagonal, which an
/// indefinite block's trace (curvature of smooth activations and products) can cancel to near 0.
struct ExactChannels {
    node: usize,
    channels: Vec<f64>,
    magnitudes: Vec<f64>,
}

impl ExactChannels {
    fn trace(&self) -> f64 {
        self.channels.iter().sum()
    }

    fn magnitude(&self) -> f64 {
        self.magnitudes.iter().sum()
    }
}

/// Exact per-output-channel traces of every weight layer: the diagonal from one HVP per basis
/// vector, summed over each output channel's weights (a contiguous block of the IR's
/// `[out_c, …]` weight order).
fn basis_channel_traces(case: &Case) -> Vec<ExactChannels> {
    let mut out = Vec::new();
    for (n, node) in case.graph.nodes.iter().enumerate() {
        let out_c = match &node.op {
            OpKind::Conv(c) => c.weight.shape()[0],
            OpKind::Fc(f) => f.weight.shape()[0],
            _ => continue,
        };
        let diagonal: Vec<f64> = (0..node.op.weight_count())
            .map(|i| {
                let hv = hvp(&case.graph, case.loss, &case.inputs, &case.labels, &basis(&case.graph, n, i)).unwrap();
                f64::from(hv.weights[n][i])
            })
            .collect();
        let per_channel = diagonal.chunks_exact(diagonal.len() / out_c);
        out.push(ExactChannels {
            node: n,
            channels: per_channel.clone().map(|c| c.iter().sum()).collect(),
            magnitudes: per_channel.map(|c| c.iter().map(|h| h.abs()).sum()).collect(),
        });
    }
    out
}

/// Asserts that a layer's per-channel traces sum to its trace (they come from the same passes).
fn assert_channels_sum_to_layer(what: &str, layer: &LayerTrace) {
    let sum: f64 = layer.channels.iter().sum();
    assert!(
        (sum - layer.trace).abs() <= 1e-9 * layer.trace.abs().max(1e-12),
        "{what}: Σ channels {sum} vs {}",
        layer.trace
    );
    assert_eq!(layer.channel_std_errors.len(), layer.channels.len(), "{what}");
}

/// Exact activation traces `(1/N) Σₛ Σₑ ∂²ℓₛ/∂aₑ²` from f64 second differences of the reference
/// (h = 1e-3: truncation ~h² relative, rounding ~1e-16/h² = 1e-10), with the magnitude of the
/// diagonal `(1/N) Σₛ Σₑ |∂²ℓₛ/∂aₑ²|`: `(value, trace, magnitude)`.
fn reference_activation_traces(case: &Case) -> Vec<(ValueId, f64, f64)> {
    let h = 1e-3;
    let reference = Ref::new(&case.graph);
    let patterns = reference.patterns(case);
    let live = live_values(&case.graph, case.loss);
    let mut out = Vec::new();
    for v in (0..case.graph.values.len()).filter(|&v| live[v]) {
        let (mut total, mut magnitude) = (0.0, 0.0);
        for (s, x) in case.inputs.iter().enumerate() {
            let l = |bump: Bump| {
                let (value, f) = reference.sample_loss(case.loss, x, label(case, s), bump);
                assert_eq!(f.pattern, patterns[s], "{}: bump of value {v} changed the pattern", case.name);
                value
            };
            let base = l(None);
            for e in 0..case.graph.values[v].elements() {
                let second = (l(Some((v, e, h))) - 2.0 * base + l(Some((v, e, -h)))) / (h * h);
                total += second;
                magnitude += second.abs();
            }
        }
        let n = case.inputs.len() as f64;
        out.push((v, total / n, magnitude / n));
    }
    out
}

fn run_traces(case: &Case, opts: &TraceOptions) -> Traces {
    let bar = indicatif::ProgressBar::hidden();
    traces(&case.graph, case.loss, &case.inputs, &case.labels, opts, &bar).unwrap()
}

/// (c) The Gauss–Newton traces equal the exact ones (basis-vector HVPs for weights, f64 second
/// differences for activations) to 1e-4 relative on piecewise-linear networks; (e) they are ≥ 0.
#[test]
fn gauss_newton_traces_are_exact_and_nonnegative() {
    for case in all_cases().into_iter().filter(|c| c.piecewise_linear()) {
        let t = run_traces(&case, &TraceOptions::default());
        assert_eq!(t.estimator, Estimator::GaussNewtonExact, "{}", case.name);
        assert!(t.exact_hessian);
        let exact = basis_channel_traces(&case);
        assert_eq!(t.weights.len(), exact.len());
        for (layer, exact) in t.weights.iter().zip(&exact) {
            let (node, channels, trace) = (exact.node, &exact.channels, exact.trace());
            assert_eq!(layer.node, node);
            assert_eq!(layer.params, case.graph.nodes[node].op.weight_count());
            assert!(layer.trace >= 0.0, "{}: negative trace", case.name);
            assert_eq!(layer.std_error, 0.0);
            assert!(
                (layer.trace - trace).abs() <= 1e-4 * trace.abs().max(1e-6),
                "{}: node {node}: Gauss–Newton {} vs basis HVPs {trace}",
                case.name,
                layer.trace
            );
            // Per output channel: the same exactness, and the parts sum to the whole.
            assert_channels_sum_to_layer(&format!("{} node {node}", case.name), layer);
            assert_eq!(layer.channels.len(), channels.len());
            for (c, (&got, &want)) in layer.channels.iter().zip(channels).enumerate() {
                assert!(got >= 0.0, "{}: node {node} channel {c}: negative trace", case.name);
                assert_eq!(layer.channel_std_errors[c], 0.0);
                assert!(
                    (got - want).abs() <= 1e-4 * want.abs().max(1e-6),
                    "{}: node {node} channel {c}: Gauss–Newton {got} vs basis HVPs {want}",
                    case.name
                );
            }
        }
        let reference = reference_activation_traces(&case);
        assert_eq!(t.activations.len(), reference.len());
        for (act, &(value, trace, _)) in t.activations.iter().zip(&reference) {
            assert_eq!(act.value, value);
            assert!(act.trace >= 0.0, "{}: negative trace", case.name);
            assert!(
                (act.trace - trace).abs() <= 1e-4 * trace.abs().max(1e-6),
                "{}: value {value}: Gauss–Newton {} vs second differences {trace}",
                case.name,
                act.trace
            );
        }
    }
}

/// Asserts that an iterative estimate is within 4 of its standard errors of the exact value, and
/// that the standard error is small enough for that to mean something: at most a quarter of the
/// block's `magnitude`, the sum of the absolute values of its diagonal, which is the trace itself
/// for the positive semi-definite blocks of piecewise-linear networks (an indefinite block's
/// trace can cancel to near zero, which no affordable number of probes resolves relatively).
fn assert_within_error(what: &str, estimate: f64, std_error: f64, exact: f64, magnitude: f64) {
    if std_error == 0.0 {
        // Every probe gave the same value, which happens when the probed block is a multiple of
        // the identity (a 1-output MSE, or a value read directly by an MSE): then it is exact.
        assert!((estimate - exact).abs() <= 1e-4 * exact.abs(), "{what}: {estimate} (no spread) vs exact {exact}");
        return;
    }
    assert!(magnitude >= exact.abs() * (1.0 - 1e-9), "{what}: magnitude {magnitude} below |{exact}|");
    assert!(
        std_error <= 0.25 * magnitude.max(1e-9),
        "{what}: standard error {std_error} of {exact} (Σ|Hᵢᵢ| {magnitude})"
    );
    assert!((estimate - exact).abs() <= 4.0 * std_error, "{what}: {estimate} ± {std_error} vs exact {exact}");
}

/// (c) Hutchinson's estimates converge to the exact traces within 4 reported standard errors, on
/// every case (the non-piecewise-linear ones too, where only Hutchinson estimates the Hessian).
#[test]
fn hutchinson_converges_to_exact_traces() {
    let opts = TraceOptions { method: Method::Hutchinson, max_iterations: 300, ..TraceOptions::default() };
    for case in all_cases() {
        let t = run_traces(&case, &opts);
        assert_eq!(t.estimator, Estimator::Hutchinson);
        assert!(t.exact_hessian);
        for (layer, exact) in t.weights.iter().zip(&basis_channel_traces(&case)) {
            let node = exact.node;
            assert_eq!(layer.node, node);
            assert!(layer.iterations >= opts.min_iterations && layer.iterations <= opts.max_iterations);
            let what = format!("{} node {node}", case.name);
            assert_within_error(&what, layer.trace, layer.std_error, exact.trace(), exact.magnitude());
            assert_channels_sum_to_layer(&what, layer);
        }
        // The f64 second differences are the exact activation traces (no difference straddles a
        // kink, and the smooth parts' fourth derivatives make their truncation ~h²).
        for (act, &(value, trace, magnitude)) in t.activations.iter().zip(&reference_activation_traces(&case)) {
            assert_eq!(act.value, value);
            assert_within_error(&format!("{} value {value}", case.name), act.trace, act.std_error, trace, magnitude);
        }
        // Reproducible from the seed.
        assert_eq!(run_traces(&case, &opts).weights, t.weights);
    }
}

/// Hutchinson's per-channel estimates (Σ over a channel's weights of `v ⊙ Hv`, from the same
/// probes as the layer's) converge to the exact per-channel traces. A layer stops when its own
/// estimate converges, before its channels' (each has fewer weights, so more spread); here the
/// stopping rule is off so every channel gets all iterations.
#[test]
fn hutchinson_channel_traces_converge() {
    let opts =
        TraceOptions { method: Method::Hutchinson, tolerance: 0.0, max_iterations: 2000, ..TraceOptions::default() };
    for case in all_cases() {
        let t = run_traces(&case, &opts);
        for (layer, exact) in t.weights.iter().zip(&basis_channel_traces(&case)) {
            assert_eq!(layer.iterations, opts.max_iterations);
            assert_channels_sum_to_layer(&format!("{} node {}", case.name, exact.node), layer);
            for (c, (&got, (&want, &magnitude))) in
                layer.channels.iter().zip(exact.channels.iter().zip(&exact.magnitudes)).enumerate()
            {
                let what = format!("{} node {} channel {c}", case.name, exact.node);
                assert_within_error(&what, got, layer.channel_std_errors[c], want, magnitude);
            }
        }
    }
}

/// Activation traces of the non-piecewise-linear case (softmax inside the loss): Hutchinson
/// against f64 second differences, which include the softmax's curvature.
#[test]
fn hutchinson_activation_traces_through_softmax() {
    let case = softmax_mse();
    let opts = TraceOptions { method: Method::Hutchinson, max_iterations: 300, ..TraceOptions::default() };
    let t = run_traces(&case, &opts);
    for (act, &(value, trace, magnitude)) in t.activations.iter().zip(&reference_activation_traces(&case)) {
        assert_eq!(act.value, value);
        assert_within_error(&format!("value {value}"), act.trace, act.std_error, trace, magnitude);
    }
}

/// The Gauss–Newton estimator with Rademacher probes in output space (as for outputs too many to
/// do exactly) converges to the exact Gauss–Newton traces.
#[test]
fn gauss_newton_probes_converge() {
    let opts = TraceOptions { exact_max_outputs: 0, max_iterations: 400, ..TraceOptions::default() };
    for case in all_cases().into_iter().filter(|c| c.piecewise_linear()) {
        let exact = run_traces(&case, &TraceOptions::default());
        let probed = run_traces(&case, &opts);
        assert_eq!(probed.estimator, Estimator::GaussNewtonProbes);
        for (p, e) in probed.weights.iter().zip(&exact.weights) {
            assert!(p.trace >= 0.0);
            // Gauss–Newton blocks are positive semi-definite: their traces are their magnitudes.
            assert_within_error(&format!("{} node {}", case.name, e.node), p.trace, p.std_error, e.trace, e.trace);
            assert_channels_sum_to_layer(&format!("{} node {}", case.name, e.node), p);
            for (c, ((&got, &se), &want)) in p.channels.iter().zip(&p.channel_std_errors).zip(&e.channels).enumerate() {
                assert!(got >= 0.0);
                assert_within_error(&format!("{} node {} channel {c}", case.name, e.node), got, se, want, want);
            }
        }
        for (p, e) in probed.activations.iter().zip(&exact.activations) {
            assert!(p.trace >= 0.0);
            assert_within_error(&format!("{} value {}", case.name, e.value), p.trace, p.std_error, e.trace, e.trace);
        }
    }
}

/// (c′) On the networks that are not piecewise linear, `Method::Auto` adds Hutchinson's probes of
/// the remainder `H − G` to the Gauss–Newton traces: within 4 reported standard errors of the
/// exact traces, with less spread than Hutchinson's on the whole Hessian at the same number of
/// probes (the remainder's off-diagonal mass is what is left to sample).
#[test]
fn gauss_newton_plus_hutchinson_converges_with_less_spread() {
    let fixed = |method| TraceOptions {
        method,
        min_iterations: 40,
        max_iterations: 40,
        tolerance: 0.0,
        ..TraceOptions::default()
    };
    let mut checked = 0;
    for case in all_cases().into_iter().filter(|c| !c.piecewise_linear()) {
        let t = run_traces(&case, &TraceOptions { max_iterations: 300, ..TraceOptions::default() });
        assert_eq!(t.estimator, Estimator::GaussNewtonPlusHutchinson, "{}", case.name);
        for (layer, exact) in t.weights.iter().zip(&basis_channel_traces(&case)) {
            let what = format!("{} node {}", case.name, exact.node);
            assert_within_error(&what, layer.trace, layer.std_error, exact.trace(), exact.magnitude());
            assert_channels_sum_to_layer(&what, layer);
        }
        for (act, &(value, trace, magnitude)) in t.activations.iter().zip(&reference_activation_traces(&case)) {
            assert_within_error(&format!("{} value {value}", case.name), act.trace, act.std_error, trace, magnitude);
        }
        let plain = run_traces(&case, &fixed(Method::Hutchinson));
        let control = run_traces(&case, &fixed(Method::Auto));
        let variance = |t: &Traces| t.weights.iter().map(|l| l.std_error.powi(2)).sum::<f64>();
        let (plain_var, control_var) = (variance(&plain), variance(&control));
        println!("{}: Σ SE² Hutchinson {plain_var:.3e}, Gauss–Newton + Hutchinson {control_var:.3e}", case.name);
        assert!(control_var < plain_var, "{}: {control_var} not below {plain_var}", case.name);
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} cases are not piecewise linear");
}

/// `Method::Auto` picks the exact Gauss–Newton estimator exactly for the piecewise-linear
/// networks (no softmax inside the loss, no smooth activation, no product of two input-dependent
/// values), and says why the others are not; every layer's and value's trace names the
/// estimator that made it.
#[test]
fn method_auto_uses_gauss_newton_only_for_piecewise_linear_networks() {
    for case in all_cases() {
        let t = run_traces(&case, &TraceOptions { max_iterations: 20, ..TraceOptions::default() });
        let expected =
            if case.piecewise_linear() { Estimator::GaussNewtonExact } else { Estimator::GaussNewtonPlusHutchinson };
        assert_eq!(t.estimator, expected, "{}", case.name);
        assert!(t.exact_hessian, "{}", case.name);
        match (&t.not_piecewise_linear, case.nonlinearity) {
            (None, None) => {}
            (Some(why), Some(op)) => {
                assert!(why.contains(&format!("({op})")), "{}: {why:?} should name the {op}", case.name);
            }
            (why, op) => panic!("{}: not piecewise linear because {why:?}, expected the {op:?}", case.name),
        }
        assert!(!t.weights.is_empty() && !t.activations.is_empty());
        assert!(t.weights.iter().all(|l| l.estimator == expected), "{}", case.name);
        assert!(t.activations.iter().all(|a| a.estimator == expected), "{}", case.name);
    }
}

/// Forcing Gauss–Newton on a network that is not piecewise linear (softmax inside the loss,
/// smooth activations, products of input-dependent values) gives the (non-negative) Gauss–Newton
/// approximation, flagged as not the Hessian, which differs from the exact trace.
#[test]
fn gauss_newton_is_only_an_approximation_for_non_piecewise_linear_networks() {
    for case in all_cases().into_iter().filter(|c| !c.piecewise_linear()) {
        let forced = run_traces(&case, &TraceOptions { method: Method::GaussNewton, ..TraceOptions::default() });
        assert_eq!(forced.estimator, Estimator::GaussNewtonExact, "{}", case.name);
        assert!(!forced.exact_hessian, "{}", case.name);
        assert!(forced.not_piecewise_linear.is_some(), "{}", case.name);
        assert!(forced.weights.iter().all(|l| l.estimator == Estimator::GaussNewtonExact));
        let exact = basis_traces(&case);
        assert!(forced.weights.iter().all(|l| l.trace >= 0.0), "{}", case.name);
        let differs = forced.weights.iter().zip(&exact).any(|(l, &(_, t))| (l.trace - t).abs() > 1e-3 * t.abs());
        assert!(differs, "{}: the curvature should make Gauss–Newton differ from the Hessian", case.name);
    }
}

#[test]
fn the_loss_must_fit_the_graph_and_labels() {
    let case = cnn_softmax();
    let bad_label = vec![2.0, 4.0, 0.0];
    assert!(gradients(&case.graph, Loss::CrossEntropy, &case.inputs, &bad_label).is_err());
    assert!(gradients(&case.graph, Loss::CrossEntropy, &case.inputs, &[0.5, 1.0, 2.0]).is_err());
    assert!(gradients(&case.graph, Loss::CrossEntropy, &case.inputs, &[0.0]).is_err());
    assert!(gradients(&case.graph, Loss::Reconstruction, &case.inputs, &[]).is_err(), "4 outputs, 144 inputs");
    assert!(gradients(&case.graph, Loss::CrossEntropy, &[vec![0.0; 3]], &[0.0]).is_err());
    assert!(gradients(&case.graph, Loss::CrossEntropy, &[], &[]).is_err());
    let mut wrong = WeightVector::zeros(&case.graph);
    wrong.weights[0].push(1.0);
    assert!(hvp(&case.graph, case.loss, &case.inputs, &case.labels, &wrong).is_err());
    let zero = hvp(&case.graph, case.loss, &case.inputs, &case.labels, &WeightVector::zeros(&case.graph)).unwrap();
    assert_eq!(zero, WeightVector::zeros(&case.graph));
}

/// The activation quantizer's derivatives through a network (the refinement's LSQ): input →
/// FC + ReLU → a 4-bit value → FC → squared error. LSQ's derivatives are those of a surrogate
/// quantizer `Q̃(y; s) = s·(clamp(y/s + z) − z) + s·c`, with `c = round(u₀) − u₀` (`u₀ = y₀/s₀`
/// at the base point) where `y₀` is strictly inside the clip and `c = 0` at or beyond it: equal
/// to the fake quantizer at the base point, with the straight-through derivative in `y` and LSQ's
/// in `s`. `∂L/∂s` and the first layer's weight gradient (which crosses the quantizer: passed
/// inside the clip, stopped beyond it, and the ReLU judged before the rounding) are checked
/// against central differences of that surrogate in f64, with the hidden values inside, at (the
/// ReLU's zeros) and beyond the clip.
#[test]
fn activation_quantizer_gradients_match_the_lsq_surrogate() {
    use hawq_compiler::autodiff::head_loss_gradients;
    use hawq_compiler::quantize::ActQuant;
    let mut rng = SplitMix(11);
    let (n_in, n_hidden, n_out) = (6, 5, 3);
    let w1 = rng.vec(n_hidden * n_in, -1.0, 1.0);
    let b1 = rng.vec(n_hidden, -0.2, 0.2);
    let w2 = rng.vec(n_out * n_hidden, -1.0, 1.0);
    let b2 = rng.vec(n_out, -0.2, 0.2);
    let value = |name: &str, n: usize| Value { name: name.into(), shape: vec![1, n] };
    let fc = |w: &[f32], b: &[f32], rows: usize, cols: usize, clamp: Clamp| {
        OpKind::Fc(Fc {
            weight: Array2::from_shape_vec((rows, cols), w.to_vec()).unwrap(),
            bias: Array1::from(b.to_vec()),
            clamp,
        })
    };
    let graph_of = |w1: &[f32]| Graph {
        values: vec![value("x", n_in), value("h", n_hidden), value("y", n_out)],
        nodes: vec![
            Node { name: "fc1".into(), op: fc(w1, &b1, n_hidden, n_in, Clamp::RELU), inputs: vec![0], output: 1 },
            Node { name: "fc2".into(), op: fc(&w2, &b2, n_out, n_hidden, Clamp::NONE), inputs: vec![1], output: 2 },
        ],
        input: 0,
        output: 2,
        input_layout: InputLayout::Nhwc,
        extra_outputs: Vec::new(),
    };
    let inputs: Vec<Vec<f32>> = (0..4).map(|_| rng.vec(n_in, -1.5, 1.5)).collect();
    let targets: Vec<Vec<f32>> = (0..4).map(|_| rng.vec(n_out, -1.0, 1.0)).collect();
    // The hidden ReLU outputs: the scale puts the largest beyond the clip (15 steps above zero).
    let hidden = |w1: &[f64], x: &[f32]| -> Vec<f64> {
        (0..n_hidden)
            .map(|o| {
                let y: f64 = (0..n_in).map(|i| w1[o * n_in + i] * f64::from(x[i])).sum::<f64>() + f64::from(b1[o]);
                y.max(0.0)
            })
            .collect()
    };
    let w1_f64: Vec<f64> = w1.iter().map(|&w| f64::from(w)).collect();
    let all_hidden: Vec<f64> = inputs.iter().flat_map(|x| hidden(&w1_f64, x)).collect();
    let largest = all_hidden.iter().copied().fold(0.0, f64::max);
    let q = ActQuant { scale: (largest * 0.8 / 15.0) as f32, zero_point: -8, bits: 4 };
    let s0 = f64::from(q.scale);
    let (z, (qmin, qmax)) = (f64::from(q.zero_point), q.range());
    let (qmin, qmax) = (f64::from(qmin), f64::from(qmax));
    let beyond = all_hidden.iter().filter(|&&h| h / s0 + z > qmax).count();
    let zeros = all_hidden.iter().filter(|&&h| h == 0.0).count();
    let inside = all_hidden.len() - beyond - zeros;
    assert!(beyond > 0 && zeros > 0 && inside > 0, "beyond {beyond}, at zero {zeros}, inside {inside}");
    // The surrogate's constants `c`, frozen at the base point.
    let offsets: Vec<f64> = all_hidden
        .iter()
        .map(|&h| {
            let u = f64::from((h as f32) / q.scale);
            let index = u + z;
            if qmin < index && index < qmax {
                u.round() - u
            } else {
                0.0
            }
        })
        .collect();
    let surrogate_loss = |w1: &[f64], s: f64| -> f64 {
        let mut total = 0.0;
        for (k, (x, t)) in inputs.iter().zip(&targets).enumerate() {
            let h: Vec<f64> = hidden(w1, x)
                .iter()
                .enumerate()
                .map(|(o, &h)| s * ((h / s + z).clamp(qmin, qmax) - z) + s * offsets[k * n_hidden + o])
                .collect();
            for o in 0..n_out {
                let y: f64 =
                    (0..n_hidden).map(|i| f64::from(w2[o * n_hidden + i]) * h[i]).sum::<f64>() + f64::from(b2[o]);
                total += (y - f64::from(t[o])).powi(2);
            }
        }
        total / inputs.len() as f64
    };
    let graph = graph_of(&w1);
    let act = [None, Some(q), None];
    let sample_loss = |s: usize, y: &[f32]| -> (f64, Vec<f64>) {
        let r: Vec<f64> = y.iter().zip(&targets[s]).map(|(&a, &b)| f64::from(a) - f64::from(b)).collect();
        (r.iter().map(|x| x * x).sum(), r.iter().map(|x| 2.0 * x).collect())
    };
    let g = head_loss_gradients(&graph, Loss::Mse, &act, true, &inputs, sample_loss).unwrap();
    // The loss is the fake-quantized network's, which the surrogate equals at the base point.
    assert!((g.loss - surrogate_loss(&w1_f64, s0)).abs() < 1e-4, "{} vs {}", g.loss, surrogate_loss(&w1_f64, s0));
    let e = 1e-5;
    let fd_s = (surrogate_loss(&w1_f64, s0 + e) - surrogate_loss(&w1_f64, s0 - e)) / (2.0 * e);
    let ds = g.quantizer_scales[1];
    assert!((fd_s - ds).abs() < 1e-3 * (1.0 + fd_s.abs()), "∂L/∂s {ds} vs {fd_s}");
    assert!(ds.abs() > 1e-3, "a vanishing ∂L/∂s checks nothing");
    assert_eq!((g.quantizer_scales[0], g.quantizer_scales[2]), (0.0, 0.0));
    for j in 0..w1.len() {
        let (mut plus, mut minus) = (w1_f64.clone(), w1_f64.clone());
        plus[j] += e;
        minus[j] -= e;
        let fd = (surrogate_loss(&plus, s0) - surrogate_loss(&minus, s0)) / (2.0 * e);
        let got = f64::from(g.params.weights[0][j]);
        assert!((fd - got).abs() < 1e-3 * (1.0 + fd.abs()), "∂L/∂w1[{j}] {got} vs {fd}");
    }
}
