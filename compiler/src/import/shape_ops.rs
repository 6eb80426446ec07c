//! Operators that move activations' elements: Concat, Slice, Split, Gather, Resize / Upsample,
//! a constant Pad (folded into the Conv that reads it) and ConvTranspose (a 1×1 convolution into
//! one channel group per output phase, then depth-to-space).

use anyhow::{anyhow, bail, Result};
use ndarray::{Array1, Array4};

use super::{
    attr_f, attr_i, attr_ints, attr_s, axis_index, bounded_elements, check_finite_f32, integers, is_permutation,
    node_name, reshape_target, Act, Builder, Layout, Val,
};
use crate::ir::{Clamp, Conv, OpKind, Window};
use crate::onnx_proto::{AttributeProto, NodeProto};

impl Builder {
    /// The axis of the stored `(H, W, C)` that logical axis `l` of `a` is: 0, 1 or 2; `None` for
    /// the batch axis.
    pub(super) fn stored_axis(&self, a: &Act, l: usize) -> Result<Option<usize>> {
        Ok(match &a.layout {
            Layout::Spatial(p) => p[l].checked_sub(1),
            // Stored [N, L, C]: L is the one-row map's W.
            Layout::Seq(p) => p[l].checked_sub(1).map(|s| s + 1),
            Layout::Flat(None) => (l > 0).then_some(2),
            Layout::Flat(Some(_)) => bail!("the input is a flattened feature map stored in a permuted order"),
        })
    }

    /// A value shape of `like`'s form (a vector stays a vector) with stored extent `hwc`.
    fn shaped_like(&self, like: &Act, (h, w, c): (usize, usize, usize)) -> Vec<usize> {
        if self.values[like.id].shape.len() == 1 && h == 1 && w == 1 {
            vec![c]
        } else {
            vec![h, w, c]
        }
    }

    /// Registers an op whose output is `output` (one of `node`'s outputs, or an internal name).
    fn push_output(
        &mut self,
        node: &NodeProto,
        output: &str,
        op: OpKind,
        inputs: Vec<usize>,
        shape: Vec<usize>,
        layout: Layout,
    ) -> Result<()> {
        let mut named = node.clone();
        named.output = vec![output.to_string()];
        if named.name.is_empty() {
            named.name = node_name(node);
        }
        self.push(&named, op, inputs, shape, layout)
    }

    pub(super) fn concat(&mut self, node: &NodeProto) -> Result<()> {
        let parts: Vec<Act> = (0..node.input.len())
            .map(|i| {
                self.act(node, i).map_err(|e| anyhow!("{e} (a Concat of activations and constants is not supported)"))
            })
            .collect::<Result<_>>()?;
        let first = parts.first().ok_or_else(|| anyhow!("has no inputs"))?.clone();
        if parts.len() == 1 {
            return self.set(node, Val::Act(first));
        }
        let rank = self.logical(&first).len();
        let axis = axis_index(
            attr(node, "axis").map(|a| a.i).ok_or_else(|| anyhow!("attribute 'axis' missing"))?,
            rank,
            "attribute 'axis'",
        )?;
        if self.stored_axis(&first, axis)? != Some(2) {
            bail!(
                "Concat along axis {axis} of {:?} is not supported (only along the channel axis)",
                self.logical(&first)
            );
        }
        let (h, w, _) = self.values[first.id].hwc();
        let mut channels = 0;
        for p in &parts {
            if !super::same_layout(&p.layout, &first.layout) {
                bail!("inputs are stored in different layouts");
            }
            let (ph, pw, pc) = self.values[p.id].hwc();
            if (ph, pw) != (h, w) {
                bail!("inputs of shapes {:?} and {:?} do not concatenate", self.logical(&first), self.logical(p));
            }
            channels += pc;
        }
        let shape = self.shaped_like(&first, (h, w, channels));
        bounded_elements(&shape, "the output")?;
        let inputs = parts.iter().map(|p| p.id).collect();
        self.push(node, OpKind::Concat, inputs, shape, first.layout.clone())
    }

