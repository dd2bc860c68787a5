"""Batch throughput: a shell loop of nst-gatys against nst-batch with 1 and 2 local workers, and
Ray's cost per item; writes the 'batch' section of BENCHMARKS.md.

    python benchmarks/bench_batch.py [--size 128] [--iterations 50] [--quick]

The folder: the three content samples x two style samples (6 items), VGG16 with the bundled HED
weights (offline). Each variant writes into a fresh temporary folder; wall time of the whole
command, start-up included, is what a user waits for.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import cpu_model, log  # noqa: E402


def timed(argv, env):
    started = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def ray_overhead(calls=200):
    """(seconds to start a local runtime and a first actor, seconds per actor call round trip
    carrying a batch Item)."""
    from nst_keras.batch import plan, run
    from nst_keras.gatys.config import GatysConfig

    item = plan.Item("c.png", "s.png", (("style_weight", 0.01),), GatysConfig(), "/tmp/c__s.png")
    started = time.perf_counter()
    ray = run.start_ray(workers=1)
    try:
        @ray.remote
        class Echo:
            def echo(self, item, inputs):
                return {"status": "done", "output": item.name}

        actor = Echo.remote()
        ray.get(actor.echo.remote(item, {}))
        start_up = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(calls):
            ray.get(actor.echo.remote(item, {"content": {"name": "c.png", "sha256": "0" * 64}}))
        per_call = (time.perf_counter() - started) / calls
    finally:
        ray.shutdown()
    return start_up, per_call


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--quick", action="store_true", help="64 px, 5 iterations; print, do not write BENCHMARKS.md")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.iterations = 64, 5
    contents = sorted(glob.glob(os.path.join(ROOT, "samples", "content_*.jpg")))
    styles = [os.path.join(ROOT, "samples", n) for n in ("style_swirling_night.jpg", "style_woodblock_waves.jpg")]
    options = ["--size", str(args.size), "--iterations", str(args.iterations), "--model", "vgg16", "--weights", "hed",
               "-q"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    work = tempfile.mkdtemp(prefix="nst_bench_batch_")
    rows, load = [], os.getloadavg()[0]
    try:
        folder = os.path.join(work, "contents")
        os.makedirs(folder)
        for c in contents:
            shutil.copy(c, folder)
        out = os.path.join(work, "loop")
        os.makedirs(out)
        log("shell loop of nst-gatys")
        loop = 0.0
        for c in contents:
            for s in styles:
                name = f"{os.path.splitext(os.path.basename(c))[0]}__{os.path.splitext(os.path.basename(s))[0]}.png"
                loop += timed([sys.executable, os.path.join(ROOT, "scripts", "gatys.py"), c, s,
                               "-o", os.path.join(out, name), *options], env)
        n = len(contents) * len(styles)
        rows.append(("shell loop of `nst-gatys` (one process per image)", loop, None))
        for workers in (1, 2):
            log(f"nst-batch --workers {workers}")
            out = os.path.join(work, f"batch{workers}")
            wall = timed([sys.executable, os.path.join(ROOT, "scripts", "batch.py"), folder, "--styles", *styles,
                          "-o", out, "--workers", str(workers), *options], env)
            with open(os.path.join(out, "manifest.jsonl")) as f:
                records = [json.loads(line) for line in f]
            assert len(records) == n and all(r["status"] == "done" for r in records), records
            rows.append((f"`nst-batch --workers {workers}`", wall, sum(r["seconds"] for r in records) / n))
        log("Ray overhead")
        start_up, per_call = ray_overhead()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = "python benchmarks/bench_batch.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    lines = [
        "## Batch: a folder on Ray (nst-batch)", "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}). CPU: **{cpu_model()}**, "
        f"{os.cpu_count()} cores, no GPU; load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
        "(other jobs shared the cores).", "",
        f"{len(contents)} content samples x {len(styles)} styles = {n} images at {args.size} px, {args.iterations} "
        "iterations, VGG16 with the bundled HED weights; wall time of the whole command, start-up included.", "",
        "| variant | wall s | s per image | in the worker, s per image (manifest: load, stylise, save) |",
        "|---|---|---|---|",
    ]
    for label, wall, inner in rows:
        lines.append(f"| {label} | {wall:.1f} | {wall / n:.1f} | {'' if inner is None else f'{inner:.1f}'} |")
    lines += [
        "",
        f"Ray's own cost: {start_up:.1f} s to start a local runtime and a first actor (before TensorFlow loads in "
        f"it), then {per_call * 1e3:.1f} ms per call carrying an item (round trip, mean of 200).",
        "",
        "Reading: the loop pays Python, TensorFlow and the network build for every image; a batch worker pays "
        "them once. On this 2-core CPU a second worker shares the same cores with the first (TensorFlow already "
        "uses both), so `--workers 1` is the default on a CPU machine. On N GPU machines (one worker per GPU, "
        "`--gpus-per-task 1`) throughput scales with N as long as each image takes far longer than the "
        "per-item cost above; what limits it is the shared file system that OUTDIR and the inputs must live on, "
        "and the driver, which hands out one item per worker at a time.",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if not args.quick:
        from _report import write_section

        write_section("batch", markdown)


if __name__ == "__main__":
    sys.exit(main())
