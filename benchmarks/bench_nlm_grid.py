"""nl_means against scikit-image's denoise_nl_means on issue 28's grid: PSNR of the same call.

The grid: scikit-image's gallery example for ``denoise_nl_means``
(``doc/examples/filters/plot_nonlocal_means.py``: astronaut ``[30:180, 150:300]``,
colour, ``random_noise(var=0.08**2, rng=seed)``, ``sigma`` from scikit-image's
``estimate_sigma``) and grey crops of astronaut, coins and moon; patch 5 and 7;
distance 6 and 11; ``h`` in {0.6, 0.8, 1.0, 1.15} sigma; ``sigma`` given or
not; noise seeds 0-2: 384 fast-mode calls, each run by scikit-image, by nlref
at its default distance scale and by nlref with ``distance_scale="patch"``.
Prints nlref - scikit-image (dB) by ``h`` and ``sigma``; ``--quick``: the
gallery image, seed 0, patch 5, distance 6 (8 calls).
``tests/test_denoise_skimage_psnr.py`` asserts the bounds on the same grid.

    python benchmarks/bench_nlm_grid.py            # about 2 minutes on 2 cores
    python benchmarks/bench_nlm_grid.py --quick
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
from common import environment, print_table, write_json

from nlref.denoise import nl_means
from nlref.metrics import psnr

H_FACTORS = (0.6, 0.8, 1.0, 1.15)
IMAGES = ("gallery", "astronaut", "coins", "moon")
PATCHES = ((5, 6), (5, 11), (7, 6), (7, 11))  # (patch_size, patch_distance)


def gallery_crops() -> dict:
    """``{name: (clean, channel_axis)}``: the gallery's colour crop and three grey crops, floats on [0, 1]."""
    from skimage import data, img_as_float
    from skimage.color import rgb2gray

    astronaut = img_as_float(data.astronaut())[30:180, 150:300]
    return {
        "gallery": (astronaut, -1),
        "astronaut": (rgb2gray(astronaut), None),
        "coins": (img_as_float(data.coins())[100:250, 100:250], None),
        "moon": (img_as_float(data.moon())[200:350, 200:350], None),
    }


def grid_case(name: str, seed: int, s: int, d: int) -> dict:
    """``{(h_factor, sigma_given): (scikit-image, nlref default, nlref true patch)}``, PSNR in dB."""
    from skimage.restoration import denoise_nl_means, estimate_sigma
    from skimage.util import random_noise

    clean, ch = gallery_crops()[name]
    noisy = random_noise(clean, var=0.08**2, rng=seed)
    sigma = float(np.mean(estimate_sigma(noisy, channel_axis=ch)))
    calls = ((denoise_nl_means, {}), (nl_means, {}), (nl_means, {"distance_scale": "patch"}))
    out = {}
    for f, given in itertools.product(H_FACTORS, (False, True)):
        kw = dict(patch_size=s, patch_distance=d, h=f * sigma, sigma=sigma if given else 0.0, channel_axis=ch)
        out[f, given] = tuple(
            psnr(clean, fn(noisy, fast_mode=True, **kw, **extra), data_range=1.0) for fn, extra in calls
        )
    return out


def _summary(label: str, diffs: list[float]) -> dict:
    x = np.asarray(diffs)
    return {
        "calls": label,
        "n": len(x),
        "worst_dB": f"{x.min():+.2f}",
        "median_dB": f"{np.median(x):+.2f}",
        "below_-0.05": int((x < -0.05).sum()),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the gallery image, seed 0, patch 5, distance 6")
    p.add_argument("--json", default=None, help="write every call's PSNRs to this JSON file")
    args = p.parse_args()
    cases = [(n, seed, s, d) for n in IMAGES for seed in range(3) for s, d in PATCHES]
    if args.quick:
        cases = [("gallery", 0, 5, 6)]
    rows = []
    for name, seed, s, d in cases:
        for (f, given), (theirs, ours, patch) in grid_case(name, seed, s, d).items():
            rows.append(
                dict(image=name, seed=seed, s=s, d=d, h=f, given=given, sk=theirs, nl=ours, patch=patch)
            )
    table = []
    for scale, key in (("default", "nl"), ("patch", "patch")):
        table.append(_summary(f"distance_scale={scale}, all", [r[key] - r["sk"] for r in rows]))
        for f, given in itertools.product(H_FACTORS, (False, True)):
            sub = [r[key] - r["sk"] for r in rows if r["h"] == f and r["given"] == given]
            table.append(
                _summary(f"  {scale}, h = {f} sigma, sigma {'given' if given else 'not given'}", sub)
            )
    print("nlref nl_means - scikit-image denoise_nl_means, fast mode, same call (PSNR, dB)")
    print_table(table, ["calls", "n", "worst_dB", "median_dB", "below_-0.05"])
    write_json(args.json, {"rows": rows, "env": environment()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
