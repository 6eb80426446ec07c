//! The compiler's intermediate representation: a small, normalized, float graph in the runtime's
//! layout (NHWC, batch 1 per sample). BatchNorm and constant subgraphs are already folded,
//! activations fused into their producers, layout transposes resolved. Everything after import
//! (float reference, calibration, sensitivity, quantization, planning) works on this.

use ndarray::{Array1, Array2, Array4};

pub type ValueId = usize;

/// An activation tensor, per sample: `[H, W, C]` for feature maps, `[C]` for vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub name: String,
    pub shape: Vec<usize>,
}

impl Value {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// `(H, W, C)`, with vectors seen as `1 × 1 × C`.
    pub fn hwc(&self) -> (usize, usize, usize) {
        match self.shape.as_slice() {
            [h, w, c] => (*h, *w, *c),
            [c] => (1, 1, *c),
            _ => (1, 1, self.elements()),
        }
    }
}

/// A fused output clamp in real units; `(-inf, inf)` when there is none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clamp {
    pub lo: f32,
    pub hi: f32,
}

impl Clamp {
    pub const NONE: Clamp = Clamp { lo: f32::NEG_INFINITY, hi: f32::INFINITY };
    pub const RELU: Clamp = Clamp { lo: 0.0, hi: f32::INFINITY };
    pub const RELU6: Clamp = Clamp { lo: 0.0, hi: 6.0 };

    pub fn is_none(&self) -> bool {
        *self == Clamp::NONE
    }

    pub fn apply(&self, x: f32) -> f32 {
        x.max(self.lo).min(self.hi)
    }

    /// Composition: this clamp followed by `then`.
    pub fn then(&self, then: Clamp) -> Clamp {
        Clamp { lo: self.lo.max(then.lo), hi: self.hi.min(then.hi).max(self.lo.max(then.lo)) }
    }

    pub fn describe(&self) -> String {
        match (self.lo, self.hi) {
            (lo, hi) if lo == f32::NEG_INFINITY && hi == f32::INFINITY => "none".into(),
            (lo, hi) if lo == 0.0 && hi == f32::INFINITY => "relu".into(),
            (lo, hi) if lo == 0.0 && hi == 6.0 => "relu6".into(),
            (lo, hi) => format!("clip[{lo}, {hi}]"),
        }
    }
}

/// Window of a convolution or pooling: kernel, stride, padding `[top, left, bottom, right]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pads: [usize; 4],
}

