#!/usr/bin/env python3
"""Make the import-coverage model zoo: small models of the kinds MCU users deploy, trained on
scikit-learn's bundled digits (8x8, nothing downloaded), each exported twice: by torch's
TorchScript exporter (opset 13) and by its default dynamo exporter (newest opset, weights in an
external `.onnx.data` file as it writes them).

Outputs, under examples/zoo/ (or --out):
  <name>/model-ts.onnx                     TorchScript export, opset 13
  <name>/model-dynamo.onnx(.data)          dynamo export, as written
  <name>/reference.npz                     onnxruntime outputs of both exports on the first 8
                                           eval samples (key 'ts', 'dynamo'), and 'x' (inputs)
  calib.npz, eval.npz                      digits as uint8 0..16, [N, 1, 8, 8] (split as
                                           examples/digits/train.py does); a 1-D model reads
                                           the same bytes as [N, 8, 8] (rows as channels)
  README.md                                what each model is, float accuracy, exporters, ops

Every model takes real = x / 16 (compiler flags --input-scale 0.0625). Seeded, single-threaded.
The tests (compiler/tests/zoo.rs) need no torch: the files are committed.

Usage: python scripts/make_zoo.py [--out examples/zoo] [--epochs N]
"""
import argparse
import os
import random
import warnings
from importlib import metadata

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo_data import SEED, ort_outputs, split

HERE = os.path.dirname(os.path.abspath(__file__))


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def real(x):
    return torch.from_numpy(x.astype(np.float32) / 16.0)


def conv_bn(cin, cout, k=3, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class LeNet(nn.Module):
    """LeNet-5 shape: conv, max pool, conv, max pool, three fully connected layers."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 6, 3, padding=1), nn.Conv2d(6, 16, 3, padding=1)
        self.f1, self.f2, self.f3 = nn.Linear(16 * 2 * 2, 64), nn.Linear(64, 32), nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        x = torch.flatten(x, 1)
        return self.f3(F.relu(self.f2(F.relu(self.f1(x)))))


class Vgg(nn.Module):
    """VGG-ish: conv-conv-maxpool twice, global average pooling by adaptive_avg_pool2d."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(conv_bn(1, 16), conv_bn(16, 16), nn.MaxPool2d(2),
                                  conv_bn(16, 32), conv_bn(32, 32), nn.MaxPool2d(2))
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.body(x), 1).flatten(1))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a = conv_bn(cin, cout, 3, stride)
        self.b = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        return F.relu(self.b(self.a(x)) + self.skip(x))


class ResNet(nn.Module):
    """ResNet-8 shape (three residual stages), global average pooling by x.mean((2, 3))."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(1, 16)
        self.stages = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.stages(self.stem(x)).mean((2, 3)))


class MobileNetV1(nn.Module):
    """Depthwise-separable blocks with ReLU6, width 0.25-ish."""

    def __init__(self):
        super().__init__()

        def ds(cin, cout, stride):
            return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                                 nn.ReLU6(), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6())

        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
                                  ds(8, 16, 1), ds(16, 32, 2), ds(32, 32, 1), ds(32, 64, 2))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.body(x), 1).flatten(1))


class Kws1d(nn.Module):
    """A Conv1d keyword-spotter shape over the image rows as 8 channels x 8 steps: Conv1d,
    BatchNorm1d, MaxPool1d, a dilated Conv1d, mean over time."""

    def __init__(self):
        super().__init__()
        self.c1, self.b1 = nn.Conv1d(8, 24, 3, padding=1, bias=False), nn.BatchNorm1d(24)
        self.c2, self.b2 = nn.Conv1d(24, 32, 3, padding=2, dilation=2, bias=False), nn.BatchNorm1d(32)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool1d(F.relu(self.b1(self.c1(x))), 2)
        x = F.relu(self.b2(self.c2(x)))
        return self.fc(x.mean(2))


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                                 nn.Linear(32, 10))

    def forward(self, x):
        return self.net(x)


class AutoEncoder(nn.Module):
    """An MLP autoencoder (the anomaly-detection shape): 64 -> 32 -> 8 -> 32 -> 64."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 8), nn.ReLU(), nn.Linear(8, 32),
                                 nn.ReLU(), nn.Linear(32, 64))

    def forward(self, x):
        return self.net(x)