    /// Slice (starts/ends/axes/steps as inputs from opset 10, attributes before).
    pub(super) fn slice(&mut self, node: &NodeProto) -> Result<()> {
        let a = self.act(node, 0)?;
        let logical = self.logical(&a);
        let input_or_attr = |i: usize, name: &str| -> Result<Option<Vec<i64>>> {
            Ok(match self.optional_const(node, i)? {
                Some(c) => Some(integers(&c, name)?),
                None => attr_ints(node, name),
            })
        };
        let starts = input_or_attr(1, "starts")?.ok_or_else(|| anyhow!("'starts' missing"))?;
        let ends = input_or_attr(2, "ends")?.ok_or_else(|| anyhow!("'ends' missing"))?;
        let axes = input_or_attr(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = match self.optional_const(node, 4)? {
            Some(c) => integers(&c, "steps")?,
            None => vec![1; starts.len()],
        };
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            bail!("starts, ends, axes and steps have different lengths");
        }
        let mut ranges: Vec<(usize, usize, usize)> = logical.iter().map(|&d| (0, d, 1)).collect();
        for k in 0..starts.len() {
            let axis = axis_index(axes[k], logical.len(), "the axes")?;
            let dim = logical[axis] as i64;
            if steps[k] < 1 {
                bail!("step {} on axis {axis} is not supported (only positive steps)", steps[k]);
            }
            let clampi = |v: i64| if v < 0 { (v + dim).max(0) } else { v.min(dim) };
            let (s, e) = (clampi(starts[k]), clampi(ends[k]));
            let count = if e > s { (e - s + steps[k] - 1) / steps[k] } else { 0 };
            if count == 0 {
                bail!("the slice of axis {axis} is empty");
            }
            ranges[axis] = (s as usize, count as usize, steps[k] as usize);
        }
        let out = node.output.first().ok_or_else(|| anyhow!("has no output"))?.clone();
        self.push_slice(node, &out, &a, &ranges)
    }

    /// A slice of `a` given per logical axis as `(start, count, step)`, written to `output`.
    fn push_slice(&mut self, node: &NodeProto, output: &str, a: &Act, ranges: &[(usize, usize, usize)]) -> Result<()> {
        let logical = self.logical(a);
        let (h, w, c) = self.values[a.id].hwc();
        let mut begin = [0; 3];
        let mut step = [1; 3];
        let mut extent = [h, w, c];
        for (l, &(start, count, st)) in ranges.iter().enumerate() {
            match self.stored_axis(a, l)? {
                None if (start, count) != (0, logical[l]) => bail!("slicing the batch axis is not supported"),
                None => {}
                Some(s) => {
                    begin[s] = start;
                    step[s] = st;
                    extent[s] = count;
                }
            }
        }
        let out_hwc = (extent[0], extent[1], extent[2]);
        if out_hwc == (h, w, c) {
            let mut alias = node.clone();
            alias.output = vec![output.to_string()];
            return self.set(&alias, Val::Act(a.clone()));
        }
        let shape = self.shaped_like(a, out_hwc);
        self.push_output(node, output, OpKind::Slice { begin, step }, vec![a.id], shape, a.layout.clone())
    }

    /// Split into slices along one axis: sizes from input 1 (opset 13+), the `split` attribute,
    /// or equal parts (`num_outputs`, opset 18).
    pub(super) fn split(&mut self, node: &NodeProto) -> Result<()> {
        let a = self.act(node, 0)?;
        let logical = self.logical(&a);
        let axis = axis_index(attr_i(node, "axis", 0), logical.len(), "attribute 'axis'")?;
        let dim = logical[axis];
        let n = node.output.len();
        let sizes: Vec<usize> = match self.optional_const(node, 1)? {
            Some(c) => integers(&c, "the split")?.iter().map(|&v| v.max(0) as usize).collect(),
            None => match attr_ints(node, "split") {
                Some(s) => s.iter().map(|&v| v.max(0) as usize).collect(),
                None => {
                    let part = dim.div_ceil(n.max(1));
                    (0..n).map(|k| part.min(dim.saturating_sub(k * part))).collect()
                }
            },
        };
        if sizes.len() != n || sizes.iter().sum::<usize>() != dim || sizes.contains(&0) {
            bail!("split sizes {sizes:?} do not divide axis {axis} of size {dim} into {n} outputs");
        }
        let mut start = 0;
        for (k, &size) in sizes.iter().enumerate() {
            let output = node.output[k].clone();
            if !output.is_empty() {
                let mut ranges: Vec<(usize, usize, usize)> = logical.iter().map(|&d| (0, d, 1)).collect();
                ranges[axis] = (start, size, 1);
                self.push_slice(node, &output, &a, &ranges)?;
            }
            start += size;
        }
        Ok(())
    }

