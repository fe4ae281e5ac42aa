"""Forward+backward time of nlref.nn conv (2-D 3x3, 3-D 3x3x3) and batch_norm vs PyTorch.

The shapes are those of the C2D/I3D res2/res3 stages at batch 8 (Wang et al.
CVPR 2018, Table 1): 64 channels, 56x56 images for 2-D, 8x28x28 clips for 3-D.
nlref runs on NumPy (and CuPy when a GPU is present); PyTorch runs on the CPU
(and on CUDA/cuDNN when available) in the same process, on the same data, and
the table prints nlref's time divided by PyTorch's on the same device.

    python benchmarks/bench_layers.py            # realistic shapes
    python benchmarks/bench_layers.py --quick    # tiny shapes, seconds
"""

from __future__ import annotations

import os
import time

import numpy as np
from common import (
    backends_from,
    bench_parser,
    environment,
    measure,
    print_table,
    ratio,
    try_import,
    write_json,
)

from nlref.backend import asarray
from nlref.nn import batch_norm_backward, batch_norm_forward, conv_backward, conv_forward


def cases(quick: bool) -> list[dict]:
    N, C = (2, 8) if quick else (8, 64)
    hw2, thw3 = ((16, 16), (4, 8, 8)) if quick else ((56, 56), (8, 28, 28))
    return [
        {"case": f"conv2d 3x3 {N}x{C}x{hw2[0]}x{hw2[1]}", "kind": "conv", "x": (N, C, *hw2), "k": (3, 3)},
        {
            "case": f"conv3d 3x3x3 {N}x{C}x{'x'.join(map(str, thw3))}",
            "kind": "conv",
            "x": (N, C, *thw3),
            "k": (3, 3, 3),
        },
        {"case": f"batch_norm {N}x{C}x{'x'.join(map(str, thw3))}", "kind": "bn", "x": (N, C, *thw3)},
    ]


def nlref_fn(case: dict, xp, host: dict):
    x, dout = asarray(host["x"], xp=xp), asarray(host["dout"], xp=xp)
    if case["kind"] == "conv":
        params = {"w": asarray(host["w"], xp=xp), "b": asarray(host["b"], xp=xp)}

        def run():
            out, cache = conv_forward(x, params, padding=1)
            return conv_backward(dout, cache)
    else:
        C = x.shape[1]
        params = {"gamma": xp.ones(C, dtype=np.float32), "beta": xp.zeros(C, dtype=np.float32)}
        state = {"running_mean": xp.zeros(C, dtype=np.float32), "running_var": xp.ones(C, dtype=np.float32)}

        def run():
            out, cache, _ = batch_norm_forward(x, params, state, train=True)
            return batch_norm_backward(dout, cache)

    return run


def torch_fn(case: dict, torch, device: str, host: dict):
    F = torch.nn.functional
    x = torch.tensor(host["x"], device=device, requires_grad=True)
    dout = torch.tensor(host["dout"], device=device)
    if case["kind"] == "conv":
        w = torch.tensor(host["w"], device=device, requires_grad=True)
        b = torch.tensor(host["b"], device=device, requires_grad=True)
        conv = F.conv2d if len(case["k"]) == 2 else F.conv3d
        leaves = (x, w, b)
        forward = lambda: conv(x, w, b, padding=1)  # noqa: E731
    else:
        C = x.shape[1]
        gamma = torch.ones(C, device=device, requires_grad=True)
        beta = torch.zeros(C, device=device, requires_grad=True)
        rm, rv = torch.zeros(C, device=device), torch.ones(C, device=device)
        leaves = (x, gamma, beta)
        forward = lambda: F.batch_norm(x, rm, rv, gamma, beta, training=True)  # noqa: E731

    def run():
        for t in leaves:
            t.grad = None
        forward().backward(dout)

    return run


def main() -> None:
    parser = bench_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    torch = try_import("torch")
    rng = np.random.default_rng(0)
    data = []
    for case in cases(args.quick):
        C = case["x"][1]
        host = {  # padding 1 and 3x3(x3) kernels keep the shape, so dout is shaped like x
            "x": rng.standard_normal(case["x"]).astype(np.float32),
            "dout": rng.standard_normal(case["x"]).astype(np.float32),
        }
        if case["kind"] == "conv":
            host["w"] = (rng.standard_normal((C, C, *case["k"])) * 0.05).astype(np.float32)
            host["b"] = np.zeros(C, np.float32)
        data.append((case, host))

    # One library at a time, all cases, then a pause: the idle worker threads of one
    # library (OpenBLAS, PyTorch's OpenMP pool) keep spinning for a while after a call
    # and would slow the other down on a small, busy machine if the two were interleaved.
    times: dict = {}
    for xp in backends_from(args.backend):
        for case, host in data:
            times[case["case"], f"nlref ({xp.__name__})"] = measure(
                nlref_fn(case, xp, host), xp=xp, warmup=args.warmup, repeats=args.repeats
            )
        time.sleep(1.0)
        device = "cpu" if xp is np else "cuda"
        if torch is not None and (device == "cpu" or torch.cuda.is_available()):
            sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
            for case, host in data:
                times[case["case"], f"torch ({device})"] = measure(
                    torch_fn(case, torch, device, host),
                    warmup=args.warmup,
                    repeats=args.repeats,
                    memory=False,
                    sync=sync,
                )
            time.sleep(1.0)

    rows = []
    for case, _ in data:
        for (name, impl), res in times.items():
            if name == case["case"]:
                device = "cpu" if impl.endswith("(numpy)") or impl.endswith("(cpu)") else "cuda"
                ref = times.get((name, f"torch ({device})"))
                rows.append(
                    {
                        "case": name,
                        "impl": impl,
                        **res.as_row(),
                        "vs_torch": ratio(res.median, ref.median if ref else None),
                    }
                )
    print_table(rows)
    if torch is None:
        print("torch not importable: PyTorch columns left out")
    else:
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
            "vs_torch = nlref time / torch time on the same device"
        )
    threads = (os.environ.get("OPENBLAS_NUM_THREADS", "unset"), os.environ.get("OMP_NUM_THREADS", "unset"))
    print(
        "OPENBLAS_NUM_THREADS={} OMP_NUM_THREADS={} (set both to 1 for a single-core comparison on a busy "
        "machine)".format(*threads)
    )
    write_json(args.json, {"rows": rows, "env": environment(), "args": vars(args)})


if __name__ == "__main__":
    main()
