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
  <name>/info.json                         its README row: task, float metric, parameters, op
                                           types and opset per export, versions it was made with
  calib.npz, eval.npz                      digits as uint8 0..16, [N, 1, 8, 8] (split as
                                           examples/digits/train.py does); a 1-D model reads
                                           the same bytes as [N, 8, 8] (rows as channels)
  README.md                                what each model is, float accuracy, exporters, ops
                                           (rendered from every model's info.json; the Keras
                                           section make_keras_zoo.py appends is kept)

Every model takes real = x / 16 (compiler flags --input-scale 0.0625). Seeded, single-threaded.
The tests (compiler/tests/zoo.rs) need no torch: the files are committed.

Usage: python scripts/make_zoo.py [--out examples/zoo] [--epochs N] [--only NAME[,NAME...]]
"""
import argparse
import json
import os
import random
import time
import warnings
from importlib import metadata

import numpy as np
import onnx
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
    """A plain MLP: 64 -> 64 -> 32 -> 10 with ReLU."""

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


class InvertedResidual(nn.Module):
    """MobileNetV2's block: expand 1x1 + ReLU6 (left out when t = 1), depthwise k x k + ReLU6,
    project 1x1 (linear), and the input added when the shapes match."""

    def __init__(self, cin, cout, t, stride, k=3):
        super().__init__()
        mid = cin * t
        layers = [] if t == 1 else [nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6()]
        layers += [nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
                   nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    """MobileNetV2: inverted residual blocks (expand, depthwise, linear project; residual add
    where the shapes match), ReLU6, two stride-2 stages, 1x1 conv head, mean pool."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
            InvertedResidual(16, 8, 1, 1), InvertedResidual(8, 16, 6, 2), InvertedResidual(16, 16, 6, 1),
            InvertedResidual(16, 24, 6, 2), InvertedResidual(24, 24, 6, 1), InvertedResidual(24, 32, 6, 1),
            nn.Conv2d(32, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU6())
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.body(x), 1).flatten(1))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation as MobileNetV3 writes it: adaptive_avg_pool2d -> 1x1 conv -> ReLU
    -> 1x1 conv -> Hardsigmoid, multiplied into the feature map ([N, C, H, W] * [N, C, 1, 1])."""

    def __init__(self, c, squeeze):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, squeeze, 1), nn.Conv2d(squeeze, c, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        return x * self.gate(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


class Bneck(nn.Module):
    """MobileNetV3's bneck: expand 1x1, depthwise k x k, optional squeeze-and-excitation, project
    1x1 (linear), with ReLU or Hardswish; the input added when the shapes match."""

    def __init__(self, cin, mid, cout, k, se, act, stride):
        super().__init__()
        layers = [] if mid == cin else [nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), act()]
        layers += [nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False), nn.BatchNorm2d(mid), act()]
        if se:
            layers.append(SqueezeExcite(mid, max(8, (mid // 4 + 4) // 8 * 8)))
        layers += [nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV3Small(nn.Module):
    """MobileNetV3-small: bneck blocks with ReLU and Hardswish, squeeze-and-excitation gated by
    Hardsigmoid, 1x1 conv head, mean pool, Linear + Hardswish + Linear classifier."""

    def __init__(self):
        super().__init__()
        hs, re = nn.Hardswish, nn.ReLU
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish(),
            Bneck(16, 16, 16, 3, True, re, 2), Bneck(16, 48, 24, 3, False, re, 1), Bneck(24, 64, 24, 3, False, re, 1),
            Bneck(24, 72, 32, 5, True, hs, 2), Bneck(32, 96, 32, 5, True, hs, 1),
            nn.Conv2d(32, 96, 1, bias=False), nn.BatchNorm2d(96), nn.Hardswish())
        self.head = nn.Sequential(nn.Linear(96, 128), nn.Hardswish(), nn.Linear(128, 10))

    def forward(self, x):
        return self.head(F.adaptive_avg_pool2d(self.body(x), 1).flatten(1))


class ResNet20(nn.Module):
    """CIFAR ResNet-20: 3x3 stem, 3 stages x 3 basic blocks (8, 16, 32 channels; stride 2 and a
    1x1 conv + BN shortcut where the shape changes), mean over H, W, Linear."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(1, 8)
        blocks, cin = [], 8
        for cout, stride in ((8, 1), (16, 2), (32, 2)):
            for i in range(3):
                blocks.append(Block(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*blocks)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(self.stages(self.stem(x)).mean((2, 3)))


class Fire(nn.Module):
    """SqueezeNet's fire module: squeeze 1x1 + ReLU, then expand 1x1 and expand 3x3 (+ ReLU),
    concatenated on channels."""

    def __init__(self, cin, squeeze, e1, e3):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.e1, self.e3 = nn.Conv2d(squeeze, e1, 1), nn.Conv2d(squeeze, e3, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.e1(x)), F.relu(self.e3(x))], 1)


