#!/usr/bin/env python3
"""Import-robustness sweep: small models of patterns the zoo (make_zoo.py) does not cover, trained
briefly on the digits, each exported by torch's TorchScript exporter (opset 13) and its dynamo
exporter, with onnxruntime's outputs on 8 eval samples beside them for comparison with
`float_exec`. Nothing here is committed but this script; the findings became Rust-built test
graphs in compiler/tests/import_sweep.rs.

Outputs under --out (default /tmp/sweep): <name>-ts.onnx, <name>-dynamo.onnx(.data),
<name>.ref.npz (x, ts, dynamo), <name>.json (float accuracy, op types, export errors).

Usage: python scripts/sweep_models.py [--out DIR] [--only NAME,...] [--epochs N] [--ts-opset N]
(`--only log-softmax --ts-opset 11`: the MNIST example's ending as older TorchScript exports write it)
"""
import argparse
import os
import sys
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zoo_data import SEED, finding, ort_outputs, save_sweep_model, split  # noqa: E402


def cbr(cin, cout, k=3, s=1, groups=1, act=nn.ReLU):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), act())


class ShuffleNet(nn.Module):
    """ShuffleNetV2 units: channel split (chunk), branch, concat, channel shuffle by
    Reshape/Transpose/Reshape."""

    def __init__(self):
        super().__init__()
        self.stem = cbr(1, 16)
        self.b1 = nn.Sequential(cbr(8, 8, 1), nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False), nn.BatchNorm2d(8),
                                cbr(8, 8, 1))
        self.b2 = nn.Sequential(cbr(8, 8, 1), nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False), nn.BatchNorm2d(8),
                                cbr(8, 8, 1))
        self.fc = nn.Linear(16, 10)

    @staticmethod
    def shuffle(x, groups=2):
        n, c, h, w = x.shape
        return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)

    def unit(self, x, branch):
        a, b = x.chunk(2, dim=1)
        return self.shuffle(torch.cat([a, branch(b)], 1))

    def forward(self, x):
        x = self.unit(self.unit(self.stem(x), self.b1), self.b2)
        return self.fc(x.mean((2, 3)))


