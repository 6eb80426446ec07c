#!/usr/bin/env python3
"""Make the fidelity test models: the bundled digits CNN with the channel pathologies real
BatchNorm-folded models have and the project's own models did not.

Each variant is derived from examples/digits/model.onnx by editing its initializers, so it
needs no training and no torch (numpy + onnx only), and uses the digits data for calibration
and evaluation:

  dead-bn.onnx       extra channels with BatchNorm γ = 1e-30 in the first convolution, and with
                     weights of 1e-30 (γ already folded) in the last (the pattern of collapsed
                     channels in stock MobileNets/ResNets): after folding their weights are
                     ~1e-31 and their bias is β, a constant channel.
  zero-weights.onnx  extra channels whose weights are all zero, with large biases (one large
                     positive, one large negative), in the first and the last convolution.
The extra channels are read by zero weights downstream, so the float function is exactly the
digits model's.
  wide-channel.onnx  one channel of the last convolution with weights and bias 1000x the
                     others, compensated by 1/1000 in the classifier's column for it: the
                     float function is unchanged (ReLU, average pooling and the classifier are
                     positively homogeneous per channel), the activations' range is not.
  vanishing.onnx     every channel of the last convolution 1e-7 of itself, compensated by 1e7
                     in the classifier: activations of about ±1e-6, a step below the smallest
                     normal half-precision float (the model file's scales): int8 must stay
                     within a point of float, on the subnormal scales.
  vanished.onnx      the same at 1e-9: activations of ±3e-8, finer than the smallest scale the
                     model file holds (2^-24); the compile must fail and say so.

The test is that the int8 model stays
within one point of its own float model (compiler/tests/fidelity.rs).

Usage: python scripts/make_fidelity_models.py [--out compiler/tests/data/fidelity]
"""
import argparse
import os

import numpy as np
import onnx
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
DIGITS = os.path.join(HERE, "..", "examples", "digits", "model.onnx")


def initializers(model):
    return {t.name: t for t in model.graph.initializer}


def edit(model, name, fn):
    inits = initializers(model)
    arr = numpy_helper.to_array(inits[name]).copy()
    arr = fn(arr)
    inits[name].CopyFrom(numpy_helper.from_array(arr.astype(np.float32), name))


def widen(model, extra_conv1, extra_pw):
    """Appends output channels to conv1 (through bn1) and to pw, given as (weights, bias) or, for
    bn1, (gamma, beta); the layers that read them get zero columns for them, so the float
    function is exactly the digits model's."""
    inits = initializers(model)
    get = lambda n: numpy_helper.to_array(inits[n]).copy()

    def put(name, arr):
        inits[name].CopyFrom(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))

    w1, b1 = get("conv1.weight"), get("conv1.bias")
    g1, beta1, m1, v1 = (get(f"bn1.{k}") for k in ("weight", "bias", "running_mean", "running_var"))
    for w, b, gamma, beta in extra_conv1:
        w1 = np.concatenate([w1, np.asarray(w, np.float32).reshape(1, 1, 3, 3)])
        b1 = np.append(b1, b)
        g1, beta1, m1, v1 = np.append(g1, gamma), np.append(beta1, beta), np.append(m1, 0.0), np.append(v1, 1.0)
    w2 = get("conv2.weight")
    w2 = np.concatenate([w2, np.zeros((w2.shape[0], len(extra_conv1), 3, 3), np.float32)], axis=1)
    for name, arr in (("conv1.weight", w1), ("conv1.bias", b1), ("bn1.weight", g1), ("bn1.bias", beta1),
                      ("bn1.running_mean", m1), ("bn1.running_var", v1), ("conv2.weight", w2)):
        put(name, arr)

    wp, bp, wf = get("pw.weight"), get("pw.bias"), get("fc.weight")
    for w, b in extra_pw:
        wp = np.concatenate([wp, np.asarray(w, np.float32).reshape(1, -1, 1, 1)])
        bp = np.append(bp, b)
    wf = np.concatenate([wf, np.zeros((wf.shape[0], len(extra_pw)), np.float32)], axis=1)
    put("pw.weight", wp)
    put("pw.bias", bp)
    put("fc.weight", wf)
    return model


def dead_bn(model):
    rng = np.random.default_rng(11)
    conv1 = [(rng.normal(0, 0.5, 9), rng.normal(0, 0.3), 1e-30, beta) for beta in (2.0, 0.7, -1.0)]
    # The last conv has no BatchNorm in the graph: its dead channels are already folded, the
    # weights γ/σ·w ≈ 1e-30 and the bias β.
    pw = [(1e-30 * rng.normal(0, 1, 16), beta) for beta in (1.5, 0.4)]
    return widen(model, conv1, pw)


def zero_weights(model):
    conv1 = [(np.zeros(9), b, 1.0, 0.0) for b in (40.0, -40.0)]
    pw = [(np.zeros(16), b) for b in (3.0, -60.0)]
    return widen(model, conv1, pw)


def wide_channel(model):
    channel = 7

    def scale_rows(a):
        a[channel] *= 1000.0
        return a

    def scale_column(w):
        w[:, channel] /= 1000.0
        return w

    edit(model, "pw.weight", scale_rows)
    edit(model, "pw.bias", scale_rows)
    edit(model, "fc.weight", scale_column)
    return model


def shrunk(factor):
    # Every channel of the last convolution `factor` of itself, compensated in the classifier:
    # activations of a few times `factor`·10, as in a network that lost its batch-norm
    # statistics.
    def variant(model):
        edit(model, "pw.weight", lambda a: a * factor)
        edit(model, "pw.bias", lambda a: a * factor)
        edit(model, "fc.weight", lambda w: w / factor)
        return model

    return variant


VARIANTS = {
    "dead-bn": dead_bn,
    "zero-weights": zero_weights,
    "wide-channel": wide_channel,
    "vanishing": shrunk(1e-7),
    "vanished": shrunk(1e-9),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "..", "compiler", "tests", "data", "fidelity"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, fn in VARIANTS.items():
        model = fn(onnx.load(DIGITS))
        model.producer_name = "hawq-edge scripts/make_fidelity_models.py"
        onnx.checker.check_model(model)
        path = os.path.join(args.out, f"{name}.onnx")
        onnx.save(model, path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
