//! The compile pipeline: import → calibrate → choose bits → quantize → plan → emit. Calibration
//! is done once and reused for every bit configuration (sensitivity analysis compiles many).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

use crate::data::{Dataset, RawData};
use crate::emit::{emit, Compiled};
use crate::ir::{Graph, InputTransform};
use crate::quantize::{activation_params, BitConfig, Calibration, RawKind};

/// A model ready to be compiled at any bit configuration.
pub struct Prepared {
    pub graph: Graph,
    pub raw: RawKind,
    pub transform: InputTransform,
    pub calibration: Calibration,
    /// Input moments per weight layer, for error-compensating rounding and bias correction below
    /// 8 bits.
    pub moments: Vec<Option<crate::gptq::InputMoments>>,
    /// Tensors whose channel ranges were equalized before calibration.
    pub equalized: Vec<crate::equalize::Equalized>,
}

/// Calibration samples used for the input moments (they cost a forward pass and a K×K product
/// per layer each). A fully connected layer sees one patch per sample, so its K × K moments need
/// well over K samples to be full rank: with 64, GPTQ fitted the noise of ResNet-8's 64-input
/// classifier, whose rounding then cost ~1.5× the held-out loss curvature it costs with all 1000
/// calibration samples.
const MOMENT_SAMPLES: usize = 1024;

