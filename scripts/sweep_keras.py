#!/usr/bin/env python3
"""Import-robustness sweep, Keras side: small Keras models of patterns users deploy on
microcontrollers and the Keras zoo (make_keras_zoo.py) lacks, trained briefly on the digits
(NHWC [N, 8, 8, 1], real = x / 16; `[N, 8, 8]` rows as time steps for Conv1D), each converted by
tf2onnx at opset 13 and at its newest opset, with onnxruntime's outputs on 8 eval samples and
onnxruntime's top-1 on the 500 eval samples beside them. Nothing here is committed but this
script; the findings became Rust-built test graphs in compiler/tests/keras_sweep.rs.

Outputs under --out (default /tmp/ksweep): <name>-opset<K>.onnx, <name>.ref.npz (x, and
opset<K>_out<i>: onnxruntime's i-th output per opset), <name>.json (Keras and onnxruntime top-1,
op types, conversion errors), calib.npz / eval.npz (the zoo split, uint8 [N, 1, 8, 8]; the same
element order as [N, 8, 8, 1] and [N, 8, 8]).

`--tabulate` then checks each export: `float_vs_reference` (compiler/examples: the importer and
float reference against onnxruntime's outputs), `hawq eval` of the .onnx (float_exec's top-1),
`hawq compile --bits 8` and `--bits 4` (the fidelity check), `hawq eval` of each .hq; it writes
<out>/table.md and <out>/table.json. Build both first:
  cargo build --release --bin hawq --example float_vs_reference

Needs tensorflow-cpu and tf2onnx besides scripts/requirements.txt (the sweep used
tensorflow-cpu 2.21.0 with keras 3.15.1, tf2onnx 1.17.0).

Usage: python scripts/sweep_keras.py [--out DIR] [--only NAME,...] [--epochs N]
       python scripts/sweep_keras.py --tabulate [--out DIR] [--only NAME,...] [--target DIR]
"""
import argparse
import json
import os
import random
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402
from tensorflow import keras  # noqa: E402
from tensorflow.keras import layers  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_keras_zoo import export  # noqa: E402
from zoo_data import SEED, finding, save_sweep_model, split  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
IMG = (8, 8, 1)
SEQ = (8, 8)


def inp(shape=IMG):
    return keras.Input(shape, name="input")


def gap_head(x):
    return layers.Dense(10)(layers.GlobalAveragePooling2D()(x))


def separable():
    x = i = inp()
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.SeparableConv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.SeparableConv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    return keras.Model(i, gap_head(x))


def dw_multiplier():
    x = i = inp()
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(24, 1, activation="relu")(x)
    return keras.Model(i, gap_head(x))


def inverted_residual():
    """MobileNetV2 blocks as keras.applications writes them: ReLU6 (ReLU(6.0)), a linear
    bottleneck, Add; the stride-2 block with ZeroPadding2D then a valid depthwise conv."""

    def block(x, expand, out, stride):
        cin = x.shape[-1]
        y = layers.ReLU(6.0)(layers.BatchNormalization()(layers.Conv2D(cin * expand, 1, use_bias=False)(x)))
        if stride == 2:
            y = layers.ZeroPadding2D(((0, 1), (0, 1)))(y)
        y = layers.DepthwiseConv2D(3, strides=stride, padding="same" if stride == 1 else "valid", use_bias=False)(y)
        y = layers.ReLU(6.0)(layers.BatchNormalization()(y))
        y = layers.BatchNormalization()(layers.Conv2D(out, 1, use_bias=False)(y))
        return layers.Add()([x, y]) if stride == 1 and cin == out else y

    x = i = inp()
    x = layers.ReLU(6.0)(layers.BatchNormalization()(layers.Conv2D(16, 3, padding="same", use_bias=False)(x)))
    x = block(x, 4, 16, 1)
    x = block(x, 4, 24, 2)
    x = block(x, 4, 24, 1)
    return keras.Model(i, gap_head(x))


