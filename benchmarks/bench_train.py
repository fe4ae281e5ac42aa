"""Time of one training step (forward + backward + Adam update) of tiny NL C2D and NL I3D vs PyTorch.

The networks are the "tiny" layout of :mod:`nlref.nn.video.models` (PAPER_NOTES):
basic blocks, width 8, one embedded-Gaussian space-time non-local block after
res3, on a batch of 32 synthetic clips 3 x 16 x 32 x 32 -- the ablation's
setting.  nlref runs on NumPy (and CuPy when a GPU is present); PyTorch runs
the *same* network (same weights, built from nlref's parameter dict with
``torch.nn.functional``) on the CPU (and CUDA when available) in the same
process.  Before timing, the two forwards are compared (eval mode) and the
largest logit difference is printed: the networks are the same.

nlref's step is :func:`nlref.nn.train.train_step`, as the trainer runs it
(Adam on one flat buffer, :func:`nlref.nn.train.multi_tensor_adam_step`).

Then it counts the array operations of one step (:mod:`nlref.opcount`, on
NumPy: the proxy for GPU kernel launches, ~10-20 us each on a GPU whatever
their size), with the per-tensor Adam of :mod:`nlref.nn.train.optim` and with
``train_step``'s multi-tensor Adam, the optimiser's share, and where the rest
goes, by nlref module (issue #14 aims at <= 200 per step).

    python benchmarks/bench_train.py            # batch 32, 16 x 32 x 32 clips, width 8
    python benchmarks/bench_train.py --quick    # batch 4, 16 x 16 x 16 clips, width 4
    OMP_NUM_THREADS=1 python benchmarks/bench_train.py --threads 1   # one core each, a fair CPU comparison
    python benchmarks/bench_train.py --ops-only # only the operation counts (seconds, no timing)
    OMP_NUM_THREADS=1 python benchmarks/bench_train.py --denoiser   # the learned denoiser's step
"""

from __future__ import annotations

import os

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

from nlref.backend import asarray, to_numpy
from nlref.data.synthetic_video import make_clips
from nlref.nn import softmax_cross_entropy
from nlref.nn.train import adam_step, get_preset, optimizer_init, train_step
from nlref.nn.video import build_model, model_backward, model_forward
from nlref.opcount import count_ops

CFG = get_preset("quick").replace(optimizer="adam", weight_decay=0.0)  # train_step's optimiser: Adam


def nlref_step(model, params, state, x, y):
    """One training step of nlref (:func:`nlref.nn.train.train_step`); returns a closure that runs it."""
    box = {"params": params, "state": state, "opt": optimizer_init(CFG, params)}
    rng = np.random.default_rng(0)

    def run():
        _, _, box["params"], box["state"], box["opt"] = train_step(
            model, box["params"], box["state"], box["opt"], x, y, cfg=CFG, lr=1e-3, rng=rng
        )

    return run


def count_step_ops(model, params, state, x, y, per_tensor):
    """Array operations of one training step on NumPy: per-tensor Adam, or train_step; returns the counter."""
    opt, rng = optimizer_init(CFG, params), np.random.default_rng(0)
    with count_ops() as ops:
        x, y, params, state, opt = ops.track((x, y, params, state, opt))
        if per_tensor:
            logits, cache, _ = model_forward(x, params, state, model, train=True)
            _, dlogits = softmax_cross_entropy(logits, y)
            adam_step(params, model_backward(dlogits, cache), opt, lr=1e-3)
        else:
            train_step(model, params, state, opt, x, y, cfg=CFG, lr=1e-3, rng=rng)
    return ops