    /// Gather of one index along a non-batch axis (`x[:, :, -1]`): a slice, then the axis
    /// removed (for a scalar index) as a Squeeze would.
    pub(super) fn gather(&mut self, node: &NodeProto) -> Result<()> {
        let a = self.act(node, 0)?;
        let logical = self.logical(&a);
        let axis = axis_index(attr_i(node, "axis", 0), logical.len(), "attribute 'axis'")?;
        let idx = self.konst(node, 1)?;
        let picks = integers(&idx, "the indices")?;
        let [i] = picks.as_slice() else {
            bail!("Gather of {} indices on an activation is not supported (only one)", picks.len());
        };
        let dim = logical[axis];
        let at = axis_index(*i, dim, "the index")
            .map_err(|_| anyhow!("index {i} is out of range for axis {axis} of size {dim}"))?;
        let mut ranges: Vec<(usize, usize, usize)> = logical.iter().map(|&d| (0, d, 1)).collect();
        ranges[axis] = (at, 1, 1);
        let out = node.output.first().ok_or_else(|| anyhow!("has no output"))?.clone();
        if idx.ndim() > 0 {
            return self.push_slice(node, &out, &a, &ranges);
        }
        let kept = format!("{out}::kept");
        self.push_slice(node, &kept, &a, &ranges)?;
        self.uses.insert(kept.clone(), 1);
        let squeeze = NodeProto {
            op_type: "Squeeze".into(),
            name: node_name(node),
            input: vec![kept],
            output: node.output.clone(),
            attribute: vec![AttributeProto { name: "axes".into(), ints: vec![axis as i64], ..Default::default() }],
            ..Default::default()
        };
        self.reshape(&squeeze)
    }

    /// Resize (opset 10+) and Upsample (opsets 7–9) with mode `nearest` and integer factors on
    /// the spatial axes, checked to pick the source pixel `⌊y / f⌋` for every output pixel under
    /// the node's coordinate transformation and rounding.
    pub(super) fn resize(&mut self, node: &NodeProto, opset: i64) -> Result<()> {
        let a = self.act(node, 0)?;
        let logical = self.logical(&a);
        let mode = attr_s(node, "mode").unwrap_or_else(|| "nearest".into());
        if mode != "nearest" {
            bail!("mode '{mode}' is not supported (only 'nearest')");
        }
        let scales_input = if node.op_type == "Upsample" || opset < 11 { 1 } else { 2 };
        let scales: Vec<f64> = match self.optional_const(node, scales_input)?.filter(|c| !c.is_empty()) {
            Some(c) => c.iter().copied().collect(),
            None => match (self.optional_const(node, 3)?.filter(|c| !c.is_empty()), attr(node, "scales")) {
                (Some(sizes), _) => sizes.iter().zip(&logical).map(|(&s, &d)| s / d as f64).collect(),
                (None, Some(a)) => a.floats.iter().map(|&f| f as f64).collect(),
                (None, None) => bail!("neither scales nor sizes are given"),
            },
        };
        if scales.len() != logical.len() {
            bail!("{} scales for a rank-{} input", scales.len(), logical.len());
        }
        // Before opset 11, Resize and Upsample take the source pixel ⌊y / f⌋.
        let (transform, rounding) = if node.op_type == "Upsample" || opset < 11 {
            ("asymmetric".to_string(), "floor".to_string())
        } else {
            (
                attr_s(node, "coordinate_transformation_mode").unwrap_or_else(|| "half_pixel".into()),
                attr_s(node, "nearest_mode").unwrap_or_else(|| "round_prefer_floor".into()),
            )
        };
        let (h, w, c) = self.values[a.id].hwc();
        let mut factor = [1usize; 2];
        for (l, &s) in scales.iter().enumerate() {
            let f = s.round();
            if (s - f).abs() > 1e-6 || !(1.0..=64.0).contains(&f) {
                bail!("scale {s} on axis {l} is not supported (only integer upsampling factors up to 64)");
            }
            match self.stored_axis(&a, l)? {
                Some(axis @ (0 | 1)) => factor[axis] = f as usize,
                _ if f == 1.0 => {}
                _ => bail!("scale {s} on axis {l} is not supported (only the spatial axes are resized)"),
            }
        }
        for (axis, &n) in [h, w].iter().enumerate() {
            let f = factor[axis];
            for y in 0..n * f {
                let src = nearest_source(y, f, n, &transform, &rounding)?;
                if src != y / f {
                    bail!(
                        "coordinate_transformation_mode '{transform}' with nearest_mode '{rounding}' maps output \
                         {y} to input {src}, not {}; only a plain nearest upsampling is supported",
                        y / f
                    );
                }
            }
        }
        if factor == [1, 1] {
            return self.set(node, Val::Act(a));
        }
        let shape = self.shaped_like(&a, (h * factor[0], w * factor[1], c));
        bounded_elements(&shape, "the output")?;
        self.push(node, OpKind::Resize(factor), vec![a.id], shape, a.layout.clone())
    }