class MBConv(nn.Module):
    def __init__(self, cin, cout, t, s, k=3):
        super().__init__()
        mid = cin * t
        self.expand = cbr(cin, mid, 1, act=nn.SiLU)
        self.dw = cbr(mid, mid, k, s, groups=mid, act=nn.SiLU)
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(mid, max(2, cin // 4), 1), nn.SiLU(),
                                nn.Conv2d(max(2, cin // 4), mid, 1), nn.Sigmoid())
        self.project = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.res = s == 1 and cin == cout

    def forward(self, x):
        y = self.dw(self.expand(x))
        y = self.project(y * self.se(y))
        return x + y if self.res else y


class EfficientNet(nn.Module):
    """EfficientNet-style MBConv blocks: SiLU, squeeze-and-excitation with SiLU, residual."""

    def __init__(self):
        super().__init__()
        self.stem = cbr(1, 8, act=nn.SiLU)
        self.blocks = nn.Sequential(MBConv(8, 8, 2, 1), MBConv(8, 16, 4, 2, 5), MBConv(16, 16, 4, 1))
        self.head = cbr(16, 32, 1, act=nn.SiLU)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.head(self.blocks(self.stem(x))), 1), 1))


class Ghost(nn.Module):
    def __init__(self, cin, cout, relu=True):
        super().__init__()
        init = (cout + 1) // 2
        self.cout = cout
        self.primary = cbr(cin, init, 1, act=nn.ReLU if relu else nn.Identity)
        self.cheap = cbr(init, init, 3, groups=init, act=nn.ReLU if relu else nn.Identity)

    def forward(self, x):
        a = self.primary(x)
        return torch.cat([a, self.cheap(a)], 1)[:, :self.cout]


class GhostNet(nn.Module):
    """GhostNet-style ghost modules: a 1x1 conv concatenated with a depthwise conv of it, sliced to
    an odd channel count, residual."""

    def __init__(self):
        super().__init__()
        self.stem = cbr(1, 8)
        self.g1, self.g2 = Ghost(8, 13), Ghost(13, 8, relu=False)
        self.g3 = Ghost(8, 24)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.g2(self.g1(x))
        return self.fc(self.g3(x).mean((2, 3)))


class OddShapes(nn.Module):
    """Channels 3, 5, 7, 13; 1xN and Nx1 kernels; a stride-2 depthwise conv on a 7x7 map; a
    channel multiplier 2 depthwise; MaxPool 3x3 stride 2 pad 1; AdaptiveAvgPool2d + nn.Flatten."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 3, (1, 3), padding=(0, 1))
        self.c2 = nn.Conv2d(3, 5, (3, 1), padding=(1, 0))
        self.c3 = nn.Conv2d(5, 7, 2)  # 8x8 -> 7x7
        self.dw = nn.Conv2d(7, 7, 3, 2, 1, groups=7)  # 7x7 -> 4x4
        self.dw2 = nn.Conv2d(7, 14, 3, 1, 1, groups=7)  # multiplier 2
        self.c4 = nn.Conv2d(14, 13, 1)
        self.pool = nn.MaxPool2d(3, 2, 1)  # 4x4 -> 2x2
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(13, 10))

    def forward(self, x):
        x = F.relu(self.c2(F.relu(self.c1(x))))
        x = F.relu(self.dw(F.relu(self.c3(x))))
        x = F.relu(self.c4(F.relu(self.dw2(x))))
        return self.head(self.pool(x))


class PadConv(nn.Module):
    """ZeroPad2d and F.pad before convolutions: symmetric, asymmetric (TF-'same' stride 2), and a
    pad feeding a depthwise conv."""

    def __init__(self):
        super().__init__()
        self.p1, self.c1 = nn.ZeroPad2d(1), nn.Conv2d(1, 8, 3)
        self.c2 = nn.Conv2d(8, 16, 3, 2)
        self.dw = nn.Conv2d(16, 16, 3, groups=16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.c1(self.p1(x)))
        x = F.relu(self.c2(F.pad(x, (0, 1, 0, 1))))  # 8x8 -> 9x9 -> 4x4
        x = F.relu(self.dw(F.pad(x, (1, 1, 1, 1))))
        return self.fc(x.mean((2, 3)))


class Bilinear(nn.Module):
    """A decoder with nn.Upsample(scale_factor=2, mode='bilinear')."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 8, 3, 1, 1), nn.Conv2d(8, 8, 3, 1, 1)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear")
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.relu(self.c2(self.up(x)))
        return self.fc(x.mean((2, 3)))


class BnAfterAdd(nn.Module):
    """Convs without bias, a residual Add, then BatchNorm and ReLU after the Add (pre-activation
    ResNet order), and a ReLU then BatchNorm order."""

    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(1, 12, 3, 1, 1, bias=False)
        self.c1, self.c2 = nn.Conv2d(12, 12, 3, 1, 1, bias=False), nn.Conv2d(12, 12, 3, 1, 1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(12), nn.BatchNorm2d(12)
        self.c3, self.bn3 = nn.Conv2d(12, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.c0(x)
        x = F.relu(self.bn1(x + self.c2(F.relu(self.c1(x)))))
        x = self.bn3(F.relu(self.c3(x)))
        return self.fc(x.mean((2, 3)))


class Clamps(nn.Module):
    """torch.clamp(0, 6), Hardtanh(-1, 1), clamp(min=0), clamp(max=4) alone, F.relu6 and
    Hardtanh(0, 1) on activations after convs and a linear layer."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(1, 8, 3, 1, 1), nn.Conv2d(8, 16, 3, 2, 1), nn.Conv2d(16, 16, 3, 1, 1)
        self.f1, self.f2 = nn.Linear(16, 32), nn.Linear(32, 10)
        self.ht = nn.Hardtanh(-1.0, 1.0)

    def forward(self, x):
        x = torch.clamp(self.c1(x), 0, 6)
        x = self.ht(self.c2(x))
        x = torch.clamp(self.c3(x), min=0)
        x = torch.clamp(x, max=4)
        x = F.hardtanh(self.f1(x.mean((2, 3))), 0.0, 1.0)
        return self.f2(F.relu6(x))


class MatMulAdd(nn.Module):
    """x @ W + b with W stored [in, out] (MatMul + Add, no Gemm), x.view(x.size(0), -1), a
    Linear without bias, scalar input normalization (x - 0.5) / 0.25 inside the model."""

    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(64, 48) * 0.1)
        self.b1 = nn.Parameter(torch.zeros(48))
        self.f2 = nn.Linear(48, 32, bias=False)
        self.w3 = nn.Parameter(torch.randn(32, 10) * 0.1)

    def forward(self, x):
        x = (x - 0.5) / 0.25
        x = x.view(x.size(0), -1)
        x = F.relu(x @ self.w1 + self.b1)
        x = F.relu(self.f2(x))
        return x @ self.w3


class LogSoftmaxNet(nn.Module):
    """PyTorch's MNIST example shape: conv, conv, max pool, dropout, flatten, fc, fc, log_softmax."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 8, 3, 1), nn.Conv2d(8, 16, 3, 1)
        self.d1, self.d2 = nn.Dropout(0.25), nn.Dropout(0.5)
        self.f1, self.f2 = nn.Linear(16 * 2 * 2, 32), nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c2(F.relu(self.c1(x)))), 2)
        x = torch.flatten(self.d1(x), 1)
        return F.log_softmax(self.f2(self.d2(F.relu(self.f1(x)))), dim=1)


