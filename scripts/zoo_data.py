"""What scripts/make_zoo.py and scripts/make_keras_zoo.py share: the digits split (one seed, one
permutation, so both exporters' models train on the same images and use the same calib/eval
files) and onnxruntime's reference outputs. Needs numpy, scikit-learn and onnxruntime only."""
import numpy as np
import onnxruntime as ort
from sklearn.datasets import load_digits

SEED = 20261204
N_EVAL, N_CALIB = 500, 200


def split():
    """(train, calib, eval) pairs of uint8 [N, 1, 8, 8] images 0..16 and int64 labels; calib is a
    subset of train, eval is disjoint from it."""
    d = load_digits()
    x = d.images.astype(np.uint8).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    perm = np.random.RandomState(SEED).permutation(len(x))
    ev, tr = np.sort(perm[:N_EVAL]), perm[N_EVAL:]
    cal = np.sort(tr[:N_CALIB])
    return (x[tr], y[tr]), (x[cal], y[cal]), (x[ev], y[ev])


def ort_outputs(path, x):
    """onnxruntime's outputs of the model at `path`, one sample of `x` at a time."""
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def finding(e):
    """A sweep's record of an export or conversion failure: a finding, not ours to fix."""
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def save_sweep_model(out, name, info, refs):
    """A swept model's reference outputs (`NAME.ref.npz`) and its row (`NAME.json`) in `out`."""
    import json
    import os

    np.savez(os.path.join(out, f"{name}.ref.npz"), **refs)
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(info, f)
