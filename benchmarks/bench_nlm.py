"""Non-local means: nlref vs scikit-image vs OpenCV (vs PyTorch), time and PSNR.

One run, one machine, one noisy image: scikit-image's ``camera`` (512 x 512,
``--quick``: a 128 x 128 crop) with Gaussian noise sigma = 20/255 (seed 0),
patch 7 x 7, search window 21 x 21 (``patch_distance = 10``).

* nlref NumPy: ``nl_means(fast_mode=True)`` (one offset per step), and the
  batched offset loop for reference;
* scikit-image ``denoise_nl_means(fast_mode=True)`` with the same ``h``,
  ``sigma``, patch and window: the time ratio is ``nlref / scikit-image``;
* OpenCV ``fastNlMeansDenoising`` on the uint8 image (``h = 18`` grey levels,
  the best of 12-26 on this image; its own threads);
* PyTorch: the same symmetric offset loop written with torch ops (integral
  image for the box), CPU with one thread like the others (two threads only
  add overhead on arrays of this size), and CUDA when available (not in
  ``--quick``);
* nlref CuPy (batched offsets) when a GPU is present.

    python benchmarks/bench_nlm.py            # full size
    python benchmarks/bench_nlm.py --quick    # seconds
"""

from __future__ import annotations

import os

import numpy as np  # noqa: E402
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

from nlref.backend import asarray, to_numpy  # noqa: E402
from nlref.data import add_gaussian_noise, load_image  # noqa: E402
from nlref.denoise import nl_means  # noqa: E402
from nlref.metrics import psnr  # noqa: E402

SIGMA = 20 / 255
PATCH, DISTANCE = 7, 10
H = 0.8 * SIGMA
CV2_H = 18.0


def torch_offset_loop(torch, u, s: int, d: int, h: float, sigma: float):
    """nlref's symmetric offset loop (uniform patch) in PyTorch, for comparison only.

    The box sum is an integral image (two cumulative sums; ``avg_pool2d`` is
    ~8x slower on the CPU for one channel).
    """
    F = torch.nn.functional
    r = s // 2
    H_, W_ = u.shape
    padded = F.pad(u[None, None], (r, r, r, r), mode="reflect")[0, 0]
    num, den = u.clone(), torch.ones_like(u)
    for a in range(0, d + 1):
        for b in range(-d, d + 1):
            if a == 0 and b <= 0:
                continue
            y0, y1, x0, x1 = max(0, -a), min(H_, H_ - a), max(0, -b), min(W_, W_ - b)
            D = (
                padded[y0 : y1 + 2 * r, x0 : x1 + 2 * r]
                - padded[y0 + a : y1 + a + 2 * r, x0 + b : x1 + b + 2 * r]
            )
            c = F.pad(torch.cumsum(torch.cumsum(D * D, 0), 1), (1, 0, 1, 0))  # integral image
            d2 = (c[s:, s:] - c[:-s, s:] - c[s:, :-s] + c[:-s, :-s]) / (s * s)
            w = torch.exp(-torch.clamp(d2 - 2 * sigma**2, min=0) / h**2)
            den[y0:y1, x0:x1] += w
            den[y0 + a : y1 + a, x0 + b : x1 + b] += w
            num[y0:y1, x0:x1] += w * u[y0 + a : y1 + a, x0 + b : x1 + b]
            num[y0 + a : y1 + a, x0 + b : x1 + b] += w * u[y0:y1, x0:x1]
    return num / den


def main() -> int:
    parser = bench_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    size = 128 if args.quick else 512
    repeats = 1 if args.quick else args.repeats
    warmup = 0 if args.quick else args.warmup  # the PSNR call below warms up too
    start = (512 - size) // 2
    clean = load_image("camera")[start : start + size, start : start + size]
    noisy = add_gaussian_noise(clean, SIGMA, seed=0)  # float32
    kw = dict(patch_size=PATCH, patch_distance=DISTANCE, h=H, sigma=SIGMA)
    rows = []

    def add(impl, backend, fn, *, xp=np, sync=None, memory=True, to_float=None):
        out = fn()
        out = to_float(out) if to_float else to_numpy(out)
        res = measure(fn, xp=xp, warmup=warmup, repeats=repeats, sync=sync, memory=memory and not args.quick)
        rows.append(
            {
                "impl": impl,
                "backend": backend,
                **res.as_row(),
                "psnr_dB": psnr(clean, out.astype(np.float64), data_range=1.0),
            }
        )
        return res

    from skimage.restoration import denoise_nl_means

    sk = add("scikit-image fast_mode", "numpy (Cython, 1 thread)", lambda: denoise_nl_means(noisy, **kw))
    for xp in backends_from(args.backend):
        x = asarray(noisy, xp)
        add("nlref nl_means (fast)", xp.__name__, lambda: nl_means(x, **kw), xp=xp)
        if xp is np:
            add(
                "nlref batched offsets (max 64 MiB)",
                "numpy",
                lambda: nl_means(x, max_batch_bytes=64 * 2**20, **kw),
            )
    cv2 = try_import("cv2")
    if cv2 is not None:
        noisy8 = np.clip(np.rint(noisy * 255), 0, 255).astype(np.uint8)
        add(
            f"OpenCV fastNlMeansDenoising (h={CV2_H:g}, uint8)",
            f"cv2 {cv2.__version__} ({cv2.getNumThreads()} threads)",
            lambda: cv2.fastNlMeansDenoising(
                noisy8, None, h=CV2_H, templateWindowSize=PATCH, searchWindowSize=2 * DISTANCE + 1
            ),
            memory=False,
            to_float=lambda o: o / 255.0,
        )
    torch = None if args.quick else try_import("torch")  # seconds of per-op overhead: full runs only
    if torch is not None:
        torch.set_num_threads(1)
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for dev in devices:
            t = torch.from_numpy(noisy.copy()).to(dev)
            sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
            add(
                f"torch offset loop ({torch.get_num_threads()} thread)"
                if dev == "cpu"
                else "torch offset loop",
                f"torch {torch.__version__} {dev}",
                # nl_means's default fast-mode scale is scikit-image's: the true patch with h * s / (s - 1)
                lambda: torch_offset_loop(torch, t, PATCH, DISTANCE, H * PATCH / (PATCH - 1), SIGMA),
                sync=sync,
                memory=False,
                to_float=lambda o: o.cpu().numpy(),
            )
    for row in rows:
        row["time_vs_skimage"] = ratio(row["median_s"], sk.median)
    print(
        f"camera {size} x {size}, sigma 20/255, patch {PATCH}, search {2 * DISTANCE + 1}^2, "
        f"h = 0.8 sigma, sigma given; noisy PSNR {psnr(clean, noisy, data_range=1.0):.2f} dB; "
        f"{os.cpu_count()} CPUs"
    )
    print_table(rows, ["impl", "backend", "median_s", "best_s", "time_vs_skimage", "psnr_dB", "peak_MiB"])
    write_json(args.json, {"rows": rows, "env": environment(), "size": size})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
