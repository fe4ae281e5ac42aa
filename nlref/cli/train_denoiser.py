"""``nlref train-denoiser``: train the residual non-local denoiser of notebook 06.

``nlref train-denoiser --preset default --out runs/denoiser`` trains on random
patches of the bundled training images (:mod:`nlref.nn.train.denoiser`),
writing ``OUT/checkpoint.npz`` after every evaluation; Ctrl-C or SIGTERM saves
it and ``--resume`` continues.  At the end ``OUT/weights.npz`` holds the model
without the optimiser, plus the PSNR it reaches on a crop of the held-out
``moon`` image (the shipped model's test recomputes it), ready for
``denoise_learned(image, "OUT/weights.npz")``.

``--data DIR`` trains on a folder of grey PNGs instead, for example DnCNN's
``train400`` (:mod:`nlref.data.folder`): the last 40 files in sorted name order
are the validation split, and the config records the folder by name, file
count and a hash of its sorted (name, size) list, never by path.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any

from ..data.folder import read_grey_folder
from ..data.training_images import TRAIN_IMAGES, load_grey
from ..denoise.learned import load_weights, measure_check
from ..nn.layers import count_params
from ..nn.train import DENOISER_PRESETS, save_denoiser, train_denoiser
from . import options

__all__ = ["CHECK_CROP", "register"]

#: The held-out crop whose PSNR a weights file records: moon[192:320, 192:320], noise seed 0 (not camera:
#: it is Set12's 01, and Set12 is for reporting only).
CHECK_CROP = {"image": "moon", "crop": [192, 192, 128, 128], "noise_seed": 0}


def _cmd_train_denoiser(args: argparse.Namespace) -> int:
    overrides = {
        k: getattr(args, k)
        for k in ("steps", "seed", "nl_blocks", "window", "width")
        if getattr(args, k) is not None
    }
    if args.sigma is not None:  # the option is on [0, 1]; DenoiserConfig keeps the 0-255 level it records
        overrides["sigma"] = 255.0 * args.sigma
    cfg = dataclasses.replace(DENOISER_PRESETS[args.preset], **overrides)
    if args.data is None:
        images, val_images, what = [load_grey(name) for name in TRAIN_IMAGES], None, "the bundled images"
    else:
        images, val_images, data = read_grey_folder(args.data, min_side=cfg.patch)
        cfg = dataclasses.replace(cfg, data=data)
        what = f"{data['folder']}/ ({len(images)} train, {len(val_images)} validation files)"
    out = Path(args.out or f"runs/denoiser-{args.preset}")
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"training the denoiser (width {cfg.width}, depth {cfg.depth}, {cfg.nl_blocks} non-local, window "
        f"{cfg.window}) at sigma {cfg.sigma / 255:.4g} ({cfg.sigma:g}/255) for {cfg.steps} steps on {what}, "
        f"{args.backend}; checkpoints in {out}/"
    )
    result = train_denoiser(
        cfg,
        images,
        val_images=val_images,
        checkpoint=out / "checkpoint.npz",
        resume=args.resume,
        backend=args.backend,
        progress=not args.no_progress,
    )
    weights = out / "weights.npz"
    check = {
        **CHECK_CROP,
        "psnr": measure_check(result, **CHECK_CROP),
    }  # result has model, params, state, config
    save_denoiser(
        weights,
        params=result["params"],
        state=result["state"],
        config=cfg,
        step=result["step"],
        metrics=result["metrics"],
        check=check,
    )
    last = result["metrics"][-1] if result["metrics"] else {}
    print(
        f"{result['step']} steps in {result['seconds']:.0f} s; validation PSNR "
        f"{last.get('val_psnr', float('nan')):.2f} dB; held-out {check['image']} crop {check['psnr']:.2f} dB"
    )
    net = load_weights(weights)  # read back: the file passes its own checks
    print(
        f"weights: {weights} ({count_params(net['params'])} parameters, "
        f"{os.path.getsize(weights) / 1e3:.0f} kB)"
    )
    return 0


def register(subparsers: Any) -> None:
    """Add the ``train-denoiser`` subcommand to ``nlref``'s parser."""
    p = subparsers.add_parser(
        "train-denoiser",
        help="train the residual non-local denoiser (notebook 06)",
        description="Train the residual denoiser with windowed non-local blocks on random noisy patches of "
        "scikit-image's bundled images (camera, coins, moon held out). Presets: "
        + ", ".join(DENOISER_PRESETS)
        + ".",
    )
    p.add_argument("--preset", default="default", choices=sorted(DENOISER_PRESETS))
    p.add_argument(
        "--data",
        metavar="DIR",
        help="train on the grey PNGs of DIR (e.g. ../shared/datasets/train400; the last 40 in sorted "
        "order validate) instead of the bundled images",
    )
    p.add_argument("--out", help="folder for checkpoint.npz and weights.npz (default runs/denoiser-PRESET)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--steps", type=int, help="override the number of training steps")
    p.add_argument("--seed", type=int, help="override the seed (initialisation and patches)")
    p.add_argument(
        "--sigma",
        type=options.unit_sigma,
        metavar="S",
        help="noise level on the [0, 1] scale of the image, e.g. 25/255 (default; one model per sigma)",
    )
    p.add_argument("--nl-blocks", type=int, choices=[0, 1, 2], help="windowed non-local blocks")
    p.add_argument("--window", type=int, help="search-window radius of the non-local blocks")
    p.add_argument("--width", type=int, help="channels of the hidden layers")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train_denoiser)
