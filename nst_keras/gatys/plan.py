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


def predict_seconds_per_evaluation(shape, model, layers):
    """Predicted seconds of one loss-and-gradient evaluation on an image of shape (h, w)."""
    return 2.0 * forward_flops_per_pixel(model, layers) * shape[0] * shape[1] / (GFLOPS * 1e9)


def plan_run(content_shape, config):
    """What pipeline.stylize() would do for a content of shape (h, w) under config.

    Returns a dict: 'shape' of the output, 'stages' (one per scale, then one for the tiles when
    tiling), each with shape, iterations, count (1, or the number of tiles), seconds_per_evaluation
    and peak_bytes, plus 'tiles' (the tile windows) and the totals 'peak_bytes' and 'seconds'
    (L-BFGS-B takes about 1.1 evaluations per iteration).
    """
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
        stage["seconds_per_evaluation"] = predict_seconds_per_evaluation(stage["shape"], model, layers)
        stage["peak_bytes"] = predict_peak_bytes(stage["shape"], model, layers)
        if stage["stage"] == "tiles":
            stage["peak_bytes"] += TILED_BYTES_PER_OUTPUT_PIXEL * shape[0] * shape[1]
    seconds = sum(1.1 * s["iterations"] * s["count"] * s["seconds_per_evaluation"] for s in stages)
    return {"shape": shape, "stages": stages, "tiles": tiles, "seconds": seconds,
            "peak_bytes": max(s["peak_bytes"] for s in stages)}


def check_plan_fits(plan, config, available=None):
    """Raise the UserError the real run would raise if its largest pass does not fit in memory."""
    from .memory import check_fits

    tiled = plan["tiles"] and True
    stage = plan["stages"][-1]
    size = config.tile_size if tiled else config.size
    layers = [n for n in (*config.content_layers, *config.style_layers) if n in layer_names(config.model)]
    check_fits(stage["shape"], size, config.model, layers, available=available)


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
    lines.append(f"predicted peak memory ~{plan['peak_bytes'] / 2**30:.1f} GiB, "
                 f"time ~{plan['seconds'] / 60:.1f} min (at {GFLOPS:g} GFLOP/s)")
    return lines


__all__ = ["plan_run", "plan_scales", "check_plan_fits", "format_plan", "predict_seconds_per_evaluation", "forward_flops_per_pixel"]