class SqueezeNet(nn.Module):
    """SqueezeNet 1.1 shape: conv, MaxPool2d(3, 2, ceil_mode=True), fire modules, another ceil-mode
    pool, fire modules, dropout, 1x1 conv classifier + ReLU, global average pool; no BN (He init,
    trained at lr 1e-3)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 24, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(24, 8, 16, 16), Fire(32, 8, 16, 16), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(32, 16, 32, 32), Fire(64, 16, 32, 32))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Conv2d(64, 10, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        for m in self.modules():  # without BN, torch's default init starves the ReLUs: He init, zero bias
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.features(x)).flatten(1)


class McuNet(nn.Module):
    """MCUNet-like searched backbone: inverted residual blocks with mixed depthwise kernels (3, 5,
    7) and expansion ratios (3..6), ReLU6, mean pool, Linear."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
            InvertedResidual(16, 8, 1, 1, 3), InvertedResidual(8, 16, 3, 1, 7), InvertedResidual(16, 16, 4, 2, 5),
            InvertedResidual(16, 16, 5, 1, 7), InvertedResidual(16, 24, 6, 2, 3), InvertedResidual(24, 24, 4, 1, 5),
            InvertedResidual(24, 32, 5, 1, 3))
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.body(x), 1).flatten(1))


class SeBlock(nn.Module):
    """SE-ResNet basic block: two 3x3 conv + BN, squeeze-and-excitation (adaptive_avg_pool2d ->
    Linear -> ReLU -> Linear -> Sigmoid, reshaped to [N, C, 1, 1] and multiplied into the
    [N, C, H, W] map) before the residual add, ReLU."""

    def __init__(self, cin, cout, stride, reduction=4):
        super().__init__()
        self.a = conv_bn(cin, cout, 3, stride)
        self.b = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.se = nn.Sequential(nn.Linear(cout, cout // reduction), nn.ReLU(), nn.Linear(cout // reduction, cout),
                                nn.Sigmoid())
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())
        self.c = cout

    def forward(self, x):
        y = self.b(self.a(x))
        s = self.se(F.adaptive_avg_pool2d(y, 1).flatten(1)).view(-1, self.c, 1, 1)
        return F.relu(y * s + self.skip(x))


class SeNet(nn.Module):
    """SE-ResNet: 3x3 stem, SE basic blocks of 16, 32 (stride 2) and 48 (stride 2) channels, mean
    pool, Linear."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(1, 16)
        self.stages = nn.Sequential(SeBlock(16, 16, 1), SeBlock(16, 32, 2), SeBlock(32, 48, 2))
        self.fc = nn.Linear(48, 10)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1).flatten(1))


class TemporalBlock(nn.Module):
    """TCN residual block: twice (causal left pad F.pad(x, ((k - 1) * d, 0)), unpadded dilated
    Conv1d, ReLU), plus the input (through a 1x1 Conv1d when the channels change), ReLU."""

    def __init__(self, cin, cout, dilation, k=3):
        super().__init__()
        self.left = (k - 1) * dilation
        self.c1 = nn.Conv1d(cin, cout, k, dilation=dilation)
        self.c2 = nn.Conv1d(cout, cout, k, dilation=dilation)
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        y = F.relu(self.c1(F.pad(x, (self.left, 0))))
        y = F.relu(self.c2(F.pad(y, (self.left, 0))))
        return F.relu(y + self.skip(x))


class Tcn(nn.Module):
    """A temporal convolutional network over the image rows as 8 channels x 8 steps: causal
    dilated Conv1d blocks (dilations 1, 2, 4), classified from the last time step x[:, :, -1]."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(TemporalBlock(8, 32, 1), TemporalBlock(32, 32, 2), TemporalBlock(32, 32, 4))
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(self.blocks(x)[:, :, -1])


def conv_relu(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU())