class Audio1d(nn.Module):
    """1-D audio [1, 1, 64]: strided Conv1d, depthwise Conv1d, AvgPool1d, BatchNorm1d, flatten,
    Linear."""

    def __init__(self):
        super().__init__()
        self.c1, self.b1 = nn.Conv1d(1, 8, 5, 2, 2, bias=False), nn.BatchNorm1d(8)
        self.dw, self.pw = nn.Conv1d(8, 8, 5, 1, 2, groups=8), nn.Conv1d(8, 16, 1)
        self.c3 = nn.Conv1d(16, 16, 3, 2, 1)
        self.fc = nn.Linear(16 * 8, 10)

    def forward(self, x):
        x = F.relu(self.b1(self.c1(x)))
        x = F.avg_pool1d(F.relu(self.pw(F.relu(self.dw(x)))), 2)
        x = F.relu(self.c3(x))
        return self.fc(x.flatten(1))


class Imu(nn.Module):
    """Channels-last [1, 8, 8] (time, features) permuted to [N, C, L] in the model, Conv1d, mean."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv1d(8, 16, 3, 1, 1), nn.Conv1d(16, 16, 3, 1, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = x.permute(0, 2, 1)
        x = F.relu(self.c2(F.relu(self.c1(x))))
        return self.fc(x.mean(-1))


class LayerNormMlp(nn.Module):
    """An MLP with LayerNorm (expected: a refusal)."""

    def __init__(self):
        super().__init__()
        self.f1, self.ln, self.f2 = nn.Linear(64, 32), nn.LayerNorm(32), nn.Linear(32, 10)

    def forward(self, x):
        return self.f2(F.relu(self.ln(self.f1(x.flatten(1)))))


class Gru(nn.Module):
    """A GRU over the image rows as 8 steps of 8 features (expected: a refusal)."""

    def __init__(self):
        super().__init__()
        self.rnn, self.fc = nn.GRU(8, 16, batch_first=True), nn.Linear(16, 10)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


class Lstm(Gru):
    """An LSTM over the image rows as 8 steps of 8 features (expected: a refusal)."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(8, 16, batch_first=True)


class Attention(nn.Module):
    """Self-attention over the image rows: q k^T, softmax, times v (MatMul between activations;
    expected: a refusal)."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(8, 16), nn.Linear(8, 16), nn.Linear(8, 16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        a = torch.softmax(self.q(x) @ self.k(x).transpose(1, 2) / 4.0, -1)
        return self.fc((a @ self.v(x)).mean(1))


class DynamicBatch(nn.Module):
    """A small CNN exported with a dynamic batch axis (dynamic_axes / dynamic_shapes) and
    x.view(x.size(0), -1) before the classifier."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 8, 3, 1, 1), nn.Conv2d(8, 16, 3, 2, 1)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = F.relu(self.c2(F.relu(self.c1(x))))
        return self.fc(x.view(x.size(0), -1))