impl Window {
    /// The output's `(H, W)`; `None` when the kernel does not fit the padded input, or for a
    /// zero stride or sizes that overflow (which the importer rejects earlier).
    pub fn output_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let eh = h.checked_add(self.pads[0])?.checked_add(self.pads[2])?.checked_sub(self.kernel[0])?;
        let ew = w.checked_add(self.pads[1])?.checked_add(self.pads[3])?.checked_sub(self.kernel[1])?;
        Some((eh.checked_div(self.stride[0])? + 1, ew.checked_div(self.stride[1])? + 1))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    /// `[out_c, kh, kw, in_c]`; for depthwise `[out_c, kh, kw, 1]`.
    pub weight: Array4<f32>,
    pub bias: Array1<f32>,
    pub window: Window,
    pub depthwise: bool,
    pub clamp: Clamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fc {
    /// `[out, in]`, with `in` in the runtime's (NHWC-flattened) order.
    pub weight: Array2<f32>,
    pub bias: Array1<f32>,
    pub clamp: Clamp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OpKind {
    Conv(Conv),
    Fc(Fc),
    /// Average over the taps inside the input (ONNX `count_include_pad = 0`).
    AvgPool(Window),
    MaxPool(Window),
    Add(Clamp),
    /// Same elements, new shape.
    Reshape,
    /// Over the last axis.
    Softmax,
    /// Over the last axis: `x − max − ln Σ exp(x − max)`.
    LogSoftmax,
    /// An elementwise function; on the device a lookup table of the input's codes.
    Activation(Activation),
    /// Elementwise product of two values; the second is either the same shape or one value per
    /// channel, broadcast over positions (squeeze-and-excitation).
    Mul(Clamp),
    /// Concatenation of the inputs along the channel axis.
    Concat,
    /// `out[y, x, c] = in[begin[0] + y·step[0], begin[1] + x·step[1], begin[2] + c·step[2]]`, the
    /// output's shape giving the extent.
    Slice {
        begin: [usize; 3],
        step: [usize; 3],
    },
    /// Nearest-neighbour upsampling by integer factors `[h, w]`: `out[y, x] = in[y / f_h, x / f_w]`.
    Resize([usize; 2]),
    /// `out[y·b + i, x·b + j, c] = in[y, x, (i·b + j)·C + c]` (ONNX DepthToSpace, DCR order):
    /// the second half of a ConvTranspose whose kernel equals its stride.
    DepthToSpace(usize),
}

/// An elementwise nonlinearity that is not a clamp. Exact in f32 in the float model; a table
/// of the quantized input's codes on the device (contract §5), so any of them costs the same.
#[derive(Debug, Clone, PartialEq)]
pub enum Activation {
    Sigmoid,
    Tanh,
    /// The error function (TorchScript writes GELU as `x · (1 + erf(x/√2)) / 2`).
    Erf,
    /// `clip(alpha·x + beta, 0, 1)`.
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// `x · clip(x/6 + 1/2, 0, 1)`.
    HardSwish,
    /// `x · sigmoid(x)`.
    Silu,
    /// `x · Φ(x)` (erf form).
    Gelu,
    /// `x` for `x ≥ 0`, `alpha·x` below.
    LeakyRelu(f32),
    /// `x` for `x ≥ 0`, `alpha·(eˣ − 1)` below.
    Elu(f32),
    /// `gamma·x` for `x ≥ 0`, `gamma·alpha·(eˣ − 1)` below (Keras' `selu`, which tf2onnx
    /// writes as ONNX's Selu).
    Selu {
        alpha: f32,
        gamma: f32,
    },
    /// `x` for `x ≥ 0`, `slope[c]·x` below: one slope per channel, or one for all.
    PRelu(Vec<f32>),
    /// A ReLU or clip that no producer could take as its output clamp.
    Clamp(Clamp),
}

impl Activation {
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Erf => "erf",
            Activation::HardSigmoid { .. } => "hard_sigmoid",
            Activation::HardSwish => "hard_swish",
            Activation::Silu => "silu",
            Activation::Gelu => "gelu",
            Activation::LeakyRelu(_) => "leaky_relu",
            Activation::Elu(_) => "elu",
            Activation::Selu { .. } => "selu",
            Activation::PRelu(_) => "prelu",
            Activation::Clamp(_) => "clamp",
        }
    }

    fn slope(slopes: &[f32], channel: usize) -> f32 {
        match slopes {
            [one] => *one,
            many => many.get(channel).copied().unwrap_or(0.0),
        }
    }

    /// f(x) for an element of channel `channel`.
    pub fn apply(&self, x: f32, channel: usize) -> f32 {
        match self {
            Activation::Sigmoid => sigmoid(x),
            Activation::Tanh => x.tanh(),
            Activation::Erf => erf(x as f64) as f32,
            Activation::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            Activation::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            Activation::Silu => x * sigmoid(x),
            Activation::Gelu => 0.5 * x * (1.0 + erf(x as f64 / std::f64::consts::SQRT_2) as f32),
            Activation::LeakyRelu(_) | Activation::Elu(_) | Activation::PRelu(_) if x >= 0.0 => x,
            Activation::LeakyRelu(a) => a * x,
            Activation::Elu(a) => a * x.exp_m1(),
            Activation::Selu { gamma, .. } if x >= 0.0 => gamma * x,
            Activation::Selu { alpha, gamma } => gamma * alpha * x.exp_m1(),
            Activation::PRelu(s) => Activation::slope(s, channel) * x,
            Activation::Clamp(c) => c.apply(x),
        }
    }

    /// f′(x); at a kink, the derivative from the right.
    pub fn derivative(&self, x: f32, channel: usize) -> f32 {
        match self {
            Activation::Sigmoid => {
                let s = sigmoid(x);
                s * (1.0 - s)
            }
            Activation::Tanh => 1.0 - x.tanh().powi(2),
            Activation::Erf => (std::f64::consts::FRAC_2_SQRT_PI * (-(x as f64).powi(2)).exp()) as f32,
            Activation::HardSigmoid { alpha, beta } => {
                // Linear where `y` is inside (0, 1), or on a bound that `y` leaves inwards as x grows.
                let y = alpha * x + beta;
                let inside = (y > 0.0 && y < 1.0) || (y == 0.0 && *alpha > 0.0) || (y == 1.0 && *alpha < 0.0);
                if inside {
                    *alpha
                } else {
                    0.0
                }
            }
            Activation::HardSwish if x < -3.0 => 0.0,
            Activation::HardSwish if x >= 3.0 => 1.0,
            Activation::HardSwish => x / 3.0 + 0.5,
            Activation::Silu => {
                let s = sigmoid(x);
                s * (1.0 + x * (1.0 - s))
            }
            Activation::Gelu => {
                let xf = x as f64;
                let cdf = 0.5 * (1.0 + erf(xf / std::f64::consts::SQRT_2));
                let pdf = (-0.5 * xf * xf).exp() / (2.0 * std::f64::consts::PI).sqrt();
                (cdf + xf * pdf) as f32
            }
            Activation::LeakyRelu(_) | Activation::Elu(_) | Activation::PRelu(_) if x >= 0.0 => 1.0,
            Activation::LeakyRelu(a) => *a,
            Activation::Elu(a) => a * x.exp(),
            Activation::Selu { gamma, .. } if x >= 0.0 => *gamma,
            Activation::Selu { alpha, gamma } => gamma * alpha * x.exp(),
            Activation::PRelu(s) => Activation::slope(s, channel),
            // As the fused clamps: the derivative passes strictly inside the bounds.
            Activation::Clamp(c) if x > c.lo && x < c.hi => 1.0,
            Activation::Clamp(_) => 0.0,
        }
    }