pub fn progress_bar(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// The raw input kind a dataset implies.
pub fn raw_kind(data: &Dataset) -> RawKind {
    match data.x {
        RawData::U8(_) => RawKind::U8,
        RawData::I8(_) => RawKind::I8,
        RawData::F32(_) => RawKind::F32,
    }
}

/// The graph with a per-channel input transform `real[c] = x[c]·scale[c] + offset[c]` as its first
/// op (torchvision's `Normalize(mean, std)` after `ToTensor` is `scale = 1/(255·std)`,
/// `offset = −mean/std`): a depthwise 1×1 convolution over the raw input, which the compiled
/// model then takes as is (raw values are its real values: compile with the identity
/// transform). One value in either list applies to every channel. The weights are exact at any
/// bit width (one per channel, with its own scale); the cost is one pass over the input and a
/// second input-sized tensor in the arena. Folding the transform into the first convolution
/// instead would be wrong at its border: its zero padding is zero after the transform, which no
/// raw value maps to.
pub fn with_input_normalization(mut graph: Graph, scale: &[f32], offset: &[f32]) -> Result<Graph> {
    use crate::ir::{Clamp, Conv, Node, OpKind, Value, Window};
    let input = &graph.values[graph.input];
    let (h, w, c) = input.hwc();
    if !matches!(input.shape.len(), 1 | 3) {
        bail!(
            "a per-channel input transform needs an image or vector input; this model's input has shape {:?}",
            input.shape
        );
    }
    let per_channel = |v: &[f32], what: &str| -> Result<Vec<f32>> {
        match v.len() {
            0 => Ok(vec![if what == "--input-scale" { 1.0 } else { 0.0 }; c]),
            1 => Ok(vec![v[0]; c]),
            n if n == c => Ok(v.to_vec()),
            n => bail!("{what} gives {n} values; the model's input ({h}×{w}×{c}) has {c} channels"),
        }
    };
    let (scale, offset) = (per_channel(scale, "--input-scale")?, per_channel(offset, "--input-offset")?);
    if let Some(bad) = scale.iter().chain(&offset).find(|v| !v.is_finite()) {
        bail!("the input transform holds {bad}: every scale and offset must be finite");
    }
    if let Some(i) = scale.iter().position(|&v| v == 0.0) {
        bail!("--input-scale of channel {i} is 0: that channel would carry no information");
    }
    let normalized = graph.values.len();
    graph.values.push(Value { name: format!("{}_normalized", input.name), shape: input.shape.clone() });
    for node in &mut graph.nodes {
        node.inputs.iter_mut().filter(|v| **v == graph.input).for_each(|v| *v = normalized);
    }
    let outputs = std::iter::once(&mut graph.output).chain(graph.extra_outputs.iter_mut());
    outputs.filter(|v| **v == graph.input).for_each(|v| *v = normalized);
    let op = OpKind::Conv(Conv {
        weight: ndarray::Array4::from_shape_fn((c, 1, 1, 1), |(i, ..)| scale[i]),
        bias: ndarray::Array1::from(offset),
        window: Window { kernel: [1, 1], stride: [1, 1], pads: [0; 4] },
        depthwise: true,
        clamp: Clamp::NONE,
    });
    let node = Node { name: "input_normalization".into(), op, inputs: vec![graph.input], output: normalized };
    graph.nodes.insert(0, node);
    Ok(graph)
}

/// Real-valued calibration inputs in the runtime's NHWC order.
pub fn real_inputs(graph: &Graph, data: &Dataset, transform: InputTransform) -> Result<Vec<Vec<f32>>> {
    data.check_sample_len(graph.values[graph.input].elements())?;
    let hwc = graph.values[graph.input].hwc();
    Ok((0..data.len()).map(|i| graph.input_layout.to_nhwc(&data.real(i, transform), hwc)).collect())
}

/// The model format's limits that hold whatever the calibration and bit widths: operations and
/// the model name tensors by `u16` index, so at most [`hawq_runtime::format::MAX_TENSORS`]
/// (65,535) tensors; the op count is a `u16`; a tensor's H, W and C are `u16`. [`prepare`]
/// checks them first, so a model the format cannot hold fails before calibration runs.
pub fn check_format_limits(graph: &Graph) -> Result<()> {
    let limit = u16::MAX as usize;
    let tensors = graph.values.len();
    if tensors > hawq_runtime::format::MAX_TENSORS {
        bail!(
            "the model has {tensors} tensors; the model format names tensors by 16-bit index and holds at most {}",
            hawq_runtime::format::MAX_TENSORS
        );
    }
    if graph.nodes.len() > limit {
        bail!("the model has {} operations; the model format holds at most {limit}", graph.nodes.len());
    }
    let too_large = |v: &&crate::ir::Value| {
        let (h, w, c) = v.hwc();
        [h, w, c].into_iter().any(|d| d > limit)
    };
    if let Some(v) = graph.values.iter().find(too_large) {
        bail!(
            "tensor '{}' of shape {:?} has a dimension above {limit}, the most the model format holds",
            v.name,
            v.shape
        );
    }
    Ok(())
}

pub fn prepare(graph: Graph, calib: &Dataset, transform: InputTransform) -> Result<Prepared> {
    prepare_with(graph, calib, transform, true)
}

/// [`prepare`], with cross-layer range equalization (`crate::equalize`) on or off.
pub fn prepare_with(mut graph: Graph, calib: &Dataset, transform: InputTransform, equalize: bool) -> Result<Prepared> {
    check_format_limits(&graph)?;
    let inputs = real_inputs(&graph, calib, transform)?;
    let equalized = if equalize { crate::equalize::equalize(&mut graph, &inputs) } else { Vec::new() };
    let bar = progress_bar(inputs.len(), "calibrating");
    // One forward pass per sample serves both the calibration (every sample) and the moments
    // (every `step`-th sample).
    let step = inputs.len().div_ceil(MOMENT_SAMPLES).max(1);
    let (moments, observed) = crate::gptq::input_moments_visiting(&graph, &inputs, step, |s, values| {
        bar.inc(1);
        Calibration::observe(&graph, inputs.len(), s, values)
    });
    let calibration = Calibration::from_observations(&graph, inputs.len(), observed);
    bar.finish_and_clear();
    Ok(Prepared { raw: raw_kind(calib), graph, transform, calibration, moments, equalized })
}

impl Prepared {
    /// `‖Q_b(W_c) − W_c‖²` of each output channel of weight layer `node` with the quantizer
    /// compilation uses.
    pub fn weight_perturbation(&self, node: usize, bits: u8) -> Vec<f64> {
        crate::emit::weight_perturbation(&self.graph.nodes[node].op, self.moments[node].as_ref(), bits)
    }
}

pub fn compile(p: &Prepared, bits: &BitConfig) -> Result<Compiled> {
    let acts = activation_params(&p.graph, &p.calibration, bits, p.raw, p.transform)?;
    emit(&p.graph, &acts, &p.calibration.channel_means, &p.moments, bits, p.raw)
}

/// Compiles the refined graph of a configuration (`crate::refine`): `p`'s calibration and input
/// moments, the refined parameters and activation ranges, and the refined roundings pinned for
/// `emit`.
pub fn compile_refined(p: &Prepared, refined: &crate::refine::Refined, bits: &BitConfig) -> Result<Compiled> {
    for (i, rounding) in refined.roundings.iter().enumerate() {
        if let Some(r) = rounding {
            let op = &refined.graph.nodes[i].op;
            crate::emit::pin_rounding(op, p.moments[i].as_ref(), bits.weight_bits[i], r.clone());
        }
    }
    emit(&refined.graph, &refined.acts, &p.calibration.channel_means, &p.moments, bits, p.raw)
}

/// A per-layer bit configuration file (JSON): weight bits by layer (node) name, activation
/// bits by tensor name; unlisted layers and tensors take the defaults.
///
/// ```json
/// { "weight_bits": { "conv1": 8, "conv2": 4 }, "act_bits": { "conv2_out": 4 } }
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitsFile {
    #[serde(default)]
    pub weight_bits: HashMap<String, u8>,
    #[serde(default)]
    pub act_bits: HashMap<String, u8>,
}

impl BitsFile {
    pub fn load(path: &Path) -> Result<BitsFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        serde_json::from_str(&text).map_err(|e| anyhow!("{}: not a valid bit configuration: {e}", path.display()))
    }

    /// Applies the file on top of uniform defaults; unknown names and bad widths are errors.
    pub fn apply(&self, graph: &Graph, mut bits: BitConfig, path: &Path) -> Result<BitConfig> {
        for (name, &b) in &self.weight_bits {
            if ![2, 4, 8].contains(&b) {
                bail!("{}: layer '{name}': weight bits must be 2, 4 or 8, not {b}", path.display());
            }
            let i = graph
                .nodes
                .iter()
                .position(|n| &n.name == name && n.op.has_weights())
                .ok_or_else(|| anyhow!("{}: no layer with weights is named '{name}'", path.display()))?;
            bits.weight_bits[i] = b;
        }
        for (name, &b) in &self.act_bits {
            if ![4, 8].contains(&b) {
                bail!("{}: tensor '{name}': activation bits must be 4 or 8, not {b}", path.display());
            }
            let v = graph
                .values
                .iter()
                .position(|v| &v.name == name)
                .ok_or_else(|| anyhow!("{}: no tensor is named '{name}'", path.display()))?;
            bits.act_bits[v] = b;
        }
        Ok(bits)
    }
}

