"""Tiled rendering of outputs too large to optimise in one piece.

1. Stylise the whole image at long side `tile_size` (gatys.stylize, coarse-to-fine).
2. Upscale that result to the output size and refine it tile by tile at full resolution.
   Every tile matches the same style Grams, computed once from the whole style image at the
   output's scale (in chunks, see chunked_style_targets), so tiles cannot drift apart in style;
   content targets come from the content tile.
3. Tiles are refined in raster order, each starting from the current canvas (which already holds
   its refined neighbours), and written back with raised-cosine weights (blend_weights): over
   each overlap the final image is the earlier tile, then a smooth mix, then the later tile, so
   no edge leaves a step, and the border rows of each refinement (where VGG's zero padding acted)
   are replaced. The earlier tile also fades into the not yet refined canvas over the far half
   of the overlap, so the later tile does not start from a step either.
"""
import dataclasses
import time

import numpy as np
import tensorflow as tf

from . import color
from .config import GatysConfig
from .errors import UserError
from .image import resize_to, size_for_long_side
from .models import build_extractor, layer_stride, min_image_side


@dataclasses.dataclass(frozen=True)
class Tile:
    top: int
    left: int
    height: int
    width: int

    @property
    def window(self):
        return np.s_[self.top:self.top + self.height, self.left:self.left + self.width]


def tile_starts(length, tile, overlap):
    """Starts of windows of `tile` px covering [0, length) with at least `overlap` px shared."""
    if length <= tile:
        return [0]
    count = int(np.ceil((length - overlap) / (tile - overlap)))
    return [round(k * (length - tile) / (count - 1)) for k in range(count)]


def plan_tiles(shape, tile_size, overlap):
    """Tiles (all tile_size x tile_size, or the image side where smaller) covering an image of shape (h, w)."""
    h, w = shape[:2]
    th, tw = min(tile_size, h), min(tile_size, w)
    return [Tile(t, l, th, tw) for t in tile_starts(h, th, overlap) for l in tile_starts(w, tw, overlap)]