class TinyUNet(nn.Module):
    """A one-level U-Net reconstructing its input: conv + ReLU encoder, MaxPool 2, middle convs,
    ConvTranspose2d(kernel 2, stride 2) up, torch.cat skip connection, conv, 1x1 conv out."""

    def __init__(self, resize=False):
        super().__init__()
        self.enc = nn.Sequential(conv_relu(1, 8), conv_relu(8, 8))
        self.mid = nn.Sequential(conv_relu(8, 16), conv_relu(16, 16))
        self.up = (nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(16, 8, 3, padding=1))
                   if resize else nn.ConvTranspose2d(16, 8, 2, stride=2))
        self.dec = conv_relu(16, 8)
        self.out = nn.Conv2d(8, 1, 1)

    def forward(self, x):
        e = self.enc(x)
        u = self.up(self.mid(F.max_pool2d(e, 2)))
        return self.out(self.dec(torch.cat([u, e], 1)))


class TinyUNetResize(TinyUNet):
    """tiny-unet with the ConvTranspose2d replaced by nn.Upsample(scale_factor=2, nearest) + a 3x3
    conv (the resize-convolution decoder)."""

    def __init__(self):
        super().__init__(resize=True)


# name: (class, input shape per sample, task[, training options: epochs, lr])
MODELS = {
    "lenet": (LeNet, (1, 8, 8), "classify"),
    "vgg": (Vgg, (1, 8, 8), "classify"),
    "resnet": (ResNet, (1, 8, 8), "classify"),
    "mobilenet-v1": (MobileNetV1, (1, 8, 8), "classify"),
    "kws-conv1d": (Kws1d, (8, 8), "classify"),
    "mlp": (Mlp, (1, 8, 8), "classify"),
    "mlp-autoencoder": (AutoEncoder, (64,), "reconstruct"),
    "mobilenet-v2": (MobileNetV2, (1, 8, 8), "classify"),
    "mobilenet-v3-small": (MobileNetV3Small, (1, 8, 8), "classify"),
    "resnet-20": (ResNet20, (1, 8, 8), "classify"),
    "squeezenet": (SqueezeNet, (1, 8, 8), "classify", {"lr": 1e-3}),
    "mcunet": (McuNet, (1, 8, 8), "classify"),
    "se-net": (SeNet, (1, 8, 8), "classify"),
    "tcn": (Tcn, (8, 8), "classify"),
    "tiny-unet": (TinyUNet, (1, 8, 8), "reconstruct"),
    "tiny-unet-resize": (TinyUNetResize, (1, 8, 8), "reconstruct"),
}


def train(model, x, y, shape, task, epochs, lr=1e-2):
    xt, yt = real(x).reshape(len(x), *shape), torch.from_numpy(y)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
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


def params(cls):
    return sum(p.numel() for p in cls().parameters())


def about(cls):
    """The first sentence of the class docstring, on one line."""
    return " ".join(cls.__doc__.split()).split(". ")[0].rstrip(".") + "."


def ops_of(path):
    """(opset, sorted op types) of an ONNX file (external data not read)."""
    m = onnx.load(path, load_external_data=False)
    opset = next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    return opset, sorted({n.op_type for n in m.graph.node})


def versions():
    return ", ".join(f"{p} {metadata.version(p)}" for p in ("torch", "onnx", "onnxscript", "onnxruntime",
                                                            "scikit-learn", "numpy"))


def write_info(folder, info):
    with open(os.path.join(folder, "info.json"), "w") as f:
        f.write("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in info.items()) + "\n}\n")


def make(name, out, x_tr, y_tr, x_ev, y_ev, default_epochs):
    """Train, export twice, write reference.npz and info.json; return the info."""
    cls, shape, task, *options = MODELS[name]
    options = options[0] if options else {}
    epochs, lr = options.get("epochs", default_epochs), options.get("lr", 1e-2)
    seed_everything(SEED)
    model = cls()
    train(model, x_tr, y_tr, shape, task, epochs, lr)
    value = metric(model, x_ev, y_ev, shape, task)
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    for stale in os.listdir(folder):
        os.remove(os.path.join(folder, stale))
    x8 = (x_ev[:8].astype(np.float32) / 16.0).reshape(8, *shape)
    refs, ops = {"x": x8}, {}
    for kind, dynamo in (("ts", False), ("dynamo", True)):
        path = os.path.join(folder, f"model-{kind}.onnx")
        export(model, shape, path, dynamo)
        refs[kind] = ort_outputs(path, x8)
        opset, types = ops_of(path)
        ops[kind] = {"opset": opset, "ops": types}
    np.savez_compressed(os.path.join(folder, "reference.npz"), **refs)
    info = {"name": name, "about": about(cls), "input": [1, *shape], "task": task,
            "metric": "top-1" if task == "classify" else "MSE", "value": round(value, 6), "epochs": epochs, "lr": lr,
            "params": params(cls), "ops": ops, "made_with": versions()}
    write_info(folder, info)
    return info