    /// A constant zero Pad of the spatial axes, kept aside for the Conv that reads it.
    pub(super) fn pad(&mut self, node: &NodeProto) -> Result<()> {
        let a = self.act(node, 0)?;
        let logical = self.logical(&a);
        let mode = attr_s(node, "mode").unwrap_or_else(|| "constant".into());
        if mode != "constant" {
            bail!("mode '{mode}' is not supported (only 'constant')");
        }
        let pads = match self.optional_const(node, 1)? {
            Some(c) => integers(&c, "the pads")?,
            None => attr_ints(node, "pads").or_else(|| attr_ints(node, "paddings")).unwrap_or_default(),
        };
        let value = match self.optional_const(node, 2)?.filter(|c| !c.is_empty()) {
            Some(c) => c.iter().next().copied().unwrap_or(0.0),
            None => attr_f(node, "value", 0.0) as f64,
        };
        if value != 0.0 {
            bail!("constant value {value} is not supported (only 0, which a Conv's padding is)");
        }
        let axes: Vec<usize> = match self.optional_const(node, 3)? {
            Some(c) => integers(&c, "the axes")?
                .iter()
                .map(|&x| axis_index(x, logical.len(), "the axes"))
                .collect::<Result<_>>()?,
            None => (0..logical.len()).collect(),
        };
        if pads.len() != 2 * axes.len() {
            bail!("{} pads for {} axes", pads.len(), axes.len());
        }
        let mut spatial = [0usize; 4];
        for (k, &l) in axes.iter().enumerate() {
            let (begin, end) = (pads[k], pads[k + axes.len()]);
            if begin < 0 || end < 0 {
                bail!("negative pads {pads:?} (cropping) are not supported");
            }
            if begin == 0 && end == 0 {
                continue;
            }
            match self.stored_axis(&a, l)? {
                Some(s @ (0 | 1)) => {
                    spatial[s] = begin as usize;
                    spatial[s + 2] = end as usize;
                }
                _ => bail!("padding axis {l} is not supported (only the spatial axes)"),
            }
        }
        let out = node.output.first().ok_or_else(|| anyhow!("has no output"))?.clone();
        self.pending_pads.insert(out, (a, spatial));
        Ok(())
    }

