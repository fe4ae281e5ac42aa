"""The Set12 protocol: nlref's BM3D against the ``bm3d`` package, image by image.

Protocol (``../shared/datasets/README.md``): the PNGs of the folder in sorted
name order; image ``i`` (0-based position) gets
``np.random.default_rng(i).normal(0, sigma, image.shape)`` added to the float
image in [0, 1], not clipped, the same seed at every sigma; PSNR with
``data_range=1`` on the unclipped float output; the peer is
``bm3d.bm3d(noisy, sigma_psd=sigma)`` with its defaults.

For each image the package runs first, then nlref, in the same process, so a
change of machine load hits both.  Per run: PSNR, SSIM, wall time and the peak
resident memory above the process's resident memory before the run (Linux:
``/proc/self/clear_refs`` resets the high-water mark ``VmHWM``; both methods
are measured the same way, since tracemalloc cannot see the package's C
allocations).  The 1-minute load average is recorded with every image.
Called by ``bench_denoisers.py --set DIR``.
"""

from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path

import numpy as np
from common import environment, print_table, try_import, write_json

from nlref.backend import as_float_image
from nlref.denoise import bm3d as nlref_bm3d
from nlref.io import read_image
from nlref.metrics import psnr, ssim


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _run(fn, noisy: np.ndarray, clean: np.ndarray) -> dict:
    """PSNR, SSIM, seconds and peak RSS increase (MiB) of one call."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # give freed memory back, so the next peak is seen
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    base = _rss_kib("VmRSS")
    t0 = time.perf_counter()
    out = np.asarray(fn(noisy), dtype=np.float64)
    seconds = time.perf_counter() - t0
    peak = (_rss_kib("VmHWM") - base) / 1024
    return {
        "psnr": psnr(clean, out, data_range=1.0),
        "ssim": ssim(clean, out, data_range=1.0, channel_axis=-1 if out.ndim == 3 else None),
        "s": seconds,
        "peak_MiB": peak,
    }


def set_protocol(folder: str, sigmas: list[int], size: int, json_path: str | None) -> int:
    package = try_import("bm3d")
    if package is None:
        raise SystemExit("the bm3d package is needed for --set (pip install bm3d)")
    files = sorted(Path(folder).glob("*.png"))
    if not files:
        raise SystemExit(f"--set {folder}: no PNG files there")
    rows = []
    for sigma in sigmas:
        s = sigma / 255.0
        for i, f in enumerate(files):
            clean = np.asarray(as_float_image(read_image(f)), dtype=np.float64)  # 8-bit -> [0, 1]
            if size and clean.shape[0] != size:
                continue
            noisy = clean + np.random.default_rng(i).normal(0, s, clean.shape)
            load = os.getloadavg()[0]
            pkg = _run(lambda y: package.bm3d(y, sigma_psd=s), noisy, clean)
            ours = _run(lambda y: nlref_bm3d(y, s), noisy, clean)
            rows.append(
                {
                    "sigma": sigma,
                    "image": f.name,
                    "side": clean.shape[0],
                    "load1": load,
                    **{f"pkg_{k}": v for k, v in pkg.items()},
                    **{f"nlref_{k}": v for k, v in ours.items()},
                    "diff_dB": ours["psnr"] - pkg["psnr"],
                }
            )
            r = rows[-1]
            print(
                f"sigma {sigma:>2g} {f.name:<8} pkg {r['pkg_psnr']:.3f} dB {r['pkg_s']:6.2f} s "
                f"{r['pkg_peak_MiB']:6.1f} MiB | nlref {r['nlref_psnr']:.3f} dB {r['nlref_s']:6.2f} s "
                f"{r['nlref_peak_MiB']:6.1f} MiB | diff {r['diff_dB']:+.3f} dB | load {load:.2f}",
                flush=True,
            )
    summary = []
    for sigma in sigmas:
        sel = [r for r in rows if r["sigma"] == sigma]
        if not sel:
            continue
        mean = {
            k: float(np.mean([r[k] for r in sel]))
            for k in ("pkg_psnr", "nlref_psnr", "pkg_ssim", "nlref_ssim")
        }
        t_pkg, t_ours = sum(r["pkg_s"] for r in sel), sum(r["nlref_s"] for r in sel)
        summary.append(
            {
                "sigma": sigma,
                "images": len(sel),
                "pkg_psnr": f"{mean['pkg_psnr']:.3f}",
                "nlref_psnr": f"{mean['nlref_psnr']:.3f}",
                "mean_diff_dB": f"{mean['nlref_psnr'] - mean['pkg_psnr']:+.3f}",
                "worst_diff_dB": f"{min(r['diff_dB'] for r in sel):+.3f}",
                "pkg_ssim": f"{mean['pkg_ssim']:.4f}",
                "nlref_ssim": f"{mean['nlref_ssim']:.4f}",
                "pkg_time_s": f"{t_pkg:.1f}",
                "nlref_time_s": f"{t_ours:.1f}",
                "time_ratio": f"{t_ours / t_pkg:.2f}",
                "pkg_peak_MiB": f"{max(r['pkg_peak_MiB'] for r in sel):.0f}",
                "nlref_peak_MiB": f"{max(r['nlref_peak_MiB'] for r in sel):.0f}",
            }
        )
    threads = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    print(
        f"\n{folder}: Set12 protocol; BLAS threads {threads}; CPU affinity {sorted(os.sched_getaffinity(0))}"
    )
    print_table(summary)
    write_json(json_path, {"rows": rows, "summary": summary, "env": environment(), "threads": threads})
    return 0


COLOUR_IMAGES = ("astronaut", "coffee", "chelsea")


def colour_protocol(sigma: int, json_path: str | None) -> int:
    """CBM3D rows: the central 256 x 256 crops of astronaut, coffee and chelsea (scikit-image), i.i.d.
    noise per RGB channel from ``np.random.default_rng(s)``, s = 0, 1, 2 in that order; the peer is
    ``bm3d.bm3d_rgb(noisy, sigma_psd=sigma)`` with its defaults, run first, then nlref."""
    import skimage.data

    package = try_import("bm3d")
    if package is None:
        raise SystemExit("the bm3d package is needed for --colour (pip install bm3d)")
    s, rows = sigma / 255.0, []
    for seed, name in enumerate(COLOUR_IMAGES):
        image = np.asarray(as_float_image(getattr(skimage.data, name)()), dtype=np.float64)
        i, j = (image.shape[0] - 256) // 2, (image.shape[1] - 256) // 2
        clean = image[i : i + 256, j : j + 256]
        noisy = clean + np.random.default_rng(seed).normal(0, s, clean.shape)
        load = os.getloadavg()[0]
        pkg = _run(lambda y: package.bm3d_rgb(y, sigma_psd=s), noisy, clean)
        ours = _run(lambda y: nlref_bm3d(y, s, channel_axis=-1), noisy, clean)
        rows.append(
            {
                "sigma": sigma,
                "image": name,
                "load1": f"{load:.2f}",
                "pkg_psnr": f"{pkg['psnr']:.3f}",
                "nlref_psnr": f"{ours['psnr']:.3f}",
                "diff_dB": f"{ours['psnr'] - pkg['psnr']:+.3f}",
                "pkg_ssim": f"{pkg['ssim']:.4f}",
                "nlref_ssim": f"{ours['ssim']:.4f}",
                "pkg_s": f"{pkg['s']:.2f}",
                "nlref_s": f"{ours['s']:.2f}",
                "time_ratio": f"{ours['s'] / pkg['s']:.2f}",
                "pkg_peak_MiB": f"{pkg['peak_MiB']:.0f}",
                "nlref_peak_MiB": f"{ours['peak_MiB']:.0f}",
            }
        )
        print(rows[-1], flush=True)
    threads = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    print(f"\ncolour (CBM3D), central 256 x 256 crops, sigma {sigma}; BLAS threads {threads}")
    print_table(rows)
    write_json(json_path, {"rows": rows, "env": environment(), "threads": threads})
    return 0
