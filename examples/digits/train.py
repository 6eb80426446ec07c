#!/usr/bin/env python3
"""Train the bundled `digits` example model for hawq-edge.

Data: scikit-learn's bundled copy of the UCI ML hand-written digits dataset
(`sklearn.datasets.load_digits`, 1797 8x8 grayscale images, pixel values 0..16,
CC BY 4.0). Nothing is downloaded: the dataset ships inside the scikit-learn wheel.

The script is seeded and single-threaded, so re-running it reproduces the same
split, the same training run and (up to exporter metadata) the same model.

Outputs, next to this file:
  model.onnx   float model, opset 13, input `input` [N,1,8,8] float32,
               output `logits` [N,10] float32 (no softmax)
  calib.npz    x uint8 (200,1,8,8) raw pixels 0..16, y int64 (200,)  (subset of train)
  eval.npz     x uint8 (500,1,8,8) raw pixels 0..16, y int64 (500,)  (disjoint from train)
  README.md    provenance, transform, measured float accuracy, package versions

The model expects real = x * (1/16) + 0 (compiler flags
`--input-scale 0.0625 --input-offset 0`); the /16 is NOT part of the graph.

Usage: python examples/digits/train.py [--epochs N] [--out DIR]
"""
import argparse
import os
import random
import sys
import time
import warnings
from collections import Counter
from importlib import metadata

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits

SEED = 20240611
N_EVAL = 500
N_CALIB = 200
INPUT_SCALE = 1.0 / 16.0
INPUT_OFFSET = 0.0


class DigitsNet(nn.Module):
    """Tiny CNN for 1x8x8 NCHW input covering the op kinds the compiler handles."""

    def __init__(self):
        super().__init__()
        # 1x8x8 -> 8x8x8
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.act1 = nn.ReLU6()
        # 8x8x8 -> 16x4x4
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.act2 = nn.ReLU()
        # depthwise 16x4x4 -> 16x4x4, residual add around it
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.bn3 = nn.BatchNorm2d(16)
        self.act3 = nn.ReLU6()
        # pointwise 16x4x4 -> 24x4x4
        self.pw = nn.Conv2d(16, 24, 1)
        self.act4 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)  # -> GlobalAveragePool
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(24, 10)  # -> Gemm

    def forward(self, x):
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = x + self.act3(self.bn3(self.dw(x)))
        x = self.act4(self.pw(x))
        x = self.flatten(self.pool(x))
        return self.fc(x)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def split_data(seed):
    digits = load_digits()
    x = digits.images.astype(np.uint8).reshape(-1, 1, 8, 8)  # raw 0..16
    y = digits.target.astype(np.int64)
    assert x.min() == 0 and x.max() == 16, (x.min(), x.max())
    rng = np.random.RandomState(seed)
    perm = rng.permutation(len(x))
    eval_idx = np.sort(perm[:N_EVAL])
    train_idx = perm[N_EVAL:]
    calib_idx = np.sort(train_idx[:N_CALIB])  # calibration is a subset of train
    return (x[train_idx], y[train_idx]), (x[calib_idx], y[calib_idx]), (x[eval_idx], y[eval_idx])


def to_real(x_u8):
    return x_u8.astype(np.float32) * np.float32(INPUT_SCALE) + np.float32(INPUT_OFFSET)


def train(model, x_tr, y_tr, epochs, seed, lr=3e-2):
    xt = torch.from_numpy(to_real(x_tr))
    yt = torch.from_numpy(y_tr)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    batch = 64
    steps_per_epoch = (len(xt) + batch - 1) // batch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.2)
    g = torch.Generator().manual_seed(seed)
    for ep in range(epochs):
        model.train()
        order = torch.randperm(len(xt), generator=g)
        tot, correct, n = 0.0, 0, 0
        for i in range(0, len(xt), batch):
            idx = order[i:i + batch]
            xb, yb = xt[idx], yt[idx]
            # light augmentation: random shift by up to 1 pixel (zero fill)
            dx, dy = torch.randint(-1, 2, (2,), generator=g).tolist()
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            if dy == 1:
                xb[:, :, 0, :] = 0
            elif dy == -1:
                xb[:, :, -1, :] = 0
            if dx == 1:
                xb[:, :, :, 0] = 0
            elif dx == -1:
                xb[:, :, :, -1] = 0
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
            n += len(idx)
        if ep == 0 or (ep + 1) % 5 == 0 or ep == epochs - 1:
            print(f"epoch {ep + 1:3d}/{epochs}  loss {tot / n:.4f}  train acc {correct / n:.4f}")


@torch.no_grad()
def torch_accuracy(model, x_u8, y):
    model.eval()
    logits = model(torch.from_numpy(to_real(x_u8)))
    return (logits.argmax(1).numpy() == y).mean()


def export(model, path):
    model.eval()
    dummy = torch.zeros(1, 1, 8, 8)
    warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
    # Legacy TorchScript exporter (dynamo=False). TrainingMode.PRESERVE with the model in
    # eval mode skips the exporter's Conv+BN fusion, so BatchNormalization nodes
    # (training_mode=0, running statistics) stay in the graph for the compiler to fold.
    torch.onnx.export(
        model, (dummy,), path,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=13,
        training=torch.onnx.TrainingMode.PRESERVE,
        do_constant_folding=False,
        dynamo=False,
    )