    /// ConvTranspose (group 1, no dilation, a square stride `s`) as a sub-pixel convolution:
    /// output row `m·s + r` of the uncropped transposed convolution is
    /// `Σ_t x[m − t]·w[r + t·s]` over `t < T = ⌈k/s⌉` (the kernel padded with zeros to `T·s`),
    /// a stride-1 convolution with the flipped `T×T` kernel over the input padded by `T − 1`,
    /// one group of output channels per phase `(r_h, r_w)`; depth-to-space interleaves the
    /// phases, and a slice crops `pads` and keeps `output_padding` (rows past the
    /// transposed convolution's own are its bias, as ONNX defines them). A kernel equal to its
    /// stride without padding is a 1×1 convolution and depth-to-space alone.
    pub(super) fn conv_transpose(&mut self, node: &NodeProto) -> Result<()> {
        let (a, seq, _) = self.windowed_input(node)?;
        if seq {
            bail!("1-D ConvTranspose is not supported");
        }
        let w = self.konst(node, 1)?;
        let bias = self.optional_const(node, 2)?;
        if w.ndim() != 4 {
            bail!("weight has rank {}; expected [C, O, kH, kW]", w.ndim());
        }
        let (cin, oc, kh, kw) = (w.shape()[0], w.shape()[1], w.shape()[2], w.shape()[3]);
        let (h, wd, c) = self.values[a.id].hwc();
        if attr_i(node, "group", 1) != 1 {
            bail!("attribute 'group' = {} is not supported (only 1)", attr_i(node, "group", 1));
        }
        if cin != c {
            bail!("weight expects {cin} input channels, the input has {c}");
        }
        if kh == 0 || kw == 0 {
            bail!("kernel {kh}x{kw} is empty");
        }
        let stride = super::spatial_attr(node, "strides", Some([1, 1]))?;
        let unit = |name: &str, v: i64| attr_ints(node, name).is_none_or(|p| p.iter().all(|&x| x == v));
        if stride[0] != stride[1] || stride[0] == 0 || !unit("dilations", 1) {
            bail!(
                "strides {stride:?}, dilations {:?}: only a square stride without dilation is supported",
                attr_ints(node, "dilations").unwrap_or_default()
            );
        }
        if let Some(auto) = attr_s(node, "auto_pad").filter(|s| s != "NOTSET" && s != "VALID") {
            bail!("attribute 'auto_pad' = '{auto}' is not supported");
        }
        if attr_ints(node, "output_shape").is_some() {
            bail!("attribute 'output_shape' is not supported (give pads and output_padding)");
        }
        let pads = match attr_ints(node, "pads") {
            None => [0; 4],
            Some(p) if p.len() == 4 && p.iter().all(|&x| (0..1 << 16).contains(&x)) => {
                [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
            }
            Some(p) => bail!("pads {p:?}: expected four non-negative values"),
        };
        let out_pad = match attr_ints(node, "output_padding") {
            None => [0; 2],
            Some(p) if p.len() == 2 && p.iter().all(|&x| (0..stride[0] as i64).contains(&x)) => {
                [p[0] as usize, p[1] as usize]
            }
            Some(p) => bail!("output_padding {p:?}: expected two values below the stride"),
        };
        let s = stride[0];
        let (th, tw) = (kh.div_ceil(s), kw.div_ceil(s));
        // The uncropped output: (H + T − 1)·s rows, of which the transposed convolution's own
        // are the first (H − 1)·s + k.
        let (full_h, full_w) = ((h + th - 1) * s, (wd + tw - 1) * s);
        let out_h = ((h - 1) * s + kh + out_pad[0]).checked_sub(pads[0] + pads[2]);
        let out_w = ((wd - 1) * s + kw + out_pad[1]).checked_sub(pads[1] + pads[3]);
        let (Some(out_h), Some(out_w)) = (out_h, out_w) else {
            bail!("pads {pads:?} leave no output of a {h}x{wd} input");
        };
        if out_h == 0 || out_w == 0 || pads[0] + out_h > full_h || pads[1] + out_w > full_w {
            bail!("pads {pads:?} and output_padding {out_pad:?} leave no output or reach past it");
        }
        let phases = s * s * oc;
        bounded_elements(&[h + th - 1, wd + tw - 1, phases], "the output")?;
        // Channel (r_h·s + r_w)·O + o of the convolution is output channel o at phase
        // (r_h, r_w); its tap (u, v) reads x[m − (T − 1 − u)], weight tap r + (T − 1 − u)·s.
        let weight = Array4::from_shape_fn((phases, th, tw, c), |(k, u, v, ci)| {
            let (phase, o) = (k / oc, k % oc);
            let (ah, aw) = (phase / s + (th - 1 - u) * s, phase % s + (tw - 1 - v) * s);
            if ah < kh && aw < kw {
                w[[ci, o, ah, aw].as_slice()] as f32
            } else {
                0.0
            }
        });
        let bias = match bias {
            Some(v) if v.len() == oc => Array1::from_shape_fn(phases, |k| v[[k % oc].as_slice()] as f32),
            Some(v) => bail!("bias has {} values for {oc} output channels", v.len()),
            None => Array1::zeros(phases),
        };
        check_finite_f32(weight.iter().chain(&bias), "the weight and bias")?;
        let out = node.output.first().ok_or_else(|| anyhow!("has no output"))?.clone();
        let window = Window { kernel: [th, tw], stride: [1, 1], pads: [th - 1, tw - 1, th - 1, tw - 1] };
        let conv = OpKind::Conv(Conv { weight, bias, window, depthwise: false, clamp: Clamp::NONE });
        let layout = a.layout.clone();
        let (conv_h, conv_w) = (h + th - 1, wd + tw - 1);
        self.push_output(
            node,
            &format!("{out}::phases"),
            conv,
            vec![a.id],
            vec![conv_h, conv_w, phases],
            layout.clone(),
        )?;
        let phases_id = self.values.len() - 1;
        if (pads, out_h, out_w) == ([0; 4], full_h, full_w) {
            return self.push(node, OpKind::DepthToSpace(s), vec![phases_id], vec![full_h, full_w, oc], layout);
        }
        let d2s = OpKind::DepthToSpace(s);
        self.push_output(
            node,
            &format!("{out}::uncropped"),
            d2s,
            vec![phases_id],
            vec![full_h, full_w, oc],
            layout.clone(),
        )?;
        let full_id = self.values.len() - 1;
        let crop = OpKind::Slice { begin: [pads[0], pads[1], 0], step: [1, 1, 1] };
        self.push(node, crop, vec![full_id], vec![out_h, out_w, oc], layout)
    }
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    super::attr(node, name)
}

/// The input index ONNX's Resize reads for output coordinate `y` (nearest mode) of an axis of
/// `n` inputs upsampled `f` times.
fn nearest_source(y: usize, f: usize, n: usize, transform: &str, rounding: &str) -> Result<usize> {
    let (y, fl, nf) = (y as f64, f as f64, (n * f) as f64);
    let x = match transform {
        "half_pixel" => (y + 0.5) / fl - 0.5,
        "pytorch_half_pixel" if nf > 1.0 => (y + 0.5) / fl - 0.5,
        "pytorch_half_pixel" => 0.0,
        "asymmetric" => y / fl,
        "align_corners" if nf > 1.0 => y * (n as f64 - 1.0) / (nf - 1.0),
        "align_corners" => 0.0,
        "tf_half_pixel_for_nn" => (y + 0.5) / fl,
        other => bail!("coordinate_transformation_mode '{other}' is not supported"),
    };
    let frac = x - x.floor();
    let r = match rounding {
        "round_prefer_floor" if frac == 0.5 => x.floor(),
        "round_prefer_ceil" if frac == 0.5 => x.ceil(),
        "round_prefer_floor" | "round_prefer_ceil" => x.round(),
        "floor" => x.floor(),
        "ceil" => x.ceil(),
        other => bail!("nearest_mode '{other}' is not supported"),
    };
    Ok(r.clamp(0.0, n as f64 - 1.0) as usize)
}

/// A rank-5 view of a map on its way to a nearest upsampling along one axis: Keras 3's
/// UpSampling2D (`ops.repeat` per axis), which tf2onnx writes as an Unsqueeze (a unit axis after
/// the repeated one), a Tile of that axis, maybe a Transpose, and a Reshape merging the two.
#[derive(Debug, Clone)]
pub(super) struct Repeat {
    x: Act,
    /// For each rank-5 axis, the axis of `x` it is, or `None` for the new one.
    axes: Vec<Option<usize>>,
    shape: Vec<usize>,
    factor: usize,
}

impl Builder {
    /// The Unsqueeze that starts a [`Repeat`].
    pub(super) fn start_repeat(&mut self, node: &NodeProto, x: Act, logical: &[usize]) -> Result<()> {
        let axes = self.axes(node)?;
        let [k] = axes.as_slice() else { bail!("an Unsqueeze to rank 5 of several axes is not supported") };
        let k = axis_index(*k, 5, "axis")?;
        let mut from: Vec<Option<usize>> = (0..4).map(Some).collect();
        from.insert(k, None);
        let mut shape = logical.to_vec();
        shape.insert(k, 1);
        let out = node.output.first().ok_or_else(|| anyhow!("has no output"))?.clone();
        self.pending_repeats.insert(out, Repeat { x, axes: from, shape, factor: 1 });
        Ok(())
    }

