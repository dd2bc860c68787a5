"""The plan of a Gatys-mode run without running it: scales or tiles, predicted peak memory and time.

Time per evaluation is predicted from the convolution FLOPs of the truncated VGG (forward pass,
and about as much again for the gradient with respect to the image) at a throughput measured on
the development machine; memory comes from nst_keras.memory.predict_peak_bytes.
"""
from ..image import size_for_long_side
from ..models import layer_channels, layer_names, layer_stride, min_image_side
from .memory import TILED_BYTES_PER_OUTPUT_PIXEL, predict_peak_bytes

# Effective convolution throughput of one evaluation (forward + image gradient) of VGG16 on the
# 2-core development CPU, with only low-priority jobs beside it: 152-188 GFLOP/s at 256-2048 px up
# to block5_conv1 over two runs (BENCHMARKS.md, gatys-memory: 1.11-1.22 s per evaluation at
# 512x341, 17.4-19.2 s at 2048x1364). A busy machine is slower.
GFLOPS = 165.0
# Per precision and hardware (resolved precision, whether bfloat16 is native). Emulated bfloat16:
# measured on an "Intel(R) Xeon(R) Processor @ 2.60GHz" with avx512f/avx512_vnni but no
# amx_bf16/avx512_bf16 (BENCHMARKS.md, gatys-precision: VGG16 to block5_conv1, forward + image
# gradient, median of 3, two runs on a busy machine): 1.8-2.7x, 2.3-2.8x and 2.1-3.2x float32's
# seconds at 256, 512 and 1024 px; 2.5x is used. Native bfloat16: issue 17's single measurement
# on an AMX CPU (4.8x faster than float32 at 512x341), not reproduced here.
GFLOPS_BY_PRECISION = {("float32", False): GFLOPS, ("float32", True): GFLOPS,
                       ("bfloat16", False): GFLOPS / 2.5, ("bfloat16", True): GFLOPS * 4.8}