def _rise(shared):
    """Weights for `shared` rows next to a finished tile: a raised cosine from 0 over the first half, then 1."""
    half = max(1, shared // 2)
    ramp = np.ones(shared, np.float32)
    ramp[:half] = 0.5 - 0.5 * np.cos(np.pi * np.arange(half) / half)
    return ramp


def _fall(shared):
    """Weights for `shared` rows next to a tile still to come: 1, then a raised cosine down to 0 at the edge."""
    return _rise(shared)[::-1].copy()


def blend_weights(tile, done, pending=()):
    """[h, w] write-back weight of `tile`.

    Across the rows (columns) it shares with a finished tile above (left of) it, the weight rises
    from 0 over the first half; across those it shares with a tile still to come below (right of)
    it, it falls to 0 over the second half, which that tile will overwrite with weight 1. So in
    the final image an overlap is the earlier tile, a smooth mix, then the later tile; and the
    later tile starts from a canvas without a step where the earlier tile ended.
    """
    wy, wx = np.ones(tile.height, np.float32), np.ones(tile.width, np.float32)
    for other, before in [(t, True) for t in done] + [(t, False) for t in pending]:
        rows = min(tile.top + tile.height, other.top + other.height) - max(tile.top, other.top)
        cols = min(tile.left + tile.width, other.left + other.width) - max(tile.left, other.left)
        if rows <= 0 or cols <= 0:
            continue
        if before and other.top < tile.top:
            n = other.top + other.height - tile.top
            wy[:n] = np.minimum(wy[:n], _rise(n))
        elif before and other.left < tile.left:
            n = other.left + other.width - tile.left
            wx[:n] = np.minimum(wx[:n], _rise(n))
        elif not before and other.top > tile.top:
            n = tile.top + tile.height - other.top
            wy[-n:] = np.minimum(wy[-n:], _fall(n))
        elif not before and other.left > tile.left:
            n = tile.left + tile.width - other.left
            wx[-n:] = np.minimum(wx[-n:], _fall(n))
    return wy[:, None] * wx[None, :]


def chunked_style_targets(extractor, styles, layers, blend_weights, chunk, margin=64):
    """Blended size-normalised Grams [1, C, C] per layer of whole style images, computed in chunks.

    Each chunk of `chunk` px is run with `margin` px of context on every side; only features at
    positions inside the chunk count, so the sum of F F^T over chunks approximates the whole
    image's (exact where the layers' receptive fields fit in the margin). Chunks start at
    multiples of the deepest layer's stride, so the pooling grid matches the whole image's.
    """
    step = max(layer_stride(n) for n in layers)
    chunk = max(step, chunk // step * step)
    margin = -(-margin // step) * step
    weights = np.asarray(blend_weights, np.float64) / np.sum(blend_weights)
    totals = [0.0] * len(layers)
    for weight, style in zip(weights, styles):
        h, w = style.shape[:2]
        sums = [0.0] * len(layers)
        counts = [0] * len(layers)
        for top in range(0, h, chunk):
            for left in range(0, w, chunk):
                t0, l0 = max(0, top - margin), max(0, left - margin)
                t1, l1 = min(h, top + chunk + margin), min(w, left + chunk + margin)
                feats = extractor(tf.constant(style[None, t0:t1, l0:l1]))
                for i, name in enumerate(layers):
                    s = layer_stride(name)
                    f = feats[name][0].numpy()
                    a, b = (top - t0) // s, (left - l0) // s
                    rows = -(-min(h - top, chunk) // s)
                    cols = -(-min(w - left, chunk) // s)
                    f = f[a:a + rows, b:b + cols].reshape(-1, f.shape[-1]).astype(np.float64)
                    sums[i] = sums[i] + f.T @ f
                    counts[i] += f.shape[0]
        for i in range(len(layers)):
            totals[i] = totals[i] + weight * sums[i] / counts[i]
    return [np.asarray(t, np.float32)[None] for t in totals]


def stylize_tiled(content, style, config=None, callback=None, extractor=None, notify=None):
    """stylize() for large outputs: a pass at long side config.tile_size, then tiles at config.size.

    Arguments and result as gatys.stylize; falls back to it when config.size <= config.tile_size
    or tile_size is 0. The result's metadata lists the tiles.
    """
    from . import gatys

    config = (config or GatysConfig()).validate()
    if not config.tile_size or config.size <= config.tile_size:
        return gatys.stylize(content, style, config, callback, extractor, notify)
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    if config.style_blend_weights is not None and len(config.style_blend_weights) != len(styles):
        raise UserError(f"{len(config.style_blend_weights)} style blend weights for {len(styles)} style "
                        "images; accepted: one weight per style image")
    if extractor is None:
        extractor = build_extractor(config.model, config.weights,
                                    list(config.content_layers) + list(config.style_layers),
                                    seed=config.seed, notify=notify)
    if extractor.model_name != config.model:
        from .models import map_layers

        config = config.replace(model=extractor.model_name, weights=extractor.weights_source,
                                content_layers=tuple(map_layers(config.content_layers, extractor.model_name)),
                                style_layers=tuple(map_layers(config.style_layers, extractor.model_name)))
    min_side = min_image_side(extractor.layers)
    full_shape = size_for_long_side(content.shape, config.size)
    tiles = plan_tiles(full_shape, config.tile_size, config.tile_overlap)
    if min(tiles[0].height, tiles[0].width) < min_side:
        raise UserError(f"tiles of {tiles[0].width}x{tiles[0].height} px are too small for layer {extractor.deepest}; "
                        f"accepted: --tile-size of at least {min_side}")
    from .memory import check_fits

    check_fits((tiles[0].height, tiles[0].width), config.tile_size, extractor.model_name, extractor.layers)
    # Colours are handled once for the whole image; the base pass and the tiles see prepared images.
    from .image import load_image

    color_source = load_image(config.color_source, "color source image") if config.color_source else None
    content_p, styles_p, finish_colors = color.prepare(content, styles, config, color_source)
    plain = config.replace(color_match="none", color_source=None, original_colors="off")
    base_config = plain.replace(size=config.tile_size, tile_size=0)
    if config.style_size:  # the base pass sees the style shrunk with the output, as coarse scales do
        base_config = base_config.replace(style_size=max(1, round(config.style_size * config.tile_size / config.size)))
    start = time.perf_counter()
    grand_total = None
    base_scales = [0]
    done_iterations = [0]

    def base_callback(p):
        nonlocal grand_total
        if grand_total is None:
            base_scales[0] = p.num_scales
            grand_total = p.total_iterations + len(tiles) * config.tile_iterations
        done_iterations[0] = p.iteration
        if callback is None:
            return False
        return callback(dataclasses.replace(p, total_iterations=grand_total, num_scales=p.num_scales + 1))

    base = gatys.stylize(content_p, styles_p, base_config, base_callback, extractor)
    history = list(base.history)
    if base.stop_reason != "completed":
        image = finish_colors(resize_to(base.image, full_shape))
        return gatys.StylizeResult(image, history, base.stop_reason, dict(base.metadata, tiles=[]))
    num_scales = base_scales[0] + 1
    grand_total = grand_total or len(tiles) * config.tile_iterations
    canvas = resize_to(base.image, full_shape)
    content_full = resize_to(content_p, full_shape)
    styles_full = [gatys.fit_style(s, full_shape, plain, i) for i, s in enumerate(styles_p)]
    blend = config.style_blend_weights or [1.0] * len(styles)
    targets = chunked_style_targets(extractor, styles_full, list(plain.style_layers), blend, config.tile_size)
    stop, evaluations = None, base.metadata.get("evaluations", 0)
    finished = []
    for index, tile in enumerate(tiles):
        evaluator = gatys.Evaluator(extractor, content_full[tile.window], styles_full, plain, blend,
                                    style_targets=targets)
        weight = blend_weights(tile, finished, tiles[index + 1:])[..., None]

        def composite(xi, tile=tile, weight=weight):
            """The whole canvas with this tile's current state blended in."""
            out = canvas.copy()
            x = np.clip(np.asarray(xi, np.float32).reshape(tile.height, tile.width, 3), 0.0, 1.0)
            out[tile.window] = weight * x + (1.0 - weight) * out[tile.window]
            return out

        def on_iteration(xi, terms, tile=tile, evaluator=evaluator, composite=composite):
            done_iterations[0] += 1
            record = {"iteration": done_iterations[0], "scale": num_scales - 1, "tile": index,
                      "height": tile.height, "width": tile.width, "loss": float(terms.sum()),
                      **{k: float(v) for k, v in zip(gatys.TERMS, terms)},
                      "evaluations": evaluations + evaluator.evaluations,
                      "elapsed": time.perf_counter() - start}
            history.append(record)
            if callback is None:
                return False
            image_fn = (lambda xi=xi: composite(xi))  # the progress image is the whole canvas
            return bool(callback(gatys.Progress(done_iterations[0], grand_total, num_scales - 1, num_scales,
                                                full_shape, record["loss"],
                                                dict(zip(gatys.TERMS, map(float, terms))), record["evaluations"],
                                                record["elapsed"], image_fn)))

        x0 = canvas[tile.window].copy()
        if config.optimizer == "lbfgs":
            x_new, stop = gatys._run_lbfgs(evaluator, x0, config.tile_iterations, on_iteration)
        else:
            lr = config.learning_rate or gatys.DEFAULT_LEARNING_RATES[config.optimizer]
            x_new, stop = gatys._run_tf_optimizer(evaluator, x0, config.tile_iterations, on_iteration,
                                                  config.optimizer, lr)
        evaluations += evaluator.evaluations
        if x_new is not None:
            canvas = composite(x_new)
        finished.append(tile)
        if stop:
            break
    metadata = dict(base.metadata, config=config.to_dict(), evaluations=evaluations,
                    stop_reason=stop or "completed", seconds=time.perf_counter() - start,
                    tiles=[dataclasses.asdict(t) for t in tiles], base_size=config.tile_size)
    image = finish_colors(np.clip(canvas, 0.0, 1.0)).astype(np.float32)
    return gatys.StylizeResult(image, history, stop or "completed", metadata)
