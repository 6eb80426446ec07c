//! Builds small ONNX models in test code: a valid base model to mutate, and helpers for
//! initializers, nodes and attributes. Shared by the malformed-model tests and the fuzz seeds.

#![allow(dead_code)] // each test binary uses a different part

use hawq_compiler::onnx_proto::{
    data_type, AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto,
};
use prost::Message;

pub fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto {
                    dim: dims.iter().map(|&d| Dimension { dim_value: Some(d), dim_param: None }).collect(),
                }),
            }),
        }),
    }
}

pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 7, ints: v.to_vec(), ..Default::default() }
}

pub fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 2, i: v, ..Default::default() }
}

pub fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 1, f: v, ..Default::default() }
}

pub fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: 3, s: v.as_bytes().to_vec(), ..Default::default() }
}

/// A float initializer.
pub fn tensor(name: &str, dims: &[i64], values: Vec<f32>) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: data_type::FLOAT,
        float_data: values,
        name: name.into(),
        ..Default::default()
    }
}

/// An int64 initializer (shapes, axes, indices).
pub fn tensor_i64(name: &str, dims: &[i64], values: Vec<i64>) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: data_type::INT64,
        int64_data: values,
        name: name.into(),
        ..Default::default()
    }
}

fn node_proto(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: name.into(),
        op_type: op.into(),
        attribute: attrs,
        ..Default::default()
    }
}

pub struct Model {
    pub graph: GraphProto,
    /// The default domain's opset (13 unless set).
    pub opset: i64,
}

impl Model {
    /// A graph reading `input` of shape `dims`, with no nodes yet.
    pub fn new(input: &str, dims: &[i64]) -> Model {
        Model { graph: GraphProto { input: vec![value_info(input, dims)], ..Default::default() }, opset: 13 }
    }

    /// The base model the mutations start from, valid for the digits example's 1×8×8 inputs:
    /// `x → conv (3×3, pad 1, 2 channels) → BatchNormalization → Relu → MaxPool 2×2 → Flatten →
    /// Gemm (10 classes) → logits`.
    pub fn base() -> Model {
        Model::new("x", &[1, 1, 8, 8])
            .init(tensor("w", &[2, 1, 3, 3], (0..18).map(|i| (i as f32 - 9.0) / 20.0).collect()))
            .init(tensor("b", &[2], vec![0.1, -0.1]))
            .init(tensor("bn_scale", &[2], vec![1.0, 0.5]))
            .init(tensor("bn_bias", &[2], vec![0.0, 0.2]))
            .init(tensor("bn_mean", &[2], vec![0.1, 0.0]))
            .init(tensor("bn_var", &[2], vec![1.0, 2.0]))
            .init(tensor("fc_w", &[10, 32], (0..320).map(|i| ((i * 7) % 13) as f32 / 13.0 - 0.5).collect()))
            .init(tensor("fc_b", &[10], vec![0.0; 10]))
            .node("Conv", "conv", &["x", "w", "b"], &["c"], vec![ints("pads", &[1, 1, 1, 1])])
            .node("BatchNormalization", "bn", &["c", "bn_scale", "bn_bias", "bn_mean", "bn_var"], &["n"], vec![])
            .node("Relu", "relu", &["n"], &["r"], vec![])
            .node("MaxPool", "pool", &["r"], &["p"], vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])])
            .node("Flatten", "flatten", &["p"], &["f"], vec![])
            .node("Gemm", "fc", &["f", "fc_w", "fc_b"], &["logits"], vec![int("transB", 1)])
            .output("logits", &[1, 10])
    }

    pub fn init(mut self, t: TensorProto) -> Model {
        self.graph.initializer.retain(|i| i.name != t.name);
        self.graph.initializer.push(t);
        self
    }

    pub fn node(
        mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> Model {
        self.graph.node.push(node_proto(op, name, inputs, outputs, attrs));
        self
    }

    /// Inserts a node before the node named `before`.
    pub fn node_before(
        mut self,
        before: &str,
        op: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> Model {
        let at = self.graph.node.iter().position(|n| n.name == before).expect("node to insert before");
        self.graph.node.insert(at, node_proto(op, name, inputs, outputs, attrs));
        self
    }

    pub fn output(mut self, name: &str, dims: &[i64]) -> Model {
        self.graph.output.push(value_info(name, dims));
        self
    }

    /// The node named `name`, to mutate.
    pub fn node_mut(&mut self, name: &str) -> &mut NodeProto {
        self.graph.node.iter_mut().find(|n| n.name == name).expect("node exists")
    }

    /// Sets (or replaces) an attribute of the node named `node`.
    pub fn attr(mut self, node: &str, a: AttributeProto) -> Model {
        let n = self.node_mut(node);
        n.attribute.retain(|x| x.name != a.name);
        n.attribute.push(a);
        self
    }

    /// Renames input `index` of the node named `node` (to splice a new node in front of it).
    pub fn rewire(mut self, node: &str, index: usize, to: &str) -> Model {
        self.node_mut(node).input[index] = to.into();
        self
    }

    pub fn opset(mut self, version: i64) -> Model {
        self.opset = version;
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        ModelProto {
            ir_version: 7,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: self.opset }],
            producer_name: "hawq tests".into(),
            producer_version: String::new(),
            graph: Some(self.graph.clone()),
        }
        .encode_to_vec()
    }
}