    /// f″(x), zero on the linear pieces of the piecewise-linear ones (their kinks have measure
    /// zero, as the clamps'); at a kink, from the right.
    pub fn second_derivative(&self, x: f32, _channel: usize) -> f32 {
        match self {
            Activation::Sigmoid => {
                let s = sigmoid(x);
                s * (1.0 - s) * (1.0 - 2.0 * s)
            }
            Activation::Erf => {
                let xf = x as f64;
                (-2.0 * xf * std::f64::consts::FRAC_2_SQRT_PI * (-xf * xf).exp()) as f32
            }
            Activation::Tanh => {
                let t = x.tanh();
                -2.0 * t * (1.0 - t * t)
            }
            Activation::HardSwish if (-3.0..3.0).contains(&x) => 1.0 / 3.0,
            Activation::HardSwish => 0.0,
            Activation::Silu => {
                let s = sigmoid(x);
                s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s))
            }
            Activation::Gelu => {
                let xf = x as f64;
                let pdf = (-0.5 * xf * xf).exp() / (2.0 * std::f64::consts::PI).sqrt();
                (pdf * (2.0 - xf * xf)) as f32
            }
            Activation::Elu(a) if x < 0.0 => a * x.exp(),
            Activation::Elu(_) => 0.0,
            Activation::Selu { alpha, gamma } if x < 0.0 => gamma * alpha * x.exp(),
            Activation::Selu { .. } => 0.0,
            Activation::HardSigmoid { .. } | Activation::LeakyRelu(_) | Activation::PRelu(_) | Activation::Clamp(_) => {
                0.0
            }
        }
    }

    /// Is f piecewise linear (so that the Gauss–Newton part is the whole Hessian)?
    pub fn is_piecewise_linear(&self) -> bool {
        matches!(
            self,
            Activation::HardSigmoid { .. } | Activation::LeakyRelu(_) | Activation::PRelu(_) | Activation::Clamp(_)
        )
    }
}

pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The error function, to within 1.2e-7 (Numerical Recipes' erfc by Chebyshev fitting), in f64
/// so that GELU's table and derivatives agree with onnxruntime's erf to f32 precision.
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.26551223
        + t * (1.00002368
            + t * (0.37409196
                + t * (0.09678418
                    + t * (-0.18628806
                        + t * (0.27886807
                            + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - erfc
    } else {
        erfc - 1.0
    }
}

impl OpKind {
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::Conv(c) if c.depthwise => "depthwise_conv",
            OpKind::Conv(_) => "conv",
            OpKind::Fc(_) => "fully_connected",
            OpKind::AvgPool(_) => "avg_pool",
            OpKind::MaxPool(_) => "max_pool",
            OpKind::Add(_) => "add",
            OpKind::Reshape => "reshape",
            OpKind::Softmax => "softmax",
            OpKind::LogSoftmax => "log_softmax",
            OpKind::Activation(a) => a.name(),
            OpKind::Mul(_) => "mul",
            OpKind::Concat => "concat",
            OpKind::Slice { .. } => "slice",
            OpKind::Resize(_) => "resize",
            OpKind::DepthToSpace(_) => "depth_to_space",
        }
    }

    /// Softmax and log-softmax: the last op of a graph, computed in f32 on the device.
    pub fn is_normalization(&self) -> bool {
        matches!(self, OpKind::Softmax | OpKind::LogSoftmax)
    }

    /// Ops whose output holds some of the input's elements unchanged, so it keeps the input's
    /// quantization (and bit width) exactly.
    pub fn ties_output_to_input(&self) -> bool {
        matches!(
            self,
            OpKind::MaxPool(_) | OpKind::Reshape | OpKind::Slice { .. } | OpKind::Resize(_) | OpKind::DepthToSpace(_)
        )
    }

    /// Layers with weights, which get a weight bit width.
    pub fn has_weights(&self) -> bool {
        matches!(self, OpKind::Conv(_) | OpKind::Fc(_))
    }

    pub fn weight_count(&self) -> usize {
        match self {
            OpKind::Conv(c) => c.weight.len(),
            OpKind::Fc(f) => f.weight.len(),
            _ => 0,
        }
    }

    /// Multiply-accumulates per inference for an output of `out` elements.
    pub fn macs(&self, out: &Value) -> usize {
        match self {
            OpKind::Conv(c) => {
                let (h, w, oc) = out.hwc();
                let per = c.weight.len() / c.weight.shape()[0];
                h * w * oc * per
            }
            OpKind::Fc(f) => f.weight.len(),
            _ => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The ONNX node name this came from (of the main node when several were fused).
    pub name: String,
    pub op: OpKind,
    pub inputs: Vec<ValueId>,
    pub output: ValueId,
}

/// How the model's input is given to the compiled model (see docs/INTEGER_CONTRACT.md §6).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputTransform {
    pub scale: f32,
    pub offset: f32,
}

impl Default for InputTransform {
    fn default() -> Self {
        InputTransform { scale: 1.0, offset: 0.0 }
    }
}

/// A normalized model. Nodes are in execution order; each value is produced by at most one node
/// and the input by none.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub values: Vec<Value>,
    pub nodes: Vec<Node>,
    pub input: ValueId,
    pub output: ValueId,
    /// The order in which users hand over input elements (the ONNX model's input layout).
    pub input_layout: InputLayout,
    /// The graph's further outputs (ONNX graphs with several): kept to the end of a run and
    /// readable on the device. Calibration, the loss of the sensitivity analysis and the
    /// fidelity check's verdict use `output`; every layer's SQNR, these outputs' producers
    /// included, is in the fidelity report.
    pub extra_outputs: Vec<ValueId>,
}

/// Element order of the model's input as the user supplies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputLayout {
    /// Already in the runtime's order (NHWC feature maps, or vectors).
    Nhwc,
    /// Channel-major `[C, H, W]`, as PyTorch exports; transposed when written to the input.
    Nchw,
}

impl InputLayout {
    /// Reorders one sample from the user's layout into the runtime's NHWC order.
    pub fn to_nhwc<T: Copy>(self, data: &[T], (h, w, c): (usize, usize, usize)) -> Vec<T> {
        match self {
            InputLayout::Nhwc => data.to_vec(),
            InputLayout::Nchw => {
                let mut out = Vec::with_capacity(data.len());
                for y in 0..h {
                    for x in 0..w {
                        for ch in 0..c {
                            out.push(data[(ch * h + y) * w + x]);
                        }
                    }
                }
                out
            }
        }
    }
}

impl Graph {
    pub fn input_shape(&self) -> &[usize] {
        &self.values[self.input].shape
    }

    /// Is `v` one of the graph's outputs (the first or a further one)?
    pub fn is_output(&self, v: ValueId) -> bool {
        v == self.output || self.extra_outputs.contains(&v)
    }

    pub fn output_shape(&self) -> &[usize] {
        &self.values[self.output].shape
    }

    /// Indices of the nodes that read each value.
    pub fn consumers(&self) -> Vec<Vec<usize>> {
        let mut c = vec![Vec::new(); self.values.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &v in &n.inputs {
                c[v].push(i);
            }
        }
        c
    }

    /// Does the graph end in a softmax (whose input are then the logits)?
    pub fn ends_in_softmax(&self) -> bool {
        self.nodes.last().is_some_and(|n| matches!(n.op, OpKind::Softmax))
    }

    /// Does the graph end in a softmax or a log-softmax? Either way its input are the logits and
    /// cross-entropy is the loss that reads them.
    pub fn ends_in_normalization(&self) -> bool {
        self.nodes.last().is_some_and(|n| n.op.is_normalization())
    }

    pub fn total_macs(&self) -> usize {
        self.nodes.iter().map(|n| n.op.macs(&self.values[n.output])).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activations() -> Vec<Activation> {
        vec![
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::Erf,
            Activation::HardSigmoid { alpha: 0.25, beta: 0.5 },
            Activation::HardSigmoid { alpha: -0.5, beta: 0.25 },
            Activation::HardSwish,
            Activation::Silu,
            Activation::Gelu,
            Activation::LeakyRelu(0.1),
            Activation::Elu(0.7),
            Activation::Selu { alpha: 1.673_263_2, gamma: 1.050_701 },
            Activation::PRelu(vec![0.2, -0.3, 1.5]),
            Activation::PRelu(vec![0.25]),
        ]
    }

    /// Where f, f′ or f″ jumps (exact in f32 for the parameters above).
    fn kinks(f: &Activation) -> Vec<f32> {
        match f {
            Activation::HardSigmoid { alpha, beta } => vec![-beta / alpha, (1.0 - beta) / alpha],
            Activation::HardSwish => vec![-3.0, 3.0],
            Activation::LeakyRelu(_) | Activation::Elu(_) | Activation::Selu { .. } | Activation::PRelu(_) => {
                vec![0.0]
            }
            _ => Vec::new(),
        }
    }

    /// Central difference of `g` at `x`, divided by the f32 points' actual distance.
    fn central(g: impl Fn(f32) -> f32, x: f32, h: f32) -> f64 {
        let (lo, hi) = (x - h, x + h);
        (f64::from(g(hi)) - f64::from(g(lo))) / (f64::from(hi) - f64::from(lo))
    }

    /// `derivative` and `second_derivative` against central differences of `apply` and
    /// `derivative` (h = 1e-2: truncation h²·f‴/6 ≲ 2e-5, f32 rounding ≲ 6e-8·|f|/h ≲ 4e-5 on
    /// [-6, 6]; tolerance 2e-4·(1 + |f′|)), on a grid that stays 4h away from the kinks; and each
    /// one is piecewise linear exactly when its second derivative vanishes there.
    #[test]
    fn activation_derivatives_match_finite_differences() {
        let h = 1e-2f32;
        for f in activations() {
            let mut curved = false;
            for channel in 0..3 {
                for k in 0..=120 {
                    let x = -6.0 + 0.1 * k as f32 + 0.0137;
                    if kinks(&f).iter().any(|&kink| (x - kink).abs() < 4.0 * h) {
                        continue;
                    }
                    let d = f64::from(f.derivative(x, channel));
                    let fd = central(|v| f.apply(v, channel), x, h);
                    assert!((d - fd).abs() <= 2e-4 * (1.0 + d.abs()), "{f:?} f′({x}) = {d}, differences {fd}");
                    let d2 = f64::from(f.second_derivative(x, channel));
                    let fd2 = central(|v| f.derivative(v, channel), x, h);
                    assert!((d2 - fd2).abs() <= 2e-4 * (1.0 + d2.abs()), "{f:?} f″({x}) = {d2}, differences {fd2}");
                    curved |= d2 != 0.0;
                }
            }
            assert_eq!(f.is_piecewise_linear(), !curved, "{f:?}");
        }
    }

    /// At a kink, both derivatives are the ones from the right (one-sided differences with
    /// h = 1e-3: truncation h·f″/2 ≲ 2e-4; tolerance 2e-3, far below any jump here).
    #[test]
    fn activation_derivatives_at_kinks_are_from_the_right() {
        let h = 1e-3f32;
        for f in activations() {
            for kink in kinks(&f) {
                for channel in 0..3 {
                    let right = |g: &dyn Fn(f32) -> f32| (f64::from(g(kink + h)) - f64::from(g(kink))) / f64::from(h);
                    let d = f64::from(f.derivative(kink, channel));
                    let fd = right(&|v| f.apply(v, channel));
                    assert!((d - fd).abs() <= 2e-3, "{f:?} f′({kink}) = {d}, from the right {fd}");
                    let d2 = f64::from(f.second_derivative(kink, channel));
                    let fd2 = right(&|v| f.derivative(v, channel));
                    assert!((d2 - fd2).abs() <= 2e-3, "{f:?} f″({kink}) = {d2}, from the right {fd2}");
                }
            }
        }
    }

    #[test]
    fn prelu_takes_its_channel_slope() {
        let per_channel = Activation::PRelu(vec![0.2, -0.3, 1.5]);
        let shared = Activation::PRelu(vec![0.25]);
        for (channel, slope) in [0.2, -0.3, 1.5].into_iter().enumerate() {
            assert_eq!(per_channel.apply(-2.0, channel), -2.0 * slope);
            assert_eq!(per_channel.derivative(-2.0, channel), slope);
            assert_eq!(shared.apply(-2.0, channel), -0.5);
            assert_eq!(per_channel.apply(2.0, channel), 2.0);
        }
    }
}
