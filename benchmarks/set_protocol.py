"""The Set12 protocol: nlref's BM3D against the ``bm3d`` package, image by image, and every denoiser.

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

Then every other denoiser of ``bench_denoisers.py`` (noisy, the two ``nl_means`` forms and the
learned models given with ``--weights``, by default the shipped ones) runs on the same noisy
images, and the table of means adds :data:`PUBLISHED`, labelled as such: means over all 12
Set12 images, Lena included, not measured here.  A second table runs every method on
:data:`UNSEEN`, two scikit-image images that nlref never trains on (noise seed 0 through
``add_gaussian_noise``, as the held-out table of ``bench_denoisers.py``).
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


def measure_call(fn, noisy: np.ndarray, clean: np.ndarray) -> dict:
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


#: Published mean PSNR (dB) over all 12 Set12 images, Lena included (SwinIR paper's table, Liang et al.
#: 2021; ../shared/datasets/README.md), at sigma 15 / 25 / 50 on the 0-255 scale: reference rows only.
PUBLISHED = {
    "BM3D": (32.37, 29.97, 26.72),
    "DnCNN": (32.86, 30.44, 27.18),
    "FFDNet": (32.75, 30.43, 27.32),
    "NLRN": (33.16, 30.80, 27.64),
}


def unseen_images() -> dict[str, np.ndarray]:
    """``retina()[450:962, 450:962]`` made grey (``rgb2gray``) and the Shepp-Logan phantom, in [0, 1]."""
    import skimage.color
    import skimage.data

    retina = skimage.color.rgb2gray(skimage.data.retina()[450:962, 450:962])
    return {"retina crop": retina, "shepp-logan phantom": skimage.data.shepp_logan_phantom()}


def _others(methods, sigma: float) -> list[tuple[str, list]]:
    """The methods of ``bench_denoisers._methods`` but the two BM3Ds, which the protocol runs itself."""
    return [(name, fns) for name, fns in methods(sigma) if name not in ("bm3d", "nlref bm3d")]


def _row(sigma: float, name: str, runs: list[dict]) -> dict:
    """A table row: the means of PSNR, SSIM and seconds over ``runs``."""
    return {
        "sigma": f"{sigma:g}",
        "method": name,
        "psnr_dB": f"{np.mean([r['psnr'] for r in runs]):.2f}",
        "ssim": f"{np.mean([r['ssim'] for r in runs]):.4f}",
        "time_s": f"{np.mean([r['s'] for r in runs]):.2f}",
    }


def _mean_rows(sigma: float, per_method: dict[str, list[dict]]) -> list[dict]:
    return [_row(sigma, name, runs) for name, runs in per_method.items()]


def _published_rows(sigma: float) -> list[dict]:
    if sigma not in (15, 25, 50):
        return []
    col = (15, 25, 50).index(sigma)
    return [
        {"sigma": f"{sigma:g}", "method": f"published {name} (12 images with Lena; not measured here)",
         "psnr_dB": f"{values[col]:.2f}", "ssim": "-", "time_s": "-"}
        for name, values in PUBLISHED.items()
    ]  # fmt: skip


def unseen_protocol(methods, sigmas: list[float]) -> list[dict]:
    """Every method on :func:`unseen_images`, noise seed 0; one row per (sigma, image, method)."""
    from nlref.data import add_gaussian_noise

    rows = []
    for sigma in sigmas:
        for image, clean in unseen_images().items():
            noisy = add_gaussian_noise(clean, sigma / 255.0, seed=0)
            for name, fns in methods(sigma):
                for fn in fns:
                    rows.append({"image": image, **_row(sigma, name, [measure_call(fn, noisy, clean)])})
                    print(rows[-1], flush=True)
    return rows


def set_protocol(folder: str, sigmas: list[float], size: int, json_path: str | None, methods=None) -> int:
    """The protocol on the PNGs of ``folder``; ``methods(sigma) -> [(name, [fn, ...])]`` adds the others."""
    package = try_import("bm3d")
    if package is None:
        raise SystemExit("the bm3d package is needed for --set (pip install bm3d)")
    files = sorted(Path(folder).glob("*.png"))
    if not files:
        raise SystemExit(f"--set {folder}: no PNG files there")
    rows, others = [], {sigma: {} for sigma in sigmas}
    for sigma in sigmas:
        s = sigma / 255.0
        for i, f in enumerate(files):
            clean = np.asarray(as_float_image(read_image(f)), dtype=np.float64)  # 8-bit -> [0, 1]
            if size and clean.shape[0] != size:
                continue
            noisy = clean + np.random.default_rng(i).normal(0, s, clean.shape)
            load = os.getloadavg()[0]
            pkg = measure_call(lambda y: package.bm3d(y, sigma_psd=s), noisy, clean)
            ours = measure_call(lambda y: nlref_bm3d(y, s), noisy, clean)
            for name, fns in _others(methods, sigma) if methods else []:
                for fn in fns:
                    others[sigma].setdefault(name, []).append(r := measure_call(fn, noisy, clean))
                    print(
                        f"sigma {sigma:>2g} {f.name:<8} {name:<36} {r['psnr']:.3f} dB {r['s']:6.2f} s",
                        flush=True,
                    )
            others[sigma].setdefault("nlref bm3d", []).append(ours)
            others[sigma].setdefault("bm3d (package)", []).append(pkg)
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
    means = [row for sigma in sigmas for row in _mean_rows(sigma, others[sigma]) + _published_rows(sigma)]
    print(f"\n{folder}: every denoiser, mean over {len(files)} images (Set12 protocol); time per image")
    print_table(means)
    unseen = unseen_protocol(methods, sigmas) if methods else []
    if unseen:
        print("\nunseen images (nlref trains on neither), noise seed 0")
        print_table(unseen)
    payload = {"rows": rows, "summary": summary, "means": means, "unseen": unseen}
    write_json(json_path, {**payload, "env": environment(), "threads": threads})
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
        pkg = measure_call(lambda y: package.bm3d_rgb(y, sigma_psd=s), noisy, clean)
        ours = measure_call(lambda y: nlref_bm3d(y, s, channel_axis=-1), noisy, clean)
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