class Cbam(nn.Module):
    """CBAM-style spatial attention: channel mean and max (dim=1, keepdim), concatenated, a 7x7
    conv, sigmoid, broadcast multiply over the channels (expected: a refusal)."""

    def __init__(self):
        super().__init__()
        self.c1, self.sa = nn.Conv2d(1, 8, 3, 1, 1), nn.Conv2d(2, 1, 7, 1, 3)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.c1(x))
        a = torch.sigmoid(self.sa(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))
        return self.fc((x * a).mean((2, 3)))


class SelfOps(nn.Module):
    """Edge cases of wiring: x + x, torch.cat([x, x]), a residual from the model input, the
    input's channel repeated, x * 0.5 + 1 after a conv, a sigmoid output."""

    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(1, 1, 3, 1, 1)
        self.c1, self.c2 = nn.Conv2d(1, 6, 3, 1, 1), nn.Conv2d(12, 12, 3, 2, 1)
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        x = x + self.c0(x)
        y = F.relu(self.c1(x))
        y = y + y
        y = torch.cat([y, y], 1)
        y = self.c2(y) * 0.5 + 1.0
        return torch.sigmoid(self.fc(F.relu(y).mean((2, 3))))


class Pools(nn.Module):
    """x.sum((2, 3)), F.adaptive_max_pool2d(x, 1), AvgPool2d(3, 1, 1) (count_include_pad), avg
    pool with ceil_mode, AdaptiveAvgPool2d(2) on a 4x4 map, concatenated."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 8, 3, 1, 1), nn.Conv2d(8, 8, 3, 1, 1)
        self.fc = nn.Linear(8 * 4 + 8 + 8, 10)

    def forward(self, x):
        x = F.avg_pool2d(F.relu(self.c1(x)), 3, 1, 1)
        x = F.avg_pool2d(F.relu(self.c2(x)), 3, 2, 0, ceil_mode=True)  # 8x8 -> 4x4
        a = F.adaptive_avg_pool2d(x, 2).flatten(1)
        return self.fc(torch.cat([a, F.adaptive_max_pool2d(x, 1).flatten(1), x.sum((2, 3)) / 16.0], 1))


class WidthConcat(nn.Module):
    """Concatenation along the width axis of two conv branches (expected: refused or supported)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 8, 3, 1, 1), nn.Conv2d(1, 8, 3, 1, 1)
        self.c = nn.Conv2d(8, 16, 3, 2, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        y = torch.cat([F.relu(self.a(x)), F.relu(self.b(x))], 3)  # 8x16
        return self.fc(F.relu(self.c(y)).mean((2, 3)))


class BnMlp(nn.Module):
    """An MLP with BatchNorm1d after each Linear, and one on the flattened input."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(64), nn.Linear(64, 48), nn.BatchNorm1d(48), nn.ReLU(),
                                 nn.Linear(48, 24), nn.BatchNorm1d(24), nn.LeakyReLU(0.1), nn.Linear(24, 10))

    def forward(self, x):
        return self.net(x)


class PerFrame(nn.Module):
    """A Linear applied per time step of [N, T, F] (MatMul of a 3-D activation), then mean over
    time."""

    def __init__(self):
        super().__init__()
        self.f1, self.fc = nn.Linear(8, 16), nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(F.relu(self.f1(x)).mean(1))


class Upsample1d(nn.Module):
    """ConvTranspose1d and F.interpolate(scale_factor=2) on 1-D maps."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(8, 16, 3, 2, 1)
        self.up = nn.ConvTranspose1d(16, 8, 2, 2)
        self.c2 = nn.Conv1d(8, 8, 3, 1, 1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.up(F.relu(self.c1(x))))
        x = F.interpolate(F.relu(self.c2(x)), scale_factor=2)
        return self.fc(x.mean(-1))


class SpatialTranspose(nn.Module):
    """H and W swapped by x.transpose(2, 3) between convs with 1x3 kernels and (1, 2) strides, then
    flatten(1) into a Linear: every layer must see the swapped axes."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 8, (1, 3), (1, 2), (0, 1)), nn.Conv2d(8, 8, (1, 3), (1, 2), (0, 1))
        self.fc = nn.Linear(8 * 4 * 2, 10)

    def forward(self, x):
        x = F.relu(self.c1(x))  # 8x4
        x = F.relu(self.c2(x.transpose(2, 3)))  # 4x8 -> 4x4
        x = F.relu(self.c2(x.transpose(2, 3)))  # 4x4 -> 4x2
        return self.fc(x.flatten(1))


class PermuteFlatten(nn.Module):
    """A conv map permuted to channels-last and flattened into a Linear, and reshaped to
    [N, H*W, C] and averaged over the pixels."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 6, 3, 2, 1), nn.Conv2d(6, 10, 3, 1, 1)
        self.fc = nn.Linear(6 * 4 * 4, 10)

    def forward(self, x):
        x = F.relu(self.c1(x))
        a = self.fc(x.permute(0, 2, 3, 1).flatten(1))
        b = F.relu(self.c2(x)).permute(0, 2, 3, 1).reshape(x.shape[0], 16, 10).mean(1)
        return a + b


class Focus(nn.Module):
    """YOLOv5's Focus: four strided slices (space-to-depth) concatenated, then a conv; and a crop
    x[:, :, 1:-1, 1:-1] by negative ends."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(4, 16, 3, 1, 1), nn.Conv2d(16, 16, 3, 1, 1)
        self.fc = nn.Linear(16 * 2 * 2, 10)

    def forward(self, x):
        x = torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1)
        x = F.relu(self.c2(F.relu(self.c1(x))))[:, :, 1:-1, 1:-1]
        return self.fc(x.flatten(1))


class SplitUneven(nn.Module):
    """torch.split(x, [3, 5], dim=1) into two branches of different depth, concatenated back,
    padding='same' convs with even kernels (4 and 2), AvgPool2d(3, 1, 1) with count_include_pad."""

    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(1, 8, 4, padding="same")
        self.a = nn.Conv2d(3, 3, 2, padding="same")
        self.b = nn.Sequential(nn.Conv2d(5, 5, 3, 1, 1), nn.ReLU(), nn.Conv2d(5, 5, 3, 1, 1))
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        a, b = torch.split(F.relu(self.c0(x)), [3, 5], dim=1)
        x = torch.cat([F.relu(self.a(a)), F.relu(self.b(b))], 1)
        return self.fc(F.avg_pool2d(x, 3, 1, 1).mean((2, 3)))


class LayerScale(nn.Module):
    """ConvNeXt-ish: a learned per-channel scale gamma[C, 1, 1] times a branch plus the input,
    an Add of a learned [1, C, 1, 1] offset, a GELU."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 2, 2)
        self.dw, self.pw1, self.pw2 = nn.Conv2d(16, 16, 3, 1, 1, groups=16), nn.Conv2d(16, 32, 1), nn.Conv2d(32, 16, 1)
        self.gamma = nn.Parameter(torch.full((16, 1, 1), 0.5))
        self.offset = nn.Parameter(torch.zeros(1, 16, 1, 1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.gamma * self.pw2(F.gelu(self.pw1(self.dw(x))))
        return self.fc((x + self.offset).mean((2, 3)))


class ConvThenFrames(nn.Module):
    """Conv1d front end, x.transpose(1, 2) to [N, T, C], a per-frame Linear, mean over time."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(8, 16, 3, 1, 1)
        self.f1, self.fc = nn.Linear(16, 16), nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.c1(x)).transpose(1, 2)
        return self.fc(F.relu(self.f1(x)).mean(1))


class PixelLinear(nn.Module):
    """ConvNeXt's block order: depthwise conv, permute to channels-last, Linear, GELU, Linear,
    permute back, residual."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 2, 2)
        self.dw, self.l1, self.l2 = nn.Conv2d(16, 16, 3, 1, 1, groups=16), nn.Linear(16, 32), nn.Linear(32, 16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        y = self.l2(F.gelu(self.l1(self.dw(x).permute(0, 2, 3, 1)))).permute(0, 3, 1, 2)
        return self.fc((x + y).mean((2, 3)))


MODELS = {
    "shufflenet": (ShuffleNet, (1, 8, 8)),
    "efficientnet": (EfficientNet, (1, 8, 8)),
    "ghostnet": (GhostNet, (1, 8, 8)),
    "odd-shapes": (OddShapes, (1, 8, 8)),
    "pad-conv": (PadConv, (1, 8, 8)),
    "bilinear": (Bilinear, (1, 8, 8)),
    "bn-after-add": (BnAfterAdd, (1, 8, 8)),
    "clamps": (Clamps, (1, 8, 8)),
    "matmul-add": (MatMulAdd, (1, 8, 8)),
    "log-softmax": (LogSoftmaxNet, (1, 8, 8)),
    "audio-1d": (Audio1d, (1, 64)),
    "imu-permute": (Imu, (8, 8)),
    "layernorm": (LayerNormMlp, (1, 8, 8)),
    "gru": (Gru, (8, 8)),
    "lstm": (Lstm, (8, 8)),
    "attention": (Attention, (8, 8)),
    "dynamic-batch": (DynamicBatch, (1, 8, 8)),
    "cbam": (Cbam, (1, 8, 8)),
    "self-ops": (SelfOps, (1, 8, 8)),
    "pools": (Pools, (1, 8, 8)),
    "width-concat": (WidthConcat, (1, 8, 8)),
    "bn-mlp": (BnMlp, (1, 8, 8)),
    "per-frame": (PerFrame, (8, 8)),
    "upsample-1d": (Upsample1d, (8, 8)),
    "spatial-transpose": (SpatialTranspose, (1, 8, 8)),
    "permute-flatten": (PermuteFlatten, (1, 8, 8)),
    "focus": (Focus, (1, 8, 8)),
    "split-uneven": (SplitUneven, (1, 8, 8)),
    "layer-scale": (LayerScale, (1, 8, 8)),
    "conv-then-frames": (ConvThenFrames, (8, 8)),
    "pixel-linear": (PixelLinear, (1, 8, 8)),
}


def real(x):
    return torch.from_numpy(x.astype(np.float32) / 16.0)


def train(model, x, y, shape, epochs):
    xt, yt = real(x).reshape(len(x), *shape), torch.from_numpy(y)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-4)
    g = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(xt), generator=g).split(64):
            out = model(xt[idx])
            loss = F.nll_loss(out, yt[idx]) if isinstance(model, LogSoftmaxNet) else F.cross_entropy(out, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/sweep")
    ap.add_argument("--only")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--ts-opset", type=int, default=13)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    (x_tr, y_tr), _, (x_ev, y_ev) = split()
    names = list(MODELS) if args.only is None else args.only.split(",")
    for name in names:
        cls, shape = MODELS[name]
        torch.manual_seed(SEED)
        model = cls()
        train(model, x_tr, y_tr, shape, args.epochs)
        with torch.no_grad():
            acc = float((model(real(x_ev).reshape(len(x_ev), *shape)).argmax(1).numpy() == y_ev).mean())
        x8 = (x_ev[:8].astype(np.float32) / 16.0).reshape(8, *shape)
        info, refs = {"name": name, "float": acc, "ops": {}, "errors": {}}, {"x": x8}
        for kind, dynamo in (("ts", False), ("dynamo", True)):
            path = os.path.join(args.out, f"{name}-{kind}.onnx")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    kw = {"dynamo": True} if dynamo else {"dynamo": False, "opset_version": args.ts_opset}
                    if name == "dynamic-batch":
                        kw.update({"dynamic_shapes": ({0: torch.export.Dim("batch")},)} if dynamo else
                                  {"dynamic_axes": {"input": {0: "batch"}, "output": {0: "batch"}}})
                    torch.onnx.export(model, (torch.zeros(2 if name == "dynamic-batch" else 1, *shape),), path, input_names=["input"],
                                      output_names=["output"], **kw)
                refs[kind] = ort_outputs(path, x8)
                m = onnx.load(path, load_external_data=False)
                info["ops"][kind] = sorted({n.op_type for n in m.graph.node})
            except Exception as e:  # an export failure is a finding too, not ours to fix
                info["errors"][kind] = finding(e)
        save_sweep_model(args.out, name, info, refs)
        print(f"{name:14s} float {acc:.3f} ops {info['ops'].get('ts')} errors {info['errors']}", flush=True)


if __name__ == "__main__":
    main()