def activation_net(act):
    def build():
        x = i = inp()
        x = layers.Activation(act)(layers.Conv2D(16, 3, padding="same")(x))
        x = layers.Activation(act)(layers.Conv2D(32, 3, strides=2, padding="same")(x))
        return keras.Model(i, gap_head(x))

    return build


def leaky_prelu():
    x = i = inp()
    x = layers.LeakyReLU(0.2)(layers.Conv2D(16, 3, padding="same")(x))
    x = layers.PReLU(shared_axes=[1, 2])(layers.Conv2D(32, 3, strides=2, padding="same")(x))
    return keras.Model(i, gap_head(x))


def prelu_full():
    """Keras' PReLU default: one slope per element ([H, W, C]), not per channel."""
    x = i = inp()
    x = layers.PReLU()(layers.Conv2D(16, 3, padding="same")(x))
    x = layers.ReLU()(layers.Conv2D(32, 3, strides=2, padding="same")(x))
    return keras.Model(i, gap_head(x))


def bn_standalone():
    """BatchNormalization on the input, after a pool before a conv, and before the Dense."""
    x = i = inp()
    x = layers.BatchNormalization()(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.BatchNormalization()(layers.GlobalAveragePooling2D()(x))
    return keras.Model(i, layers.Dense(10)(x))


def zeropad_valid():
    x = i = inp()
    x = layers.ZeroPadding2D(1)(x)
    x = layers.Conv2D(16, 3, activation="relu")(x)
    x = layers.ZeroPadding2D(((1, 0), (2, 1)))(x)
    x = layers.Conv2D(24, 3, strides=2, activation="relu")(x)
    x = layers.Cropping2D(((0, 1), (1, 0)))(x)
    x = layers.Conv2D(32, 2, activation="relu")(x)
    return keras.Model(i, gap_head(x))


def strided_same():
    """padding='same' where TensorFlow pads more at the bottom/right: stride 2 on an even map,
    even kernels."""
    x = i = inp()
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)  # 8 → 4, pads 0/1
    x = layers.Conv2D(24, 4, padding="same", activation="relu")(x)  # pads 1/2
    x = layers.Conv2D(32, 2, padding="same", activation="relu")(x)  # pads 0/1
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", activation="relu")(x)  # 4 → 2, pads 0/1
    return keras.Model(i, gap_head(x))


def pools_same():
    x = i = inp()
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.AveragePooling2D(3, strides=1, padding="same")(x)
    x = layers.Conv2D(24, 3, padding="same", activation="relu")(x)
    x = layers.AveragePooling2D(3, strides=2, padding="same")(x)  # 8 → 4, pads 0/1
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)  # 4 → 2
    return keras.Model(i, gap_head(x))


def global_max():
    x = i = inp()
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    return keras.Model(i, layers.Dense(10)(layers.GlobalMaxPooling2D()(x)))


def flatten_dense():
    """Flatten of an NHWC map into Dense: the columns are in H, W, C order."""
    x = i = inp()
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.Dense(32, activation="relu")(layers.Flatten()(x))
    return keras.Model(i, layers.Dense(10)(x))


def reshape_net():
    """Input flattened by Reshape into a Dense, reshaped back to a map for a conv."""
    x = i = inp()
    x = layers.Dense(64, activation="relu")(layers.Reshape((64,))(x))
    x = layers.Reshape((4, 4, 4))(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    return keras.Model(i, layers.Dense(10)(layers.Flatten()(x)))


def dropout_concat():
    x = i = inp()
    a = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    b = layers.Conv2D(8, 1, activation="relu")(x)
    x = layers.Dropout(0.3)(layers.Concatenate()([a, b]))
    x = layers.SpatialDropout2D(0.2)(layers.Conv2D(24, 3, strides=2, padding="same", activation="relu")(x))
    x = layers.Concatenate(axis=-1)([x, layers.MaxPooling2D(2)(a)])
    x = layers.Dropout(0.3)(layers.GlobalAveragePooling2D()(x))
    return keras.Model(i, layers.Dense(10)(x))


def upsampling(up):
    def build():
        x = i = inp()
        x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)  # 4x4
        x = up()(x)  # 8x8, nearest
        x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
        return keras.Model(i, gap_head(x))

    return build