def describe_onnx(path):
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m)
    ops = Counter(n.op_type for n in m.graph.node)
    opset = {o.domain or "ai.onnx": o.version for o in m.opset_import}
    return ops, opset


def ort_accuracy(path, x_u8, y):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    logits = sess.run(["logits"], {"input": to_real(x_u8)})[0]
    return float((logits.argmax(1) == y).mean()), logits


def pkg_versions():
    out = {}
    for p in ["numpy", "torch", "onnx", "onnxruntime", "scikit-learn"]:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def write_readme(path, acc_ort, acc_torch, ops, opset, epochs, n_train, n_calib, n_eval, train_s):
    vers = pkg_versions()
    ops_s = ", ".join(f"{k} x{v}" for k, v in sorted(ops.items()))
    opset_s = ", ".join(f"{k} {v}" for k, v in opset.items())
    text = f"""# digits: bundled example model

A tiny CNN made by this project for the README example and tests.

## Provenance

- Data: scikit-learn's bundled copy of the UCI ML hand-written digits dataset
  (`sklearn.datasets.load_digits`; E. Alpaydin, C. Kaynak, UCI Machine Learning Repository,
  CC BY 4.0). 1797 grayscale 8x8 images, pixel values 0..16, 10 classes. It ships inside the
  scikit-learn wheel (nothing is downloaded).
- Model: trained from scratch by [`train.py`](train.py) (PyTorch, seed {SEED}, single thread,
  deterministic algorithms, {epochs} epochs, AdamW + one-cycle LR, +-1 pixel shift augmentation;
  about 10 s on one CPU core), exported with the TorchScript ONNX exporter
  (`dynamo=False`, opset 13, BatchNormalization kept as separate nodes).

## Files

| file | contents |
|---|---|
| `model.onnx` | input `input` float32 [N,1,8,8] (NCHW), output `logits` float32 [N,10] (no softmax) |
| `calib.npz` | `x` uint8 ({n_calib},1,8,8) raw pixels 0..16, `y` int64 ({n_calib},); a subset of the {n_train} training images |
| `eval.npz` | `x` uint8 ({n_eval},1,8,8) raw pixels 0..16, `y` int64 ({n_eval},); disjoint from training |

Graph ops ({opset_s}): {ops_s}.

## Input transform

The model expects `real = x * 0.0625 + 0` (x / 16) applied to the raw uint8 pixels; the
scaling is not part of the graph. Compiler flags: `--input-scale 0.0625 --input-offset 0`.

## Accuracy

Float top-1 on `eval.npz` ({n_eval} images), measured with onnxruntime on `model.onnx`:
**{acc_ort * 100:.1f}%** (PyTorch before export: {acc_torch * 100:.1f}%).

## Reproduce

```
pip install -r scripts/requirements.txt
python examples/digits/train.py
```

Made with: {", ".join(f"{k}=={v}" for k, v in vers.items())} (Python {sys.version.split()[0]}).
"""
    with open(path, "w") as f:
        f.write(text)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--out", default=here, help="output directory (default: next to this script)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--lr", type=float, default=3e-2, help="peak learning rate")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    seed_everything(args.seed)
    (x_tr, y_tr), (x_ca, y_ca), (x_ev, y_ev) = split_data(args.seed)
    print(f"train {len(x_tr)}, calib {len(x_ca)} (subset of train), eval {len(x_ev)}")

    model = DigitsNet()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params: {n_params}")
    t0 = time.time()
    train(model, x_tr, y_tr, args.epochs, args.seed, args.lr)
    train_s = time.time() - t0
    acc_torch = torch_accuracy(model, x_ev, y_ev)
    print(f"training took {train_s:.1f} s; torch eval acc {acc_torch:.4f}")

    model_path = os.path.join(args.out, "model.onnx")
    export(model, model_path)
    np.savez_compressed(os.path.join(args.out, "calib.npz"), x=x_ca, y=y_ca)
    np.savez_compressed(os.path.join(args.out, "eval.npz"), x=x_ev, y=y_ev)

    ops, opset = describe_onnx(model_path)
    print("onnx opset:", opset)
    print("onnx ops:", dict(sorted(ops.items())))
    acc_ort, logits_ort = ort_accuracy(model_path, x_ev, y_ev)
    with torch.no_grad():
        logits_t = model(torch.from_numpy(to_real(x_ev))).numpy()
    print(f"max |torch - onnxruntime| logits: {np.abs(logits_t - logits_ort).max():.2e}")
    print(f"float eval accuracy (onnxruntime, {len(y_ev)} images): {acc_ort:.4f}")
    write_readme(os.path.join(args.out, "README.md"), acc_ort, acc_torch, ops, opset,
                 args.epochs, len(x_tr), len(x_ca), len(x_ev), train_s)
    print("model.onnx size:", os.path.getsize(model_path), "bytes")
    if acc_ort < 0.95:
        print("WARNING: eval accuracy below 95%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