    /// The Tile, Transpose and Reshape of a [`Repeat`]; the Reshape makes it a nearest resize.
    pub(super) fn continue_repeat(&mut self, node: &NodeProto, mut r: Repeat) -> Result<()> {
        let out = node.output.first().ok_or_else(|| anyhow!("has no output"))?.clone();
        match node.op_type.as_str() {
            "Tile" => {
                let reps = integers(&self.konst(node, 1)?, "the repeats")?;
                if reps.len() != 5 {
                    bail!("{} repeats for a rank-5 tensor", reps.len());
                }
                for (i, &n) in reps.iter().enumerate() {
                    match r.axes[i] {
                        None if (1..=64).contains(&n) && r.factor == 1 => r.factor = n as usize,
                        _ if n == 1 => {}
                        _ => bail!("repeats {reps:?}: only the axis an Unsqueeze added may repeat (up to 64 times)"),
                    }
                    r.shape[i] *= n as usize;
                }
            }
            "Transpose" => {
                let perm = attr_ints(node, "perm").ok_or_else(|| anyhow!("attribute 'perm' missing"))?;
                if !is_permutation(&perm, 5) {
                    bail!("attribute 'perm' {perm:?} is not a permutation of the 5 axes");
                }
                r.axes = perm.iter().map(|&p| r.axes[p as usize]).collect();
                r.shape = perm.iter().map(|&p| r.shape[p as usize]).collect();
            }
            "Reshape" => return self.end_repeat(node, r),
            op => bail!("{op} of a rank-5 Unsqueeze is not supported (only Tile, Transpose and Reshape to rank 4)"),
        }
        self.pending_repeats.insert(out, r);
        Ok(())
    }

