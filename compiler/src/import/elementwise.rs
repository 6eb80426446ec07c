//! Elementwise operators on activations beyond the clamps a producer absorbs: the nonlinear
//! activations (a table on the device), products of two activations, and the per-channel affine
//! ops and clamps that no producer can take, which become ops of their own.

use anyhow::{bail, Result};
use ndarray::{Array1, Array4};

use super::{attr_finite, attr_s, check_finite_f32, scalar, Act, Builder, Layout, Val};
use crate::ir::{Activation, Clamp, Conv, OpKind, Window};
use crate::onnx_proto::NodeProto;

/// HardSigmoid's parameters in `x · HardSigmoid(x)`, which is HardSwish (how exporters write it
/// before opset 14).
const HARD_SWISH_ALPHA: f32 = 1.0 / 6.0;

impl Builder {
    /// Sigmoid, Tanh, Erf, HardSigmoid, HardSwish, LeakyRelu, Elu, Selu, Gelu, PRelu.
    pub(super) fn activation(&mut self, node: &NodeProto) -> Result<()> {
        let a = self.act(node, 0)?;
        let f = match node.op_type.as_str() {
            "Sigmoid" => Activation::Sigmoid,
            "Tanh" => Activation::Tanh,
            "Erf" => Activation::Erf,
            "HardSigmoid" => Activation::HardSigmoid {
                alpha: attr_finite(node, "alpha", 0.2)?,
                beta: attr_finite(node, "beta", 0.5)?,
            },
            "HardSwish" => Activation::HardSwish,
            "LeakyRelu" => Activation::LeakyRelu(attr_finite(node, "alpha", 0.01)?),
            "Elu" => Activation::Elu(attr_finite(node, "alpha", 1.0)?),
            // ONNX's defaults, the self-normalizing constants.
            "Selu" => Activation::Selu {
                alpha: attr_finite(node, "alpha", 1.673_263_2)?,
                gamma: attr_finite(node, "gamma", 1.050_701)?,
            },
            "Gelu" => match attr_s(node, "approximate").as_deref() {
                None | Some("none") => Activation::Gelu,
                Some(other) => bail!("attribute 'approximate' = '{other}' is not supported (only 'none')"),
            },
            "PRelu" => {
                let slope = self.konst(node, 1)?;
                let slopes: Vec<f32> = if slope.len() == 1 {
                    vec![scalar(&slope)]
                } else {
                    let per_channel = self.per_channel(&a, &slope).map_err(|_| {
                        anyhow::anyhow!(
                            "the slope of shape {:?} varies across positions, and only one slope, or one per \
                             channel, is supported (one table per channel); in Keras, PReLU(shared_axes=[1, 2]) \
                             learns one per channel",
                            slope.shape()
                        )
                    })?;
                    per_channel.iter().map(|&v| v as f32).collect()
                };
                check_finite_f32(&slopes, "the slope")?;
                Activation::PRelu(slopes)
            }
            other => bail!("operator '{other}' is not an activation"),
        };
        self.push_elementwise(node, a, OpKind::Activation(f))
    }

    /// An op of `a`'s shape and layout.
    fn push_elementwise(&mut self, node: &NodeProto, a: Act, op: OpKind) -> Result<()> {
        let shape = self.values[a.id].shape.clone();
        self.push(node, op, vec![a.id], shape, a.layout)
    }

    /// The node that can take a clamp or a per-channel affine on `a` as part of itself: `a`'s
    /// producer when it is used only by `node`, or, through the depth-to-space half (and the
    /// crop) of a ConvTranspose, the convolution before it. With `affine`, only an unclamped Conv or Gemm.
    fn absorbing_producer(&self, node: &NodeProto, a: &Act, affine: bool) -> Option<usize> {
        let p = self.sole_producer(node, a)?;
        let takes = |op: &OpKind| match op {
            OpKind::Conv(c) => !affine || c.clamp.is_none(),
            OpKind::Fc(f) => !affine || f.clamp.is_none(),
            OpKind::Add(_) | OpKind::Mul(_) => !affine,
            _ => false,
        };
        // The node producing `v` when `v` has no other reader.
        let sole = |v: usize| -> Option<usize> {
            let only_reader = self.nodes.iter().filter(|n| n.inputs.contains(&v)).count() == 1;
            only_reader.then(|| self.producer.get(&v).copied()).flatten()
        };
        let through_depth_to_space = |d: usize| -> Option<usize> {
            let q = sole(self.nodes[d].inputs[0])?;
            (matches!(self.nodes[q].op, OpKind::Conv(_)) && takes(&self.nodes[q].op)).then_some(q)
        };
        match &self.nodes[p].op {
            OpKind::DepthToSpace(_) => through_depth_to_space(p),
            // The crop of a padded ConvTranspose: elementwise ops commute with it.
            OpKind::Slice { .. } => {
                let d = sole(self.nodes[p].inputs[0])?;
                matches!(self.nodes[d].op, OpKind::DepthToSpace(_)).then(|| through_depth_to_space(d)).flatten()
            }
            op => takes(op).then_some(p),
        }
    }

    /// Relu or Clip: the output clamp of the producer when it can take one, else an op.
    pub(super) fn clamp(&mut self, node: &NodeProto, clamp: Clamp) -> Result<()> {
        let a = self.act(node, 0)?;
        let Some(p) = self.absorbing_producer(node, &a, false) else {
            return self.push_elementwise(node, a, OpKind::Activation(Activation::Clamp(clamp)));
        };
        match &mut self.nodes[p].op {
            OpKind::Conv(c) => c.clamp = c.clamp.then(clamp),
            OpKind::Fc(f) => f.clamp = f.clamp.then(clamp),
            OpKind::Add(c) | OpKind::Mul(c) => *c = c.then(clamp),
            other => bail!("internal error: cannot fuse a clamp into '{}'", other.name()),
        }
        self.set(node, Val::Act(a))
    }

