#!/usr/bin/env python3
"""Latency of LiteRT (XNNPACK) on a .tflite, for scripts/bench-host.sh.

usage: bench_litert.py MODEL.tflite INPUTS.bin SCALE OFFSET [ITERATIONS] [pixels|mfcc] [THREADS]

INPUTS.bin holds the raw inputs back to back (uint8 pixels or int8 MFCC, the fixtures' dtype,
NHWC): the same bytes the hawq runtime's `write_input_raw` takes. Each is turned into the real
value `x*SCALE + OFFSET` and quantized with the model's input parameters, then invoked in turn.
Prints `median_us=... mean_us=... iterations=...` (wall time of `invoke()` only, after a
warm-up), like runtime/examples/bench_invoke.rs.
"""
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def main():
    model, inputs, scale, offset = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    iterations = int(sys.argv[5]) if len(sys.argv) > 5 else 2000
    threads = int(sys.argv[7]) if len(sys.argv) > 7 else 1
    it = Interpreter(model_path=model, num_threads=threads)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    shape = inp["shape"][1:]
    size = int(np.prod(shape))
    raw = np.fromfile(inputs, dtype=np.uint8)
    dtype = np.uint8 if "pixels" in sys.argv[6:7] else np.int8
    xs = raw.view(dtype).reshape(-1, *shape)
    s, z = inp["quantization"]
    info = np.iinfo(inp["dtype"])
    qs = [
        np.clip(np.round((x.astype(np.float64) * scale + offset) / s) + z, info.min, info.max)
        .astype(inp["dtype"])[None]
        for x in xs
    ]
    assert len(raw) == len(qs) * size
    for i in range(200):
        it.set_tensor(inp["index"], qs[i % len(qs)])
        it.invoke()
    times = []
    for i in range(iterations):
        it.set_tensor(inp["index"], qs[i % len(qs)])
        t0 = time.perf_counter()
        it.invoke()
        times.append((time.perf_counter() - t0) * 1e6)
    times.sort()
    print(f"median_us={times[len(times) // 2]:.2f} mean_us={sum(times) / len(times):.2f} iterations={iterations}")


if __name__ == "__main__":
    main()