    /// A Reshape merging the new axis into the one before it: each element of that axis
    /// repeated `factor` times, a nearest resize of `x` by `factor` along it.
    fn end_repeat(&mut self, node: &NodeProto, r: Repeat) -> Result<()> {
        let target = reshape_target(&r.shape, &integers(&self.konst(node, 1)?, "the shape")?)?;
        let n = r.axes.iter().position(Option::is_none).unwrap_or(0);
        let Layout::Spatial(p) = r.x.layout else { bail!("internal error: a repeat of a non-map") };
        let repeated = match r.axes.get(n.wrapping_sub(1)) {
            Some(&Some(l)) if n > 0 && (p[l] == 1 || p[l] == 2) => l,
            _ => bail!("the repeated axis must directly follow a spatial axis of the map"),
        };
        let mut merged = r.shape.clone();
        let new_axis = merged.remove(n);
        merged[n - 1] *= new_axis;
        if target != merged {
            bail!("reshape of {:?} to {target:?} does not merge the repeated axis into its neighbour", r.shape);
        }
        let order: Vec<usize> = r.axes.iter().flatten().copied().collect();
        let q = [p[order[0]], p[order[1]], p[order[2]], p[order[3]]];
        if q[0] != 0 {
            bail!("the repeat moves the batch axis");
        }
        let mut factor = [1, 1];
        factor[p[repeated] - 1] = r.factor;
        let (h, w, c) = self.values[r.x.id].hwc();
        let shape = vec![h * factor[0], w * factor[1], c];
        bounded_elements(&shape, "the output")?;
        if factor == [1, 1] {
            return self.set(node, Val::Act(Act { id: r.x.id, layout: Layout::Spatial(q) }));
        }
        self.push(node, OpKind::Resize(factor), vec![r.x.id], shape, Layout::Spatial(q))
    }
}