    /// `y = x · mul + add` per stored channel: folded into the Conv/Gemm that produced `x` when it
    /// can be, else a depthwise 1×1 convolution (a BatchNormalization on the input, after an add,
    /// after a clamped layer).
    pub(super) fn affine(&mut self, node: &NodeProto, a: &Act, mul: &[f64], add: &[f64]) -> Result<()> {
        let channels = mul.len();
        if let Some(p) = self.absorbing_producer(node, a, true) {
            // Through a depth-to-space, output channel o is the conv's channels k·C + o.
            let scale = |o: usize, w: &mut f32| *w = (*w as f64 * mul[o % channels]) as f32;
            let shift = |o: usize, b: &mut f32| *b = (*b as f64 * mul[o % channels] + add[o % channels]) as f32;
            match &mut self.nodes[p].op {
                OpKind::Conv(c) => {
                    for (o, mut row) in c.weight.outer_iter_mut().enumerate() {
                        row.iter_mut().for_each(|w| scale(o, w));
                    }
                    c.bias.iter_mut().enumerate().for_each(|(o, b)| shift(o, b));
                    check_finite_f32(c.weight.iter().chain(&c.bias), "the folded weights and bias")?;
                }
                OpKind::Fc(f) => {
                    for (o, mut row) in f.weight.outer_iter_mut().enumerate() {
                        row.iter_mut().for_each(|w| scale(o, w));
                    }
                    f.bias.iter_mut().enumerate().for_each(|(o, b)| shift(o, b));
                    check_finite_f32(f.weight.iter().chain(&f.bias), "the folded weights and bias")?;
                }
                other => bail!("internal error: cannot fold an affine op into '{}'", other.name()),
            }
            return self.set(node, Val::Act(a.clone()));
        }
        if let Layout::Flat(Some(_)) = a.layout {
            bail!("a per-channel affine op on a flattened, permuted feature map is not supported");
        }
        let weight = Array4::from_shape_fn((channels, 1, 1, 1), |(c, ..)| mul[c] as f32);
        let bias = Array1::from_iter(add.iter().map(|&v| v as f32));
        check_finite_f32(weight.iter().chain(&bias), "the affine op's scale and offset")?;
        let window = Window { kernel: [1, 1], stride: [1, 1], pads: [0; 4] };
        let op = OpKind::Conv(Conv { weight, bias, window, depthwise: true, clamp: Clamp::NONE });
        self.push_elementwise(node, a.clone(), op)
    }

    /// The product of two activations: `x · Sigmoid(x)` is SiLU and `x · HardSigmoid(x)` (with
    /// α = 1/6, β = 1/2) HardSwish, one table each; otherwise a product of equal shapes, or of a
    /// feature map and one value per channel (squeeze-and-excitation).
    pub(super) fn mul_activations(&mut self, node: &NodeProto, a: Act, b: Act) -> Result<()> {
        for (x, gate, gate_input) in [(&a, &b, 1), (&b, &a, 0)] {
            let Some(&p) = self.producer.get(&gate.id) else { continue };
            let gate_used_once = self.uses.get(&node.input[gate_input]).copied().unwrap_or(0) == 1;
            if !gate_used_once || self.nodes[p].inputs[0] != x.id {
                continue;
            }
            let fused = match &self.nodes[p].op {
                OpKind::Activation(Activation::Sigmoid) => Activation::Silu,
                OpKind::Activation(Activation::HardSigmoid { alpha, beta })
                    if (alpha - HARD_SWISH_ALPHA).abs() < 1e-6 && *beta == 0.5 =>
                {
                    Activation::HardSwish
                }
                _ => continue,
            };
            self.nodes[p].op = OpKind::Activation(fused);
            return self.set(node, Val::Act(gate.clone()));
        }
        let (la, lb) = (self.logical(&a), self.logical(&b));
        if la == lb {
            if !super::same_layout(&a.layout, &b.layout) {
                bail!("inputs are stored in different layouts");
            }
            let shape = self.values[a.id].shape.clone();
            return self.push(node, OpKind::Mul(Clamp::NONE), vec![a.id, b.id], shape, a.layout.clone());
        }
        // One value per channel of the other: its logical shape is the map's with every axis
        // but the channel's set to 1.
        let (map, gate) = if la.iter().product::<usize>() >= lb.iter().product() { (a, b) } else { (b, a) };
        let (lm, lg) = (self.logical(&map), self.logical(&gate));
        let channels = self.values[map.id].hwc().2;
        let channel_axis = (0..lm.len()).find(|&l| self.stored_axis(&map, l).ok().flatten() == Some(2));
        let per_channel = lg.len() == lm.len()
            && channel_axis
                .is_some_and(|ca| lg.iter().enumerate().all(|(l, &d)| d == if l == ca { channels } else { 1 }));
        if !per_channel || self.values[gate.id].elements() != channels {
            bail!("inputs of shapes {la:?} and {lb:?}: only equal shapes or one value per channel are supported");
        }
        let shape = self.values[map.id].shape.clone();
        self.push(node, OpKind::Mul(Clamp::NONE), vec![map.id, gate.id], shape, map.layout.clone())
    }
}