# name: (class, input shape per sample, task)
MODELS = {
    "lenet": (LeNet, (1, 8, 8), "classify"),
    "vgg": (Vgg, (1, 8, 8), "classify"),
    "resnet": (ResNet, (1, 8, 8), "classify"),
    "mobilenet-v1": (MobileNetV1, (1, 8, 8), "classify"),
    "kws-conv1d": (Kws1d, (8, 8), "classify"),
    "mlp": (Mlp, (1, 8, 8), "classify"),
    "mlp-autoencoder": (AutoEncoder, (64,), "reconstruct"),
}


def train(model, x, y, shape, task, epochs):
    xt, yt = real(x).reshape(len(x), *shape), torch.from_numpy(y)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-4)
    g = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(xt), generator=g).split(64):
            out = model(xt[idx])
            loss = F.cross_entropy(out, yt[idx]) if task == "classify" else F.mse_loss(out, xt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()


@torch.no_grad()
def metric(model, x, y, shape, task):
    out = model(real(x).reshape(len(x), *shape))
    if task == "classify":
        return float((out.argmax(1).numpy() == y).mean())
    return float(F.mse_loss(out, real(x).reshape(len(x), *shape)))


def export(model, shape, path, dynamo):
    x = torch.zeros(1, *shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, (x,), path, dynamo=True, input_names=["input"], output_names=["output"])
        else:
            torch.onnx.export(model, (x,), path, dynamo=False, opset_version=13, input_names=["input"],
                              output_names=["output"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "..", "examples", "zoo"))
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    (x_tr, y_tr), (x_cal, y_cal), (x_ev, y_ev) = split()
    np.savez_compressed(os.path.join(args.out, "calib.npz"), x=x_cal, y=y_cal)
    np.savez_compressed(os.path.join(args.out, "eval.npz"), x=x_ev, y=y_ev)
    rows = []
    for name, (cls, shape, task) in MODELS.items():
        seed_everything(SEED)
        model = cls()
        train(model, x_tr, y_tr, shape, task, args.epochs)
        value = metric(model, x_ev, y_ev, shape, task)
        folder = os.path.join(args.out, name)
        os.makedirs(folder, exist_ok=True)
        for stale in os.listdir(folder):
            os.remove(os.path.join(folder, stale))
        x8 = (x_ev[:8].astype(np.float32) / 16.0).reshape(8, *shape)
        refs, ops = {"x": x8}, {}
        for kind, dynamo in (("ts", False), ("dynamo", True)):
            path = os.path.join(folder, f"model-{kind}.onnx")
            export(model, shape, path, dynamo)
            refs[kind] = ort_outputs(path, x8)
            m = onnx.load(path, load_external_data=False)
            ops[kind] = (m.opset_import[0].version, sorted({n.op_type for n in m.graph.node}))
        np.savez_compressed(os.path.join(folder, "reference.npz"), **refs)
        rows.append((name, task, value, ops))
        print(f"{name:16s} {task:11s} {value:.4f}  ts opset {ops['ts'][0]}  dynamo opset {ops['dynamo'][0]}")
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write("# zoo: import-coverage models\n\n")
        f.write("Made by [`scripts/make_zoo.py`](../../scripts/make_zoo.py): trained on scikit-learn's bundled digits\n")
        f.write("(UCI ML hand-written digits, CC BY 4.0; 8x8, pixel values 0..16), exported by torch's TorchScript\n")
        f.write("exporter (opset 13) and its default dynamo exporter (external weights as written). Input transform\n")
        f.write("x / 16 (`--input-scale 0.0625`). `calib.npz` / `eval.npz`: uint8 `[N, 1, 8, 8]`, the split of\n")
        f.write("examples/digits/train.py's method with this script's seed; `kws-conv1d` reads the rows as 8 channels.\n\n")
        f.write("| model | task | float (torch, eval 500) | TorchScript ops (opset) | dynamo ops (opset) |\n|---|---|---|---|---|\n")
        for name, task, value, ops in rows:
            what = f"top-1 {value:.3f}" if task == "classify" else f"MSE {value:.5f}"
            f.write(f"| {name} | {task} | {what} | {', '.join(ops['ts'][1])} ({ops['ts'][0]}) | "
                    f"{', '.join(ops['dynamo'][1])} ({ops['dynamo'][0]}) |\n")
        versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("torch", "onnx", "onnxscript", "onnxruntime",
                                                                   "scikit-learn", "numpy"))
        f.write(f"\nMade with {versions}.\n")


if __name__ == "__main__":
    main()