def plan_scales(size, coarse_size):
    """Long sides of the coarse-to-fine schedule, coarsest first, ending at `size`."""
    sizes = [size]
    while coarse_size and sizes[0] // 2 >= coarse_size:
        sizes.insert(0, sizes[0] // 2)
    return sizes


def forward_flops_per_pixel(model, layers):
    """Multiply-adds x 2 per image pixel of the 3x3 convolutions up to the deepest of `layers`."""
    order = layer_names(model)
    deepest = max(order.index(n) for n in layers)
    flops, channels = 0.0, 3
    for name in order[:deepest + 1]:
        if name.endswith("_pool"):
            continue
        out = layer_channels(name)
        flops += 2 * 9 * channels * out / layer_stride(name) ** 2
        channels = out
    return flops


def predict_seconds_per_evaluation(shape, model, layers, precision="float32", native=False):
    """Predicted seconds of one loss-and-gradient evaluation on an image of shape (h, w), with the
    convolutions in `precision` ('float32' or 'bfloat16', native to the hardware or emulated)."""
    gflops = GFLOPS_BY_PRECISION[precision, bool(native)]
    return 2.0 * forward_flops_per_pixel(model, layers) * shape[0] * shape[1] / (gflops * 1e9)


def plan_run(content_shape, config, native=None):
    """What pipeline.stylize() would do for a content of shape (h, w) under config.

    config.precision is resolved as the run would (native: models.native_bfloat16()'s result,
    detected if None); the plan's 'precision' is the resolved one.

    Returns a dict: 'shape' of the output, 'stages' (one per scale, then one for the tiles when
    tiling), each with shape, iterations, count (1, or the number of tiles), seconds_per_evaluation
    and peak_bytes, plus 'tiles' (the tile windows) and the totals 'peak_bytes' and 'seconds'
    (L-BFGS-B takes about 1.1 evaluations per iteration).
    """
    from ..models import native_bfloat16, resolve_precision

    if native is None:
        native = native_bfloat16() if config.precision != "float32" else (False, "")
    precision = resolve_precision(config.precision, notify=lambda message: None, native=native)
    model = config.model
    layers = [n for n in (*config.content_layers, *config.style_layers) if n in layer_names(model)]
    min_side = min_image_side(layers)
    tiled = bool(config.tile_size) and config.size > config.tile_size
    base = config.tile_size if tiled else config.size
    sizes = [s for s in plan_scales(base, config.coarse_size)
             if min(size_for_long_side(content_shape, s)) >= min_side] or [base]
    stages = []
    for i, long_side in enumerate(sizes):
        shape = size_for_long_side(content_shape, long_side)
        stages.append({"stage": f"scale {i + 1}/{len(sizes)}", "shape": shape, "count": 1,
                       "iterations": config.iterations if i == len(sizes) - 1 else config.coarse_iterations})
    tiles = []
    shape = size_for_long_side(content_shape, config.size)
    if tiled:
        from .tiles import plan_tiles

        tiles = plan_tiles(shape, config.tile_size, config.tile_overlap)
        stages.append({"stage": "tiles", "shape": (tiles[0].height, tiles[0].width), "count": len(tiles),
                       "iterations": config.tile_iterations})
    for stage in stages:
        stage["seconds_per_evaluation"] = predict_seconds_per_evaluation(stage["shape"], model, layers, precision,
                                                                         native[0])
        stage["peak_bytes"] = predict_peak_bytes(stage["shape"], model, layers, precision)
        if stage["stage"] == "tiles":
            stage["peak_bytes"] += TILED_BYTES_PER_OUTPUT_PIXEL * shape[0] * shape[1]
    seconds = sum(1.1 * s["iterations"] * s["count"] * s["seconds_per_evaluation"] for s in stages)
    return {"shape": shape, "stages": stages, "tiles": tiles, "seconds": seconds,
            "peak_bytes": max(s["peak_bytes"] for s in stages), "precision": precision,
            "gflops": GFLOPS_BY_PRECISION[precision, bool(native[0])], "hardware": native[1]}


def check_plan_fits(plan, config, available=None):
    """Raise the UserError the real run would raise if its largest pass does not fit in memory."""
    from .memory import check_fits

    tiled = plan["tiles"] and True
    stage = plan["stages"][-1]
    size = config.tile_size if tiled else config.size
    layers = [n for n in (*config.content_layers, *config.style_layers) if n in layer_names(config.model)]
    check_fits(stage["shape"], size, config.model, layers, available=available,
               precision=plan.get("precision", "float32"))


def _short(values, limit=8):
    return ",".join(map(str, values)) if len(values) <= limit else \
        ",".join(map(str, values[:limit // 2])) + ",...," + ",".join(map(str, values[-2:]))


def format_plan(plan):
    """The plan as lines of text for the CLI."""
    h, w = plan["shape"]
    lines = [f"output {w}x{h}"]
    for s in plan["stages"]:
        sh, sw = s["shape"]
        what = f"{s['count']} tiles of {sw}x{sh}" if s["stage"] == "tiles" else f"{sw}x{sh}"
        lines.append(f"  {s['stage']}: {what}, {s['iterations']} iterations"
                     + (" each" if s["count"] > 1 else "")
                     + f", ~{s['seconds_per_evaluation']:.2g} s/evaluation, peak ~{s['peak_bytes'] / 2**30:.1f} GiB")
    if plan["tiles"]:
        t = plan["tiles"]
        xs, ys = sorted({x.left for x in t}), sorted({x.top for x in t})
        lines.append(f"  tile grid {len(xs)} x {len(ys)}: left edges {_short(xs)}, top edges {_short(ys)}")
    precision = plan.get("precision", "float32")
    if plan.get("hardware"):
        native = plan.get("gflops", GFLOPS) > GFLOPS
        emulated = ", emulated: slower than float32" if precision == "bfloat16" and not native else ""
        lines.append(f"precision {precision}{emulated} ({plan['hardware']})")
    lines.append(f"predicted peak memory ~{plan['peak_bytes'] / 2**30:.1f} GiB, "
                 f"time ~{plan['seconds'] / 60:.1f} min ({precision} at {plan.get('gflops', GFLOPS):g} GFLOP/s)")
    return lines


__all__ = ["plan_run", "plan_scales", "check_plan_fits", "format_plan", "predict_seconds_per_evaluation", "forward_flops_per_pixel"]
