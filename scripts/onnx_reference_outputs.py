#!/usr/bin/env python3
"""Float reference outputs from onnxruntime, for testing the Rust float executor.

For each model below, takes the first 8 samples of its evaluation data, applies the
model's input transform (real = x * scale + offset, elementwise, in float32), puts them in
the model's own input layout, runs onnxruntime (CPUExecutionProvider, float32) and writes
tests/reference/<name>.npz with

  input   float32, the tensor actually fed to the model (after transform and layout change);
          only for the project's own example models: fixture data is not redistributed, so
          tests rebuild those inputs from ../shared/fixtures
  output  float32, the model's (first) output for that input

Models whose ONNX input has a fixed batch dimension (mnist8, resnet8 model_nchw: batch 1)
are run one sample at a time and the results stacked, so every file has batch 8.

Usage: python scripts/onnx_reference_outputs.py [FIXTURES_DIR] [--out DIR]
FIXTURES_DIR defaults to ../shared/fixtures relative to the repo root (see its README.md).
"""
import argparse
import os
import sys

import numpy as np

N_SAMPLES = 8

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name, model path, data path, data source, scale, offset, layout
#   model/data paths: "fx:" = relative to the fixtures dir, "repo:" = relative to the repo root
#   layout: how the stored sample layout maps onto the model input
MODELS = [
    ("resnet8-cifar10", "fx:resnet8-cifar10/model.onnx", "fx:resnet8-cifar10/eval.npz",
     "eval", 1.0, 0.0, "as-is"),  # NHWC uint8 32x32x3
    ("resnet8-cifar10-nchw", "fx:resnet8-cifar10/model_nchw.onnx", "fx:resnet8-cifar10/eval.npz",
     "eval", 1.0, 0.0, "nhwc->nchw"),
    ("dscnn-kws", "fx:dscnn-kws/model.onnx", "fx:dscnn-kws/eval.npz",
     "eval", 0.5847, -83.0 * 0.5847, "as-is"),  # NHWC int8 49x10x1
    ("mnist8", "fx:mnist8/model.onnx", "fx:mnist8/eval.npz",
     "eval", 1.0 / 255.0, 0.0, "as-is"),  # NCHW uint8 1x28x28
    ("autoencoder-ad", "fx:autoencoder-ad/model.onnx", "fx:autoencoder-ad/eval.npz",
     "windows", 1.0, 0.0, "as-is"),  # float32 log-mel, 640-value windows
    ("sine-mlp", "fx:sine-mlp/model.onnx", "fx:sine-mlp/data.npz",
     "eval", 1.0, 0.0, "as-is"),  # float32 x in [0, 2pi]
    ("digits", "repo:examples/digits/model.onnx", "repo:examples/digits/eval.npz",
     "eval", 1.0 / 16.0, 0.0, "as-is"),  # NCHW uint8 1x8x8, values 0..16
]

AE_WINDOW = 640
AE_STRIDE = 128


def resolve(spec, fixtures):
    kind, rel = spec.split(":", 1)
    return os.path.join(fixtures if kind == "fx" else REPO_ROOT, rel)


def load_samples(data_path, source):
    d = np.load(data_path)
    x = d["x"]
    if source == "eval":
        return x[:N_SAMPLES]
    if source == "windows":
        # Each eval sample is one file of 25,600 values = 196 windows of 640 at stride 128.
        f = x[0]
        n_win = (f.shape[0] - AE_WINDOW) // AE_STRIDE + 1
        assert n_win >= N_SAMPLES, n_win
        return np.stack([f[i * AE_STRIDE:i * AE_STRIDE + AE_WINDOW] for i in range(N_SAMPLES)])
    raise ValueError(source)


def transform(x, scale, offset, layout):
    real = x.astype(np.float32) * np.float32(scale) + np.float32(offset)
    if layout == "nhwc->nchw":
        real = real.transpose(0, 3, 1, 2)
    elif layout != "as-is":
        raise ValueError(layout)
    return np.ascontiguousarray(real, dtype=np.float32)


def check_shape(name, arr, ort_shape):
    if len(arr.shape) != len(ort_shape):
        raise SystemExit(f"{name}: input rank {arr.ndim} does not match model input {ort_shape}")
    for got, want in zip(arr.shape[1:], ort_shape[1:]):
        if isinstance(want, int) and got != want:
            raise SystemExit(f"{name}: input shape {arr.shape} does not match model input {ort_shape}")


def run(sess, x):
    inp = sess.get_inputs()[0]
    out_name = sess.get_outputs()[0].name
    batch = inp.shape[0]
    if isinstance(batch, int):  # fixed batch size (e.g. 1): run in chunks of that size
        assert len(x) % batch == 0, (len(x), batch)
        outs = [sess.run([out_name], {inp.name: x[i:i + batch]})[0] for i in range(0, len(x), batch)]
        return np.concatenate(outs, axis=0)
    return sess.run([out_name], {inp.name: x})[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fixtures", nargs="?", default=os.path.join(REPO_ROOT, "..", "shared", "fixtures"),
                    help="fixtures directory (default: ../shared/fixtures relative to the repo root)")
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "tests", "reference"),
                    help="output directory (default: tests/reference in the repo)")
    args = ap.parse_args()
    fixtures = os.path.abspath(args.fixtures)
    if not os.path.isdir(fixtures):
        print(f"error: fixtures directory not found: {fixtures}\n"
              f"pass the path to the shared fixtures (containing resnet8-cifar10/, dscnn-kws/, ...) "
              f"as the first argument", file=sys.stderr)
        return 2
    missing = [p for m in MODELS for p in (resolve(m[1], fixtures), resolve(m[2], fixtures))
               if not os.path.isfile(p)]
    if missing:
        print("error: missing input files:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 2

    try:
        import onnxruntime as ort
    except ImportError:
        print("error: onnxruntime is not installed (pip install -r scripts/requirements.txt)", file=sys.stderr)
        return 2

    os.makedirs(args.out, exist_ok=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    for name, model_spec, data_spec, source, scale, offset, layout in MODELS:
        model_path = resolve(model_spec, fixtures)
        sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
        inp, outp = sess.get_inputs()[0], sess.get_outputs()[0]
        x = transform(load_samples(resolve(data_spec, fixtures), source), scale, offset, layout)
        check_shape(name, x, inp.shape)
        y = run(sess, x).astype(np.float32)
        out_path = os.path.join(args.out, f"{name}.npz")
        if model_spec.startswith("repo:"):
            np.savez_compressed(out_path, input=x, output=y)
        else:
            # The fixtures' data must not be redistributed: keep only the model's outputs; the
            # tests rebuild the inputs from ../shared/fixtures.
            np.savez_compressed(out_path, output=y)
        print(f"{name:22s} in {inp.name} {inp.shape} -> {outp.name} {outp.shape}; "
              f"wrote input {x.shape} output {y.shape} "
              f"(|out| max {np.abs(y).max():.4g}) to {os.path.relpath(out_path, REPO_ROOT)} "
              f"[{os.path.getsize(out_path)} B]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
