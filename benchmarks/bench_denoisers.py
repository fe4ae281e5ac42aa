"""Non-local means, learned non-local denoisers and BM3D on held-out images at sigma 15, 25, 50.

Run from the repository root::

    python benchmarks/bench_denoisers.py                     # the shipped models
    python benchmarks/bench_denoisers.py --weights 25/255:nl:A.npz --weights 25/255:no-nl:B.npz

Every sigma option is on the [0, 1] scale of the image and takes fractions (``--sigmas 15/255
25/255 50/255``, the default); the tables label sigma on the 0-255 scale (15, 25, 50).

Images: camera, coins, moon (:data:`nlref.data.training_images.HELD_OUT_IMAGES`,
never used in training), grey, [0, 1], noise seed 0.  Methods:

* ``noisy``: the input;
* ``nl_means``: nlref's scikit-image-style ``nl_means`` with the scikit-image
  gallery parameters (patch 5, patch_distance 6, h = 0.8 sigma, sigma given, fast mode);
* ``nl_means_ipol``: the IPOL 2011 weights and parameter table;
* learned models, one column label per ``--weights SIGMA:LABEL:FILE`` (repeat a label
  with several files, e.g. training seeds, to get mean +- std); by default the
  shipped models (:data:`nlref.denoise.learned.SHIPPED_WEIGHTS`: ``nl`` at sigma 15, 25
  and 50, ``no-nl`` at 25).  A learned model runs only at the sigma it was trained for;
* ``nlref bm3d``: :func:`nlref.denoise.bm3d` (Lebrun's IPOL 2012 profile);
* ``bm3d``: the ``bm3d`` package (PyPI, CPU), when installed (``pip install bm3d``).

``--set DIR`` applies the Set12 protocol of ``../shared/datasets/README.md`` to the
PNGs of DIR instead (nlref's BM3D against the ``bm3d`` package, image by image,
the two run alternately in the same process; then every denoiser above and the
``--weights`` models, the published Set12 means as labelled reference rows, and a
second table on two unseen scikit-image images; see :mod:`set_protocol`)::

    taskset -c 0 env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
        python benchmarks/bench_denoisers.py --set ../shared/datasets/set12

``--colour`` gives the colour rows instead: nlref's CBM3D (``bm3d(..., channel_axis=-1)``)
against ``bm3d.bm3d_rgb`` on the central 256 x 256 crops of astronaut, coffee and chelsea
at ``--sigmas`` (first value; e.g. ``--colour --sigmas 25/255``).

PSNR and SSIM (data range 1) per image, then their mean over the images; time is
one run per image, in seconds, on this machine's CPU (not a careful timing: see bench_nlm.py).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
from common import environment, print_table, try_import, write_json
from set_protocol import colour_protocol, measure_call, set_protocol

from nlref.cli.options import unit_sigma
from nlref.data import add_gaussian_noise, load_image
from nlref.data.training_images import HELD_OUT_IMAGES
from nlref.denoise import bm3d as nlref_bm3d
from nlref.denoise import nl_means, nl_means_ipol
from nlref.denoise.learned import SHIPPED_WEIGHTS, denoise_learned, load_weights

#: The noise levels on the 0-255 scale, as the tables label them (options take them on [0, 1]).
SIGMAS = (15, 25, 50)


def level(sigma: float) -> float:
    """A sigma on [0, 1] as the tables label it: on the 0-255 scale (25/255 -> 25)."""
    return round(255.0 * sigma, 6)


def _parse_weights(items: list[str]) -> dict[tuple[float, str], list]:
    out = defaultdict(list)
    for item in items:
        sigma, label, path = item.split(":", 2)
        sigma, net = unit_sigma(sigma), load_weights(path)
        if abs(net["sigma"] - sigma) > 1e-9:
            raise ValueError(f"--weights {item}: the model was trained at sigma {net['sigma']:.4g}")
        out[(level(sigma), label)].append(net)
    return out


def _shipped() -> list[str]:
    """``--weights`` items of the shipped models."""
    return [f"{sigma}/255:{variant}:{path}" for (variant, sigma), path in SHIPPED_WEIGHTS.items()]


def _methods(sigma: float, nets: dict) -> list[tuple[str, list]]:
    s = sigma / 255.0
    methods = [
        ("noisy", [lambda y: y]),
        (
            "nl_means (skimage gallery params)",
            [lambda y: nl_means(y, patch_size=5, patch_distance=6, h=0.8 * s, sigma=s)],
        ),
        ("nl_means_ipol", [lambda y: nl_means_ipol(y, s)]),
    ]
    for (sig, label), group in sorted(nets.items()):
        if sig == sigma:
            methods.append(
                (f"learned {label} (x{len(group)})", [lambda y, n=n: denoise_learned(y, n) for n in group])
            )
    methods.append(("nlref bm3d", [lambda y: nlref_bm3d(y, s)]))
    bm3d = try_import("bm3d")
    if bm3d is not None:
        methods.append(("bm3d", [lambda y: np.asarray(bm3d.bm3d(y, sigma_psd=s), dtype=np.float32)]))
    return methods


def _score(fns: list, images: list[str], sigma: float, crop: int) -> dict:
    """Mean PSNR, SSIM and time over the images for each model, then mean and (population) std over models."""
    per_model = defaultdict(list)
    for image_name in images:
        clean = load_image(image_name)
        if crop:
            i, j = (clean.shape[0] - crop) // 2, (clean.shape[1] - crop) // 2
            clean = clean[i : i + crop, j : j + crop]
        noisy = add_gaussian_noise(clean, sigma / 255.0, seed=0)
        for k, fn in enumerate(fns):
            r = measure_call(fn, noisy, clean)
            per_model[k].append((r["psnr"], r["ssim"], r["s"]))
    means = np.array([np.mean(v, axis=0) for v in per_model.values()])  # (models, 3)
    return {
        "psnr_dB": means[:, 0].mean(),
        "psnr_std_dB": means[:, 0].std() if len(means) > 1 else None,
        "ssim": means[:, 1].mean(),
        "time_s": means[:, 2].mean(),
        "psnr_per_model": means[:, 0].tolist(),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="SIGMA:LABEL:FILE",
        help="a learned model to compare, SIGMA on [0, 1] (default: the shipped ones, nl at 15, 25, 50 "
        "and no-nl at 25 on the 0-255 scale)",
    )
    p.add_argument("--images", nargs="+", default=list(HELD_OUT_IMAGES), choices=HELD_OUT_IMAGES)
    p.add_argument(
        "--sigmas",
        nargs="+",
        type=unit_sigma,
        default=[s / 255 for s in SIGMAS],
        metavar="S",
        help="noise levels on [0, 1] (default 15/255 25/255 50/255)",
    )
    p.add_argument("--crop", type=int, default=0, help="centre crop of this size (0: whole images)")
    p.add_argument("--quick", action="store_true", help="one 64 x 64 crop at sigma 25: a smoke test")
    p.add_argument("--json", default=None, help="write the rows to this JSON file")
    p.add_argument("--set", default=None, metavar="DIR", help="Set12 protocol on the PNGs of DIR (see above)")
    p.add_argument("--size", type=int, default=0, help="with --set: only the images of this side (0: all)")
    p.add_argument(
        "--colour", action="store_true", help="CBM3D rows against bm3d.bm3d_rgb (see set_protocol)"
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        metavar="PREFIX",
        help="only the methods whose name starts with one of these (e.g. 'nl_means (' for its rows)",
    )
    args = p.parse_args()
    args.sigmas = [level(s) for s in args.sigmas]  # the 0-255 labels of the tables
    if args.set:
        nets = _parse_weights(args.weights or _shipped())
        return set_protocol(args.set, args.sigmas, args.size, args.json, lambda s: _methods(s, nets))
    if args.colour:
        return colour_protocol(25 if args.quick else args.sigmas[0], args.json)
    if args.quick:
        args.images, args.sigmas, args.crop = args.images[:1], [25], 64
    nets = _parse_weights(args.weights or _shipped())
    rows = []
    for sigma in args.sigmas:
        for name, fns in _methods(sigma, nets):
            if args.methods and not name.startswith(tuple(args.methods)):
                continue
            rows.append({"sigma": sigma, "method": name, **_score(fns, args.images, sigma, args.crop)})
            print(
                f"sigma {sigma:>2g}  {name:<40} {rows[-1]['psnr_dB']:6.2f} dB  SSIM {rows[-1]['ssim']:.4f}  "
                f"{rows[-1]['time_s']:7.2f} s",
                flush=True,
            )
    print(
        f"\nheld-out images {', '.join(args.images)}{f' (centre {args.crop} px)' if args.crop else ''}, "
        "noise seed 0; PSNR/SSIM/time are means over the images; std over the models of a label"
    )
    fmt = {"psnr_dB": ".2f", "psnr_std_dB": ".2f", "ssim": ".4f", "time_s": ".2f"}  # 3 digits hide 0.1 dB
    print_table(
        [{k: (format(v, fmt[k]) if k in fmt and v is not None else v) for k, v in r.items()} for r in rows],
        ["sigma", "method", "psnr_dB", "psnr_std_dB", "ssim", "time_s"],
    )
    write_json(args.json, {"rows": rows, "env": environment(), "images": args.images, "crop": args.crop})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