/// Compiles under an arena budget: the activation program bounds the bytes alive at each step,
/// which the planner can exceed slightly (fragmentation), so the bound is tightened by the
/// overshoot until the planned arena fits.
pub fn compile_allocation(
    p: &Prepared,
    allocation: &crate::allocate::Allocation,
    max_arena: Option<usize>,
) -> Result<(Compiled, BitConfig)> {
    let mut bits = allocation.bits.clone();
    let mut bound = max_arena;
    for _ in 0..16 {
        let compiled = compile(p, &bits)?;
        match (max_arena, bound) {
            (Some(max), Some(b)) if compiled.arena_bytes > max => {
                let tighter = b.saturating_sub(compiled.arena_bytes - max).max(1);
                bits.act_bits = crate::allocate::choose_activations(&p.graph, &allocation.activations, &bits, tighter)?;
                bound = Some(tighter);
            }
            _ => return Ok((compiled, bits)),
        }
    }
    bail!("could not fit the arena in {} bytes", max_arena.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{InputLayout, Node, OpKind, Value};

    /// `values` vectors of `c` values, each the reshape of the one before.
    fn reshapes(values: usize, c: usize) -> Graph {
        Graph {
            values: (0..values).map(|v| Value { name: format!("v{v}"), shape: vec![c] }).collect(),
            nodes: (1..values)
                .map(|v| Node { name: format!("r{v}"), op: OpKind::Reshape, inputs: vec![v - 1], output: v })
                .collect(),
            input: 0,
            output: values - 1,
            input_layout: InputLayout::Nhwc,
            extra_outputs: Vec::new(),
        }
    }

    #[test]
    fn format_limits_are_the_u16_index_and_dimensions() {
        assert!(check_format_limits(&reshapes(65_535, 4)).is_ok());
        let e = check_format_limits(&reshapes(65_536, 4)).unwrap_err().to_string();
        assert!(e.contains("65536 tensors") && e.contains("65535"), "{e}");
        assert!(check_format_limits(&reshapes(2, 65_535)).is_ok());
        let e = check_format_limits(&reshapes(2, 65_536)).unwrap_err().to_string();
        assert!(e.contains("tensor 'v0'") && e.contains("65535"), "{e}");
        // A rank-2 value is stored as 1 × 1 × (all its elements): their product must fit.
        let mut g = reshapes(2, 8);
        g.values[1].shape = vec![300, 300];
        let e = check_format_limits(&g).unwrap_err().to_string();
        assert!(e.contains("tensor 'v1'"), "{e}");
    }
}