TABLE_START = "\n## Keras (tf2onnx)\n"  # make_keras_zoo.py's section, kept as it is


def write_readme(out, infos):
    readme = os.path.join(out, "README.md")
    keras = ""
    if os.path.exists(readme):
        with open(readme) as f:
            parts = f.read().split(TABLE_START, 1)
        keras = TABLE_START + parts[1] if len(parts) == 2 else ""
    with open(readme, "w") as f:
        f.write("# zoo: import-coverage models\n\n")
        f.write("Made by [`scripts/make_zoo.py`](../../scripts/make_zoo.py): trained on scikit-learn's bundled digits\n")
        f.write("(UCI ML hand-written digits, CC BY 4.0; 8x8, pixel values 0..16), exported by torch's TorchScript\n")
        f.write("exporter (opset 13) and its default dynamo exporter (external weights as written). Input transform\n")
        f.write("x / 16 (`--input-scale 0.0625`). `calib.npz` / `eval.npz`: uint8 `[N, 1, 8, 8]`, the split of\n")
        f.write("examples/digits/train.py's method with this script's seed; `kws-conv1d` and `tcn` read the rows as\n")
        f.write("8 channels. Each model's `info.json` holds its row (the table is rendered from them, so\n")
        f.write("`--only NAME` remakes one model and keeps the others' rows).\n\n")
        f.write("| model | task | float (torch, eval 500) | params | TorchScript ops (opset) | dynamo ops (opset) |\n")
        f.write("|---|---|---|---|---|---|\n")
        for i in infos:
            what = f"top-1 {i['value']:.3f}" if i["task"] == "classify" else f"MSE {i['value']:.5f}"
            ts, dy = i["ops"]["ts"], i["ops"]["dynamo"]
            f.write(f"| {i['name']} | {i['task']} | {what} | {i['params']} | {', '.join(ts['ops'])} ({ts['opset']}) | "
                    f"{', '.join(dy['ops'])} ({dy['opset']}) |\n")
        f.write("\n")
        for i in infos:
            f.write(f"- `{i['name']}`: {i['about']}\n")
        made = {}
        for i in infos:
            made.setdefault(i["made_with"], []).append(i["name"])
        if len(made) == 1:
            f.write(f"\nMade with {next(iter(made))}.\n")
        else:
            f.write("\n")
            for v, names in made.items():
                f.write(f"Made with {v}: {', '.join(names)}.\n")
        f.write(keras)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "..", "examples", "zoo"))
    ap.add_argument("--epochs", type=int, default=40, help="epochs for models without their own count")
    ap.add_argument("--only", help="NAME[,NAME...]: remake these models only; the README keeps the others' rows "
                                   "(read from their info.json)")
    args = ap.parse_args()
    names = list(MODELS) if args.only is None else args.only.split(",")
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        ap.error(f"unknown model {', '.join(unknown)}; known: {', '.join(MODELS)}")
    os.makedirs(args.out, exist_ok=True)
    (x_tr, y_tr), (x_cal, y_cal), (x_ev, y_ev) = split()
    np.savez_compressed(os.path.join(args.out, "calib.npz"), x=x_cal, y=y_cal)  # same bytes every time
    np.savez_compressed(os.path.join(args.out, "eval.npz"), x=x_ev, y=y_ev)
    infos = []
    for name in MODELS:
        if name in names:
            start = time.time()
            info = make(name, args.out, x_tr, y_tr, x_ev, y_ev, args.epochs)
            print(f"{name:18s} {info['task']:11s} {info['value']:.4f}  params {info['params']:6d}  "
                  f"ts opset {info['ops']['ts']['opset']}  dynamo opset {info['ops']['dynamo']['opset']}  "
                  f"{time.time() - start:.0f} s", flush=True)
        else:
            path = os.path.join(args.out, name, "info.json")
            if not os.path.exists(path):
                print(f"{name}: no {path}, left out of the README (make it with --only {name})")
                continue
            with open(path) as f:
                info = json.load(f)
        infos.append(info)
    write_readme(args.out, infos)


if __name__ == "__main__":
    main()