def conv_transpose():
    x = i = inp()
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)  # 4x4
    x = layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu")(x)  # 8x8
    x = layers.Conv2DTranspose(8, 2, strides=2, activation="relu")(x)  # 16x16
    return keras.Model(i, gap_head(x))


def conv1d_causal():
    x = i = inp(SEQ)
    x = layers.Conv1D(16, 3, padding="causal", activation="relu")(x)
    x = layers.Conv1D(16, 3, padding="causal", dilation_rate=2, activation="relu")(x)
    x = layers.Conv1D(24, 2, padding="causal", dilation_rate=4, activation="relu")(x)
    return keras.Model(i, layers.Dense(10)(layers.GlobalAveragePooling1D()(x)))


def mlp_softmax():
    x = i = inp()
    x = layers.Dense(64, activation="relu")(layers.Flatten()(x))
    x = layers.Dense(32, activation="relu")(x)
    return keras.Model(i, layers.Dense(10, activation="softmax")(x))


def two_outputs():
    """A digit classifier and an 'is it even' head on one trunk."""
    x = i = inp()
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(i, [layers.Dense(10, name="digit")(x), layers.Dense(1, activation="sigmoid", name="even")(x)])


def se_block():
    """Keras-style squeeze-and-excitation: GAP, Reshape to [1, 1, C], Dense on the rank-4 map,
    Multiply."""
    x = i = inp()
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    s = layers.Reshape((1, 1, 32))(layers.GlobalAveragePooling2D()(x))
    s = layers.Dense(8, activation="relu")(s)
    s = layers.Dense(32, activation="sigmoid")(s)
    x = layers.Multiply()([x, s])
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    return keras.Model(i, gap_head(x))


# Adapted on the training set in main().
NORMALIZATION = None


def rescaling_input():
    """Raw pixels in: Rescaling and Normalization layers in the model (compiled with input
    scale 1)."""
    x = i = inp()
    x = layers.Rescaling(1 / 16.0, offset=-0.5)(x)
    x = NORMALIZATION(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    return keras.Model(i, gap_head(x))


def mobilenet_v2_app():
    """tf.keras.applications' MobileNetV2 at alpha 0.35, weights=None, on the digits scaled up
    to its smallest input (32x32x3) inside the model (nearest Resizing, a 1x1 Conv to 3
    channels)."""
    x = i = inp()
    x = layers.Resizing(32, 32, interpolation="nearest")(x)
    x = layers.Conv2D(3, 1)(x)
    net = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10,
                                         classifier_activation=None)
    # Its BatchNorm momentum, 0.999, leaves the moving statistics far from the data after a
    # few hundred steps.
    for layer in net.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = 0.9
    return keras.Model(i, net(x))


# name: (builder, input shape, input scale for hawq)
MODELS = {
    "separable": (separable, IMG, 0.0625),
    "dw-multiplier": (dw_multiplier, IMG, 0.0625),
    "inverted-residual": (inverted_residual, IMG, 0.0625),
    "hard-swish": (activation_net("hard_swish"), IMG, 0.0625),
    "swish": (activation_net("swish"), IMG, 0.0625),
    "gelu": (activation_net("gelu"), IMG, 0.0625),
    "gelu-tanh": (activation_net(lambda x: keras.activations.gelu(x, approximate=True)), IMG, 0.0625),
    "elu": (activation_net("elu"), IMG, 0.0625),
    "selu": (activation_net("selu"), IMG, 0.0625),
    "leaky-prelu": (leaky_prelu, IMG, 0.0625),
    "prelu-full": (prelu_full, IMG, 0.0625),
    "bn-standalone": (bn_standalone, IMG, 0.0625),
    "zeropad-valid": (zeropad_valid, IMG, 0.0625),
    "strided-same": (strided_same, IMG, 0.0625),
    "pools-same": (pools_same, IMG, 0.0625),
    "global-max": (global_max, IMG, 0.0625),
    "flatten-dense": (flatten_dense, IMG, 0.0625),
    "reshape": (reshape_net, IMG, 0.0625),
    "dropout-concat": (dropout_concat, IMG, 0.0625),
    "upsampling2d": (upsampling(lambda: layers.UpSampling2D(2)), IMG, 0.0625),
    "resizing-nearest": (upsampling(lambda: layers.Resizing(8, 8, interpolation="nearest")), IMG, 0.0625),
    "conv-transpose": (conv_transpose, IMG, 0.0625),
    "conv1d-causal": (conv1d_causal, SEQ, 0.0625),
    "mlp-softmax": (mlp_softmax, IMG, 0.0625),
    "two-outputs": (two_outputs, IMG, 0.0625),
    "se-block": (se_block, IMG, 0.0625),
    "rescaling-input": (rescaling_input, IMG, 1.0),
    "mobilenet-v2-app": (mobilenet_v2_app, IMG, 0.0625),
}