def op_count_rows(case, model, params, state, x, y):
    """Per optimiser: total operations per step, the optimiser's share; and train_step's by module."""
    rows, module_rows = [], []
    for per_tensor in (True, False):
        ops = count_step_ops(model, params, state, x, y, per_tensor)
        modules = ops.by_module()
        optimiser = sum(modules.pop(m, 0) for m in ("nlref.nn.train.optim", "nlref.nn.train.multi_tensor"))
        rows.append(
            {
                "case": case,
                "optimiser": "per-tensor Adam" if per_tensor else "train_step (multi-tensor Adam)",
                "ops/step": ops.total,
                "optimiser ops": optimiser,
                "host syncs": ops.syncs,
            }
        )
    module_rows = [
        {"case": case, "module": m.removeprefix("nlref."), "ops/step": n}
        for m, n in sorted(ops.by_module().items(), key=lambda mn: -mn[1])
    ]
    return rows, module_rows


def torch_forward(torch, x, P, S, model, train):
    """The nlref model spec run with torch.nn.functional (embedded-Gaussian non-local blocks only)."""
    F = torch.nn.functional

    def conv_bn(h, conv, bn, stride):
        w = P[f"{conv}.w"]
        h = F.conv3d(h, w, stride=stride, padding=tuple(k // 2 for k in w.shape[2:]))
        return F.batch_norm(
            h,
            S[f"{bn}.running_mean"],
            S[f"{bn}.running_var"],
            P[f"{bn}.gamma"],
            P[f"{bn}.beta"],
            training=train,
            momentum=0.1,
            eps=1e-5,
        )

    def pointwise(h, name):
        return F.conv3d(h, P[f"{name}.w"][:, :, None, None, None], P[f"{name}.b"])

    h = x
    for spec in model:
        op = spec["op"]
        if op == "stem":
            h = F.relu(conv_bn(h, "conv1", "bn1", spec["stride"]))
        elif op == "max_pool":
            h = F.max_pool3d(h, spec["kernel_size"], spec["stride"], spec["padding"])
        elif op == "block":
            name, out = spec["name"], h
            for j in range(1, spec["n_convs"] + 1):
                stride = spec["stride"] if j == spec["stride_conv"] else 1
                out = conv_bn(out, f"{name}.conv{j}", f"{name}.bn{j}", stride)
                out = F.relu(out) if j < spec["n_convs"] else out
            short = conv_bn(h, f"{name}.proj", f"{name}.proj_bn", spec["stride"]) if spec["proj"] else h
            h = F.relu(out + short)
        elif op == "nonlocal":
            assert spec["mode"] == "embedded_gaussian" and spec["space_time"] == "spacetime"
            assert not spec["subsample"]
            n, name = h.shape, spec["name"]
            theta, phi, g = (pointwise(h, f"{name}.{b}").flatten(2) for b in ("theta", "phi", "g"))
            f = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)  # (N, P, P)
            y = (g @ f.transpose(1, 2)).reshape(n[0], -1, *n[2:])  # (N, C_i, T, H, W)
            z = pointwise(y, f"{name}.w_z")
            h = h + F.batch_norm(
                z,
                S[f"{name}.bn.running_mean"],
                S[f"{name}.bn.running_var"],
                P[f"{name}.bn.gamma"],
                P[f"{name}.bn.beta"],
                training=train,
                momentum=0.1,
                eps=1e-5,
            )
        else:
            h = F.linear(h.mean(dim=(2, 3, 4)), P["fc.w"], P["fc.b"])
    return h


def torch_step(torch, device, model, params, state, x, y):
    P = {k: torch.tensor(to_numpy(v), device=device, requires_grad=True) for k, v in params.items()}
    S = {k: torch.tensor(to_numpy(v), device=device) for k, v in state.items()}
    xt, yt = torch.tensor(to_numpy(x), device=device), torch.tensor(to_numpy(y), device=device)
    opt = torch.optim.Adam(P.values(), lr=1e-3)

    def run():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(torch_forward(torch, xt, P, S, model, True), yt)
        loss.backward()
        opt.step()

    def eval_logits():
        with torch.no_grad():
            return torch_forward(torch, xt, P, S, model, False).cpu().numpy()

    return run, eval_logits


def main() -> None:
    parser = bench_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="PyTorch CPU threads (set NumPy's with OMP_NUM_THREADS before starting)",
    )
    parser.add_argument("--ops-only", action="store_true", help="only count array operations per step")
    parser.add_argument(
        "--denoiser", action="store_true", help="the learned denoiser's step instead (see denoiser_step.py)"
    )
    args = parser.parse_args()
    torch = try_import("torch")
    if args.denoiser:
        from denoiser_step import denoiser_rows

        rows = denoiser_rows(torch, args.warmup, args.repeats)
        print_table(rows)
        print(f"vs_torch = nlref time / torch time per training step; {os.getloadavg()[0]:.2f} load")
        write_json(args.json, {"rows": rows, "env": environment(), "args": vars(args)})
        return
    if torch is not None and args.threads:
        torch.set_num_threads(args.threads)
    batch, size, width = (4, 16, 4) if args.quick else (32, 32, 8)
    x_host, y_host = make_clips(batch, seed=0, size=size)
    rows, op_rows, module_rows = [], [], []
    for arch in ("c2d", "i3d"):
        case = f"NL {arch.upper()} w={width} {batch}x3x16x{size}x{size}"
        model, params0, state0 = build_model(arch, width=width, nl_blocks=1, rng=0)
        counted, by_module = op_count_rows(case, model, params0, state0, x_host, y_host)
        op_rows, module_rows = op_rows + counted, module_rows + by_module
        for xp in [] if args.ops_only else backends_from(args.backend):
            device = "cpu" if xp is np else "cuda"
            params = {k: asarray(v, xp=xp) for k, v in params0.items()}
            state = {k: asarray(v, xp=xp) for k, v in state0.items()}
            x, y = asarray(x_host, xp=xp), asarray(y_host, xp=xp)
            res = measure(
                nlref_step(model, params, state, x, y), xp=xp, warmup=args.warmup, repeats=args.repeats
            )
            row = {
                "case": case,
                "impl": f"nlref ({xp.__name__})",
                **res.as_row(),
                "vs_torch": None,
                "max_dlogit": None,
            }
            if torch is not None and (device == "cpu" or torch.cuda.is_available()):
                run, eval_logits = torch_step(torch, device, model, params0, state0, x_host, y_host)
                # same weights on both sides (nlref_step never mutates `params`), eval mode
                ours = to_numpy(model_forward(x, params, state, model, train=False)[0])
                row["max_dlogit"] = float(np.abs(ours - eval_logits()).max())
                sync = (lambda: torch.cuda.synchronize()) if device == "cuda" else (lambda: None)
                tres = measure(run, warmup=args.warmup, repeats=args.repeats, memory=False, sync=sync)
                row["vs_torch"] = ratio(res.median, tres.median)
                rows.append(row)
                rows.append(
                    {
                        "case": case,
                        "impl": f"torch ({device})",
                        **tres.as_row(),
                        "vs_torch": 1.0,
                        "max_dlogit": row["max_dlogit"],
                    }
                )
            else:
                rows.append(row)
    if rows:
        print_table(rows)
    if rows and torch is None:
        print("torch not importable: PyTorch columns left out")
    elif rows:
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads (NumPy: OMP_NUM_THREADS="
            f"{os.environ.get('OMP_NUM_THREADS', 'unset')}); vs_torch = nlref time / torch "
            "time per training step; max_dlogit = largest |logit difference| of the two forwards "
            "(eval mode)"
        )
    print("\narray operations per training step (nlref.opcount on NumPy; a proxy for GPU kernel launches):")
    print_table(op_rows)
    print("\ntrain_step's operations by nlref module:")
    print_table(module_rows)
    payload = {"rows": rows, "op_counts": op_rows, "op_counts_by_module": module_rows}
    write_json(args.json, {**payload, "env": environment(), "args": vars(args)})


if __name__ == "__main__":
    main()
