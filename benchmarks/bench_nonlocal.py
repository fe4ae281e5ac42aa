"""Forward+backward time and peak memory of the non-local block, per mode, vs the same block in PyTorch.

Shapes are those of Wang et al. (CVPR 2018): the res4 block (8, 1024, 8, 14, 14)
and the res3 block (8, 512, 16, 28, 28), both with (1, 2, 2) subsampling of
phi and g, plus a large image map (4, 256, 64, 64) without subsampling (4096
keys per query: the affinity is 4 x 4096 x 4096).  For every mode, nlref runs
its dense form (the (N, P, P') affinity) and its memory-efficient form
(``memory="chunked"``: online softmax for the Gaussians, ReLU(a_i + b_j) over
key chunks for concatenation, theta (phi^T g) / N' for the dot product).

The full shapes are for CuPy (GPU).  NumPy on a CPU runs shrunken versions,
with the number of positions per frame kept (it is what makes attention
quadratic): batch 8 -> 2, channels / 4, frames / 2, and the image map
(4, 256, 64, 64) -> (1, 64, 64, 64).  ``--quick`` shrinks everything further.

The PyTorch peer is the same block (official pool order: max-pool x before
the phi/g convolutions; batch norm in training mode; concatenation as
ReLU(a_i + b_j), not the (2d, P, P') tensor the ports build), on the same
device, timed in the same run; its output is checked against nlref's.  Peak
memory (``peak_MiB``): NumPy via tracemalloc, CuPy via its memory pool, PyTorch
CUDA via ``max_memory_allocated``.  On the CPU, ``rss_MiB`` measures nlref and
PyTorch alike (Linux): the peak resident memory of one forward+backward over
what the process held just before (``VmHWM`` of /proc/self/status after
resetting it through /proc/self/clear_refs), with glibc's mmap threshold fixed
at 64 KiB so that freed buffers leave the process instead of being reused
unseen from the heap.

    python benchmarks/bench_nonlocal.py            # the table of the report
    python benchmarks/bench_nonlocal.py --quick    # seconds
"""

from __future__ import annotations

