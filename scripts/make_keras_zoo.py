#!/usr/bin/env python3
"""Make the Keras part of the import-coverage zoo: three small Keras models (channels-last, as
Keras builds them), trained on scikit-learn's bundled digits with the split, seed and input
transform of scripts/make_zoo.py, each converted by tf2onnx twice: at opset 13 and at the newest
opset this tf2onnx supports. TensorFlow-converted graphs are NHWC with Transposes around the
convolutions, the patterns the importer's layout tracking has to see through.

Outputs, under examples/zoo/ (or --out):
  keras-<name>/model-opset13.onnx          tf2onnx, opset 13
  keras-<name>/model-opset<N>.onnx         tf2onnx, its newest opset N
  keras-<name>/reference.npz               onnxruntime outputs of both on the first 8 eval
                                           samples (keys 'opset13', 'opset<N>') and 'x' (inputs,
                                           in the model's layout: [8, 8, 8, 1] or [8, 8, 8])
  README.md                                a Keras table appended (replaced when re-run;
                                           make_zoo.py rewrites the part above it and keeps it)

calib.npz / eval.npz are make_zoo.py's and are only read: uint8 [N, 1, 8, 8], which has the same
element order as [N, 8, 8, 1] (one channel) and [N, 8, 8] (rows as time steps, columns as the 8
features of Keras' channels-last Conv1D).

Usage: python scripts/make_keras_zoo.py [--out examples/zoo] [--epochs N]
"""
import argparse
import os
import random
from importlib import metadata

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
from zoo_data import SEED, ort_outputs, split  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE_START = "\n## Keras (tf2onnx)\n"


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)


def small_cnn():
    x = inp = keras.Input((8, 8, 1), name="input")
    x = layers.Conv2D(16, 3, padding="same", use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(48, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(10)(x))


def ds_cnn():
    x = inp = keras.Input((8, 8, 1), name="input")
    x = layers.Conv2D(16, 3, padding="same", use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    for width in (32, 32):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.Conv2D(width, 1, use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(10)(x))


def conv1d():
    # [N, L, C]: the 8 rows as time steps, the 8 columns as features (channels-last).
    x = inp = keras.Input((8, 8), name="input")
    x = layers.Conv1D(24, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling1D(2)(x)
    x = layers.Conv1D(32, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inp, layers.Dense(10)(x))


# name: (builder, input shape per sample)
MODELS = {
    "keras-cnn": (small_cnn, (8, 8, 1)),
    "keras-ds-cnn": (ds_cnn, (8, 8, 1)),
    "keras-conv1d": (conv1d, (8, 8)),
}


def real(x, shape):
    return (x.astype(np.float32) / 16.0).reshape(len(x), *shape)


def export(model, shape, path, opset):
    spec = (tf.TensorSpec((None, *shape), tf.float32, name="input"),)

    @tf.function(input_signature=spec)
    def forward(x):
        return model(x, training=False)

    tf2onnx.convert.from_function(forward, input_signature=spec, opset=opset, output_path=path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "..", "examples", "zoo"))
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()
    newest = max(tf2onnx.constants.OPSET_TO_IR_VERSION)
    (x_tr, y_tr), _, _ = split()
    ev = np.load(os.path.join(args.out, "eval.npz"))
    x_ev, y_ev = ev["x"], ev["y"]
    rows = []
    for name, (build, shape) in MODELS.items():
        seed_everything(SEED)
        model = build()
        model.compile(optimizer=keras.optimizers.Adam(3e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(real(x_tr, shape), y_tr, batch_size=64, epochs=args.epochs, shuffle=True, verbose=0)
        top1 = float((model.predict(real(x_ev, shape), verbose=0).argmax(1) == y_ev).mean())
        folder = os.path.join(args.out, name)
        os.makedirs(folder, exist_ok=True)
        for stale in os.listdir(folder):
            os.remove(os.path.join(folder, stale))
        x8 = real(x_ev[:8], shape)
        refs, ops = {"x": x8}, {}
        for opset in (13, newest):
            kind = f"opset{opset}"
            path = os.path.join(folder, f"model-{kind}.onnx")
            export(model, shape, path, opset)
            refs[kind] = ort_outputs(path, x8)
            m = onnx.load(path)
            ops[kind] = sorted({n.op_type for n in m.graph.node})
        np.savez_compressed(os.path.join(folder, "reference.npz"), **refs)
        rows.append((name, top1, ops))
        print(f"{name:14s} top-1 {top1:.4f}  opsets 13 and {newest}")
    readme = os.path.join(args.out, "README.md")
    with open(readme) as f:
        text = f.read().split(TABLE_START)[0].rstrip("\n") + "\n"
    with open(readme, "w") as f:
        f.write(text)
        f.write(TABLE_START)
        f.write("\nMade by [`scripts/make_keras_zoo.py`](../../scripts/make_keras_zoo.py): Keras models (channels-last\n")
        f.write("input, real = x / 16) trained on the same digits split, converted by tf2onnx at opset 13 and at\n")
        f.write(f"its newest opset, {newest}. `keras-conv1d` reads `[N, 8, 8]` as 8 time steps of 8 features.\n\n")
        f.write(f"| model | float (Keras, eval 500) | opset 13 ops | opset {newest} ops |\n|---|---|---|---|\n")
        for name, top1, ops in rows:
            f.write(f"| {name} | top-1 {top1:.3f} | {', '.join(ops['opset13'])} | "
                    f"{', '.join(ops[f'opset{newest}'])} |\n")
        versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("tensorflow-cpu", "keras", "tf2onnx", "onnx",
                                                                   "onnxruntime", "scikit-learn", "numpy"))
        f.write(f"\nMade with {versions}.\n")


if __name__ == "__main__":
    main()