def real(x, shape, scale):
    return (x.astype(np.float32) * scale).reshape(len(x), *shape)


def ort_all(path, x):
    """Every output of onnxruntime, one sample at a time."""
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    # Keras 3's Normalization keeps its statistics as captured tensors, which tf2onnx lists as
    # further graph inputs though the graph reads its folded constants instead: fed zeros.
    unused = {i.name: np.zeros(i.shape, np.float32) for i in sess.get_inputs()[1:]}
    runs = [sess.run(None, {name: x[i:i + 1], **unused}) for i in range(len(x))]
    return [np.concatenate([r[k] for r in runs]) for k in range(len(runs[0]))]


def sh(*cmd):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def top1(hawq, model, data, scale=None):
    transform = [] if scale is None else ["--input-scale", scale]
    rc, out, err = sh(hawq, "eval", model, "--data", data, *transform, "--json")
    return json.loads(out)["value"] if rc == 0 else None


def tabulate(args, names):
    target = args.target or os.environ.get("CARGO_TARGET_DIR") or os.path.join(HERE, "..", "target")
    hawq, check = os.path.join(target, "release", "hawq"), os.path.join(target, "release", "examples",
                                                                        "float_vs_reference")
    calib, ev = os.path.join(args.out, "calib.npz"), os.path.join(args.out, "eval.npz")
    rows = []
    for name in names:
        with open(os.path.join(args.out, f"{name}.json")) as f:
            info = json.load(f)
        scale = info["input_scale"]
        # An export onnxruntime cannot run (tf2onnx's Erfc) is still imported, for the refusal.
        for kind in sorted(set(info["ort"]) | set(info["errors"])):
            path = os.path.join(args.out, f"{name}-{kind}.onnx")
            if not os.path.exists(path):
                continue
            row = {"model": name, "export": kind, "keras": info["keras"], "ort": info["ort"].get(kind),
                   "ort_error": info["errors"].get(kind)}
            _, out, err = sh(check, path, os.path.join(args.out, f"{name}.ref.npz"), kind)
            out = out.strip() or err.strip().splitlines()[-1]
            row["import"] = out
            if out.startswith("OK"):
                row["float_exec"] = top1(hawq, path, ev, scale)
                for bits in (8, 4):
                    hq = os.path.join(args.out, f"{name}-{kind}-w{bits}.hq")
                    rc, out, err = sh(hawq, "compile", path, "--calib", calib, "--input-scale", scale, "--bits", bits,
                                      "--output", hq)
                    row[f"w{bits}"] = top1(hawq, hq, ev) if rc == 0 else None
                    row[f"w{bits}_error"] = None if rc == 0 else (err.strip().splitlines() or ["?"])[-1]
            rows.append(row)
            print(json.dumps(row), flush=True)
    with open(os.path.join(args.out, "table.json"), "w") as f:
        json.dump(rows, f, indent=1)

    def pct(v):
        return "—" if v is None else f"{100 * v:.1f}"

    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write("| model | export | imports, float vs onnxruntime | fidelity 8 / 4 | onnxruntime top-1 | int8 | w4 |\n")
        f.write("|---|---|---|---|---:|---:|---:|\n")
        for r in rows:
            imp = r["import"]
            imp = imp.split("worst_rel=")[1].split()[0] if imp.startswith("OK") else "no: " + imp[:200]
            fid = " / ".join("—" if f"w{b}_error" not in r else ("ok" if r[f"w{b}_error"] is None else "FAIL")
                             for b in (8, 4))
            f.write(f"| {r['model']} | {r['export']} | {imp} | {fid} | {pct(r['ort'])} | {pct(r.get('w8'))} | "
                    f"{pct(r.get('w4'))} |\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/ksweep")
    ap.add_argument("--only")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--tabulate", action="store_true")
    ap.add_argument("--target", help="cargo's target folder [default: $CARGO_TARGET_DIR or ./target]")
    args = ap.parse_args()
    if args.tabulate:
        names = list(MODELS) if args.only is None else args.only.split(",")
        return tabulate(args, [n for n in names if os.path.exists(os.path.join(args.out, f"{n}.json"))])
    os.makedirs(args.out, exist_ok=True)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    newest = max(tf2onnx.constants.OPSET_TO_IR_VERSION)
    (x_tr, y_tr), (x_cal, y_cal), (x_ev, y_ev) = split()
    np.savez(os.path.join(args.out, "calib.npz"), x=x_cal, y=y_cal)
    np.savez(os.path.join(args.out, "eval.npz"), x=x_ev, y=y_ev)
    names = list(MODELS) if args.only is None else args.only.split(",")
    for name in names:
        build, shape, scale = MODELS[name]
        global NORMALIZATION
        NORMALIZATION = layers.Normalization()
        NORMALIZATION.adapt(real(x_tr, IMG, 1.0) / 16.0 - 0.5)
        random.seed(SEED)
        np.random.seed(SEED)
        keras.utils.set_random_seed(SEED)
        model = build()
        two = name == "two-outputs"
        softmax = name == "mlp-softmax"
        xt = real(x_tr, shape, scale)
        ce = keras.losses.SparseCategoricalCrossentropy(from_logits=not softmax)
        if two:
            model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=[ce, keras.losses.BinaryCrossentropy()])
            model.fit(xt, [y_tr, (y_tr % 2 == 0).astype(np.float32)], batch_size=64, epochs=args.epochs, verbose=0)
        else:
            model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=ce)
            # BatchNorm-heavy models need longer before their moving statistics settle.
            epochs = args.epochs * (3 if name in ("inverted-residual", "mobilenet-v2-app") else 1)
            model.fit(xt, y_tr, batch_size=64, epochs=epochs, shuffle=True, verbose=0)
        xe = real(x_ev, shape, scale)
        pred = model.predict(xe, verbose=0)
        keras_top1 = float(((pred[0] if two else pred).argmax(1) == y_ev).mean())
        info = {"name": name, "keras": keras_top1, "input_scale": scale, "ops": {}, "errors": {}, "ort": {}}
        refs = {"x": xe[:8]}
        for opset in (13, newest):
            kind = f"opset{opset}"
            path = os.path.join(args.out, f"{name}-{kind}.onnx")
            try:
                export(model, shape, path, opset)
                outs = ort_all(path, xe)
                info["ort"][kind] = float((outs[0].argmax(1) == y_ev).mean())
                for k, o in enumerate(outs):
                    refs[f"{kind}_out{k}"] = o[:8]
                m = onnx.load(path)
                info["ops"][kind] = sorted({n.op_type for n in m.graph.node})
            except Exception as e:  # a conversion failure is a finding too, not ours to fix
                info["errors"][kind] = finding(e)
        save_sweep_model(args.out, name, info, refs)
        print(f"{name:20s} keras {keras_top1:.3f} ort {info['ort']} errors {info['errors']}", flush=True)
        print(f"{'':20s} ops {info['ops'].get('opset13')}", flush=True)


if __name__ == "__main__":
    main()
