"""Non-local means larger than memory: in-memory nl_means vs nl_means_dask (threads, 2 processes).

A seeded 4096x4096 float32 grey image (a smooth pattern plus Gaussian noise,
sigma 0.1) is stored as a Zarr array on disk.  Each configuration runs in its
own subprocess, reads that store, denoises it and writes the result to a Zarr
store, so its peak resident memory is its own:

* ``in-memory``: read the whole image, ``nl_means``, save the whole result;
* ``dask-threads``: ``nl_means_dask`` on the threaded scheduler (``--workers`` threads);
* ``dask-2proc``: the same graph on a ``dask.distributed.LocalCluster`` with
  2 worker processes, 1 thread each.

Peak memory is reported two ways: ``peak_rss_MiB``, the largest single
process (``ru_maxrss`` of the run and of its children, i.e. the client or
the largest worker), and ``tree_rss_MiB``, the whole process tree's summed
RSS sampled every 20 ms with psutil (client + workers together).  The Dask
outputs are compared with the in-memory output (``max_abs_diff``).

Defaults: patch_size 5, patch_distance 6 (a 13x13 search window) to keep the
in-memory run to a few minutes on two cores, 512x512 chunks; ``--quick`` uses
a 512x512 image and 256x256 chunks.  Each configuration is timed once, in its
own fresh process (``--repeats``/``--warmup`` do not apply); the cluster's
start-up is not timed.  The peer of nl_means_dask here is the in-memory
nl_means: ratios are relative to it.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import bench_parser, environment, print_table, ratio, write_json  # noqa: E402

CONFIGS = ("in-memory", "dask-threads", "dask-2proc")


def make_image(n: int, seed: int) -> np.ndarray:
    """A smooth pattern in [0, 1] plus Gaussian noise (sigma 0.1), float32, (n, n)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n].astype(np.float32) / np.float32(n)
    clean = (
        0.5 + 0.25 * np.sin(12 * x) * np.cos(9 * y) + 0.2 * (((x * 8).astype(int) + (y * 8).astype(int)) % 2)
    )
    return (clean + rng.normal(0, 0.1, (n, n))).astype(np.float32)


class TreePeak:
    """Peak of the summed RSS of this process and all its descendants, sampled in a thread."""

    def __init__(self, interval: float = 0.02):
        import psutil

        self.proc, self.interval, self.peak = psutil.Process(), interval, 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for p in [self.proc, *self.proc.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def __enter__(self) -> TreePeak:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_config(name: str, src: str, dst: str, kw: dict, chunks: int, workers: int) -> dict:
    """Denoise the Zarr store ``src`` into ``dst`` one way; time and memory of this process."""
    import zarr

    from nlref.denoise import nl_means
    from nlref.denoise.tiled import nl_means_dask

    with TreePeak() as tree:
        t0 = time.perf_counter()
        if name == "in-memory":
            out = nl_means(zarr.open_array(src, mode="r")[...], **kw)
            zarr.save_array(dst, out)
        else:
            import dask
            import dask.array as da

            lazy = nl_means_dask(da.from_zarr(src), chunks=chunks, **kw)
            if name == "dask-threads":
                with dask.config.set(scheduler="threads", num_workers=workers):
                    lazy.to_zarr(dst)
            else:
                from dask.distributed import Client, LocalCluster

                # distributed's MALLOC_TRIM_THRESHOLD_ for workers makes nl_means ~4x slower
                with (
                    dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}),
                    LocalCluster(
                        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
                    ) as cluster,
                    Client(cluster),
                ):
                    t0 = time.perf_counter()  # the cluster's start-up is not the algorithm's time
                    lazy.to_zarr(dst)
        seconds = time.perf_counter() - t0
    kib = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {"seconds": seconds, "peak_rss_MiB": kib / 1024, "tree_rss_MiB": tree.peak / 2**20}


def main() -> None:
    parser = bench_parser(__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=None, help="image side (default 4096, 512 with --quick)")
    parser.add_argument("--patch-size", type=int, default=5)
    parser.add_argument("--patch-distance", type=int, default=6)
    parser.add_argument("--chunks", type=int, default=None, help="chunk side (default 512, 256 with --quick)")
    parser.add_argument("--workers", type=int, default=2, help="threads of the dask-threads run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {CONFIGS}")
    parser.add_argument("--_child", nargs=3, metavar=("CONFIG", "SRC", "DST"), help=argparse_hidden())
    args = parser.parse_args()
    n = args.size or (512 if args.quick else 4096)
    chunks = args.chunks or (256 if args.quick else 512)
    kw = dict(patch_size=args.patch_size, patch_distance=args.patch_distance, h=0.08, sigma=0.1)

    if args._child:  # one configuration (or making the input), in this fresh process
        name, src, dst = args._child
        if name == "make-input":
            import zarr

            image = make_image(n, args.seed)
            zarr.open_array(src, mode="w", shape=image.shape, dtype=image.dtype, chunks=(chunks, chunks))[
                ...
            ] = image
            return
        print(json.dumps(run_config(name, src, dst, kw, chunks, args.workers)))
        return

    # The parent stays small: Linux carries a process's peak RSS across fork/exec
    # into its children's ru_maxrss, so the input is made and every configuration
    # run in a child, and outputs are compared band by band.
    import zarr

    def child(name: str, src: str, dst: str) -> str:
        cmd = [
            sys.executable,
            __file__,
            "--_child",
            name,
            src,
            dst,
            "--size",
            str(n),
            "--chunks",
            str(chunks),
            "--patch-size",
            str(args.patch_size),
            "--patch-distance",
            str(args.patch_distance),
            "--workers",
            str(args.workers),
            "--seed",
            str(args.seed),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            raise SystemExit(f"configuration {name} failed")
        return proc.stdout

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_nlm_dask.") as tmp:
        src = os.path.join(tmp, "input.zarr")
        child("make-input", src, "-")
        for name in args.configs.split(","):
            print(f"running {name} ...", flush=True)
            res = json.loads(child(name, src, os.path.join(tmp, f"{name}.zarr")).strip().splitlines()[-1])
            rows.append(
                {"config": name, "size": f"{n}x{n}", "chunks": None if name == "in-memory" else chunks, **res}
            )
        base = next((r for r in rows if r["config"] == "in-memory"), None)
        for r in rows:
            if base is not None:
                ref = zarr.open_array(os.path.join(tmp, "in-memory.zarr"), mode="r")
                out = zarr.open_array(os.path.join(tmp, f"{r['config']}.zarr"), mode="r")
                r["max_abs_diff"] = max(
                    float(np.abs(out[i : i + chunks] - ref[i : i + chunks]).max())
                    for i in range(0, n, chunks)
                )
                r["time_ratio"] = ratio(r["seconds"], base["seconds"])
                r["tree_mem_ratio"] = ratio(r["tree_rss_MiB"], base["tree_rss_MiB"])
    print(
        f"\nnon-local means, {n}x{n} float32, patch_size {args.patch_size}, "
        f"patch_distance {args.patch_distance}, "
        f"h 0.08, sigma 0.1; {os.cpu_count()} CPUs; ratios relative to in-memory"
    )
    print_table(rows)
    write_json(args.json, {"rows": rows, "params": {**kw, "size": n, "chunks": chunks}, "env": environment()})


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
