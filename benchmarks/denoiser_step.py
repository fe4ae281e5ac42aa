"""``bench_train.py --denoiser``: one training step of the learned denoiser, nlref against PyTorch.

The default preset (:data:`nlref.nn.train.DENOISER_PRESETS` ``"default"``: width 32, depth 8,
two windowed non-local blocks of radius 5, C_i = 8) on its batch (16 noisy 32 x 32 patches), in
float32.  nlref's step is the trainer's: forward, MSE against the noise, backward, Adam
(:func:`nlref.nn.train.adam_step`).  PyTorch runs the same network from the same parameters
with ``torch.nn.functional``; its non-local block visits the window with the same offset loop,
by slicing (the scores of each offset on the box of queries whose key lies inside the map,
``-inf`` elsewhere, then a softmax over the offsets), and autograd gives its backward.  PyTorch
is a peer only, never a dependency: one thread (``torch.set_num_threads(1)``); start with
``OMP_NUM_THREADS=1`` so that nlref's BLAS uses one thread too (the row records both).
"""

from __future__ import annotations

import itertools

import numpy as np
from common import measure, ratio

from nlref.backend import blas_threads
from nlref.nn.denoiser import build_denoiser, denoiser_backward, denoiser_forward
from nlref.nn.train import DENOISER_PRESETS, adam_init, adam_step, noisy_batch


def nlref_step(cfg, model, params, state, y, noise):
    """A closure running one training step of nlref (the body of the trainer's step)."""
    box = {"params": params, "state": state, "opt": adam_init(params)}

    def run():
        out, cache, box["state"] = denoiser_forward(y, box["params"], box["state"], model, train=True)
        diff = out - noise
        _, grads = denoiser_backward(diff * (2.0 / diff.size), cache, model)
        box["params"], box["opt"] = adam_step(box["params"], grads, box["opt"], lr=cfg.lr)

    return run


def _torch_nonlocal(torch, x, P, name, window):
    """The windowed block, ``z = W_z softmax_t(C_i^-1/2 theta_i . phi_{i+t}) g_{i+t} + x``, by offsets."""
    F = torch.nn.functional

    def embed(b):
        return F.conv2d(x, P[f"{name}.{b}.w"][:, :, None, None], P[f"{name}.{b}.b"])

    theta, phi, g = embed("theta"), embed("phi"), embed("g")
    n, ci, h, w = theta.shape
    scores, shifts = [], []
    for dy, dx in itertools.product(range(-window, window + 1), repeat=2):
        qy, ky = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
        qx, kx = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
        s = torch.full((n, h, w), float("-inf"), dtype=x.dtype)
        s[:, qy, qx] = (theta[:, :, qy, qx] * phi[:, :, ky, kx]).sum(1) * ci**-0.5
        scores.append(s)
        shifts.append((qy, qx, ky, kx))
    weights = torch.softmax(torch.stack(scores), dim=0)  # (T, N, H, W), max-subtracted inside
    y = torch.zeros_like(g)
    for t, (qy, qx, ky, kx) in enumerate(shifts):
        y[:, :, qy, qx] = y[:, :, qy, qx] + weights[t, :, None, qy, qx] * g[:, :, ky, kx]
    return F.conv2d(y, P[f"{name}.w_z.w"][:, :, None, None], P[f"{name}.w_z.b"]) + x


def torch_forward(torch, y, P, S, model, train):
    F = torch.nn.functional
    x = y
    for spec in model:
        name, op = spec["name"], spec["op"]
        if op == "conv":
            x = F.conv2d(x, P[f"{name}.w"], P.get(f"{name}.b"), padding=1)
        elif op == "bn":
            x = F.batch_norm(x, S[f"{name}.running_mean"], S[f"{name}.running_var"], P[f"{name}.gamma"],
                             P[f"{name}.beta"], training=train, momentum=0.1, eps=1e-5)  # fmt: skip
        elif op == "relu":
            x = F.relu(x)
        elif op == "nonlocal":
            x = _torch_nonlocal(torch, x, P, name, spec["window"])
        else:
            raise ValueError(f"unknown layer {op!r}")
    return x


def torch_step(torch, cfg, model, params, state, y, noise):
    P = {k: torch.tensor(np.array(v), requires_grad=True) for k, v in params.items()}
    S = {k: torch.tensor(np.array(v)) for k, v in state.items()}
    yt, nt = torch.tensor(y), torch.tensor(noise)
    opt = torch.optim.Adam(list(P.values()), lr=cfg.lr)

    def run():
        opt.zero_grad()
        loss = ((torch_forward(torch, yt, P, S, model, True) - nt) ** 2).mean()
        loss.backward()
        opt.step()

    def eval_out():
        with torch.no_grad():
            return torch_forward(torch, yt, P, S, model, False).numpy()

    return run, eval_out


def denoiser_rows(torch, warmup: int, repeats: int) -> list[dict]:
    """The default preset's step in float32: nlref, and PyTorch when importable; time ratio nlref / torch."""
    cfg = DENOISER_PRESETS["default"]
    model, params, state = build_denoiser(**cfg.arch(), rng=0, dtype=np.float32)
    rng = np.random.default_rng(2)
    for k in [k for k in params if k.endswith("w_z.w")]:  # W_z = 0 at start: make the blocks count
        params[k] = (0.1 * rng.standard_normal(params[k].shape)).astype(np.float32)
    y, noise = noisy_batch(
        [np.random.default_rng(0).random((96, 96), dtype=np.float32)], np.random.default_rng(1),
        n=cfg.batch_size, patch=cfg.patch, sigma=cfg.sigma,
    )  # fmt: skip
    case = f"denoiser default: {cfg.batch_size}x1x{cfg.patch}x{cfg.patch}, float32"
    ours = measure(
        nlref_step(cfg, model, dict(params), dict(state), y, noise), warmup=warmup, repeats=repeats
    )
    row = {
        "case": case,
        "impl": f"nlref ({blas_threads()} BLAS thread(s))",
        **ours.as_row(),
        "vs_torch": None,
    }
    rows = [row]
    if torch is not None:
        torch.set_num_threads(1)
        run, eval_out = torch_step(torch, cfg, model, params, state, y, noise)
        # the same network: eval-mode outputs of the untrained parameters, before any step
        diff = float(np.abs(eval_out() - denoiser_forward(y, params, state, model)[0]).max())
        theirs = measure(run, warmup=warmup, repeats=repeats, memory=False)
        row["vs_torch"] = ratio(ours.median, theirs.median)
        row["max_dout"] = diff
        rows.append({"case": case, "impl": f"torch {torch.__version__} (1 thread)", **theirs.as_row(),
                     "vs_torch": 1.0, "max_dout": diff})  # fmt: skip
    return rows