import numpy as np
from common import (
    TorchCudaPeak,
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
from nlref.nn import NONLOCAL_MODES, init_nonlocal_params, nonlocal_block_backward, nonlocal_block_forward

FULL = [
    ("res4", (8, 1024, 8, 14, 14), (1, 2, 2)),
    ("res3", (8, 512, 16, 28, 28), (1, 2, 2)),
    ("image", (4, 256, 64, 64), None),
]


def shrink(shape, quick):
    """CPU shapes: batch 8 -> 2, channels / 4, frames / 2 (positions per frame kept)."""
    if quick:
        return (2, 16) + ((2, 8, 8) if len(shape) == 5 else (16, 16))
    if len(shape) == 4:
        return (1, 64, 64, 64)
    n, c, t, h, w = shape
    return (2, c // 4, t // 2, h, w)


def make_case(shape, mode, rng):
    params, state = init_nonlocal_params(shape[1], mode=mode, ndim=len(shape) - 2, rng=rng, std=0.05)
    params["bn.gamma"] = np.ones_like(params["bn.gamma"])  # not the identity init: every path does work
    host = {
        "x": rng.standard_normal(shape).astype(np.float32),
        "dz": rng.standard_normal(shape).astype(np.float32),
    }
    return host, params, state


def nlref_run(host, params, state, mode, sub, memory, xp):
    x, dz = asarray(host["x"], xp=xp), asarray(host["dz"], xp=xp)
    p = {k: asarray(v, xp=xp) for k, v in params.items()}
    s = {k: asarray(v, xp=xp) for k, v in state.items()}

    def forward():
        return nonlocal_block_forward(x, p, s, mode=mode, subsample=sub, memory=memory, train=True)[0]

    def run():
        z, cache, _ = nonlocal_block_forward(x, p, s, mode=mode, subsample=sub, memory=memory, train=True)
        return nonlocal_block_backward(dz, cache)

    return run, forward


def torch_run(host, params, state, mode, sub, torch, device):
    """The same block in PyTorch eager (official pool order), autograd backward."""
    F = torch.nn.functional
    t = lambda a, grad=False: torch.tensor(a, device=device, requires_grad=grad)  # noqa: E731
    x, dz = t(host["x"], True), t(host["dz"])
    p = {k: t(v, True) for k, v in params.items()}
    rm, rv = t(state["bn.running_mean"]), t(state["bn.running_var"])
    nd = x.dim() - 2
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[nd]

    def c1(name, a):  # 1x1(x1) convolution
        w = p[f"{name}.w"]
        return conv(a, w.reshape(w.shape + (1,) * nd), p[f"{name}.b"])

    def forward():
        n, c = x.shape[:2]
        xs = pool(x, sub, sub) if sub else x
        theta = x if mode == "gaussian" else c1("theta", x)
        phi = xs if mode == "gaussian" else c1("phi", xs)
        g = c1("g", xs)
        q = theta.flatten(2).transpose(1, 2)  # (N, P, d)
        k = phi.flatten(2)  # (N, d, P')
        v = g.flatten(2).transpose(1, 2)  # (N, P', C_i)
        if mode.endswith("gaussian"):
            att = torch.softmax(torch.bmm(q, k), dim=-1)
        elif mode == "dot_product":
            att = torch.bmm(q, k) / k.shape[2]
        else:
            d = q.shape[2]
            a = q @ p["concat.w"][:d]
            b = p["concat.w"][d:] @ k
            att = torch.relu(a[:, :, None] + b[:, None, :]) / k.shape[2]
        y = torch.bmm(att, v).transpose(1, 2).reshape((n, -1) + tuple(x.shape[2:]))
        wy = F.batch_norm(c1("w_z", y), rm.clone(), rv.clone(), p["bn.gamma"], p["bn.beta"], training=True)
        return wy + x

    leaves = [x, *p.values()]

    def run():
        for a in leaves:
            a.grad = None
        forward().backward(dz)

    return run, forward


class RssPeak:
    """Peak resident memory (bytes) of a block of code over the resident memory before it (Linux)."""

    def __init__(self):
        self.peak = None

    @staticmethod
    def _status(field):
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(field))

    def __enter__(self):
        try:
            self._base = self._status("VmRSS:")
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # reset the high-water mark to the current RSS
        except OSError:
            self._base = None
        return self

    def __exit__(self, *exc):
        if self._base is not None:
            self.peak = max(0, self._status("VmHWM:") - self._base)


def fixed_mmap_threshold(nbytes=65536):
    """glibc: serve every allocation >= nbytes by mmap, so RSS follows allocations (no-op elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, nbytes)  # M_MMAP_THRESHOLD (also stops its dynamic growth)
    except (OSError, AttributeError):
        pass


def rss_peak(run):
    with RssPeak() as rp:
        run()
    return rp.peak


def main() -> None:
    parser = bench_parser(__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=list(NONLOCAL_MODES), choices=NONLOCAL_MODES)
    parser.add_argument("--cases", nargs="+", default=[c[0] for c in FULL], choices=[c[0] for c in FULL])
    args = parser.parse_args()
    fixed_mmap_threshold()
    torch = try_import("torch")
    rng = np.random.default_rng(0)
    rows = []
    for name, full_shape, sub in FULL:
        if name not in args.cases:
            continue
        for xp in backends_from(args.backend):
            gpu = xp is not np
            shape = full_shape if gpu and not args.quick else shrink(full_shape, args.quick)
            device = "cuda" if gpu else "cpu"
            have_torch = torch is not None and (not gpu or torch.cuda.is_available())
            for mode in args.modes:
                host, params, state = make_case(shape, mode, rng)
                label = f"{name} {'x'.join(map(str, shape))}" + (f" sub {sub}" if sub else "")
                t_res = None
                if have_torch:
                    t_run, t_fwd = torch_run(host, params, state, mode, sub, torch, device)
                    sync = torch.cuda.synchronize if gpu else (lambda: None)
                    t_res = measure(
                        t_run,
                        warmup=args.warmup,
                        repeats=args.repeats,
                        memory=gpu,
                        sync=sync,
                        peak=(lambda: TorchCudaPeak(torch)) if gpu else None,
                    )
                    t_rss = None if gpu else rss_peak(t_run)
                    with torch.no_grad():
                        z_torch = t_fwd().cpu().numpy()
                dense_peak = None
                for memory in ("dense", "chunked"):
                    run, fwd = nlref_run(host, params, state, mode, sub, memory, xp)
                    res = measure(run, xp=xp, warmup=args.warmup, repeats=args.repeats)
                    dense_peak = res.peak_bytes if memory == "dense" else dense_peak
                    row = {
                        "case": label,
                        "mode": mode,
                        "impl": f"nlref {xp.__name__} {memory}",
                        **res.as_row(),
                        "vs_torch": None if t_res is None else ratio(res.median, t_res.median),
                        "mem_vs_dense": ratio(res.peak_bytes, dense_peak),
                    }
                    if not gpu:
                        rss = rss_peak(run)
                        row["rss_MiB"] = None if rss is None else rss / 2**20
                        row["rss_vs_torch"] = None if t_res is None else ratio(rss, t_rss)
                    if have_torch:
                        z = to_numpy(fwd())
                        row["max_rel_diff_vs_torch"] = float(
                            np.abs(z - z_torch).max() / np.abs(z_torch).max()
                        )
                    rows.append(row)
                if t_res is not None:
                    rows.append(
                        {
                            "case": label,
                            "mode": mode,
                            "impl": f"torch {device}",
                            **t_res.as_row(),
                            "vs_torch": 1.0,
                            "rss_MiB": None if t_rss is None else t_rss / 2**20,
                            "rss_vs_torch": None if t_rss is None else 1.0,
                        }
                    )
                print(f"done: {label} {mode}", flush=True)
    print_table(
        rows,
        [
            "case",
            "mode",
            "impl",
            "median_s",
            "vs_torch",
            "peak_MiB",
            "mem_vs_dense",
            "rss_MiB",
            "rss_vs_torch",
            "max_rel_diff_vs_torch",
        ],
    )
    if torch is None:
        print("torch not importable: PyTorch rows left out")
    else:
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
            "vs_torch = nlref time / torch time; "
            "mem_vs_dense = peak_MiB / nlref dense peak_MiB; rss_vs_torch = rss_MiB / torch rss_MiB"
        )
    write_json(args.json, {"rows": rows, "env": environment(), "args": vars(args)})


if __name__ == "__main__":
    main()
