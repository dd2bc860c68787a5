"""Tiled rendering of outputs too large to optimise in one piece (pipeline.stylize calls it).

1. Stylise the whole image at long side `tile_size` (the ordinary coarse-to-fine pipeline).
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

import numpy as np

from ..models import layer_stride
from .evaluator import Evaluator
from .optimize import optimize


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
    import tensorflow as tf

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


def refine_tiles(canvas, content, styles, config, extractor, tracker, scale):
    """Refine `canvas` tile by tile at full resolution (steps 2-3 of the module docstring).

    Args:
        canvas: the upscaled base-pass result, float32 [H, W, 3].
        content, styles: the (colour-prepared) content at canvas size and style images sized for it.
        config: a GatysConfig with tile_size, tile_overlap and tile_iterations (colour options
            already applied to the images).
        extractor: the run's FeatureExtractor.
        tracker: the run's progress.GatysTracker; each tile's progress image is the whole canvas.
        scale: the scale index reported for the tile iterations.

    Returns:
        (canvas, stop reason or None, the tiles).
    """
    tiles = plan_tiles(canvas.shape, config.tile_size, config.tile_overlap)
    blend = config.style_blend_weights or [1.0] * len(styles)
    targets = chunked_style_targets(extractor, styles, list(config.style_layers), blend, config.tile_size)
    stop, finished = None, []
    for index, tile in enumerate(tiles):
        evaluator = Evaluator(extractor, content[tile.window], styles, config, blend, style_targets=targets)
        weight = blend_weights(tile, finished, tiles[index + 1:])[..., None]

        def composite(xi, tile=tile, weight=weight):
            """The whole canvas with this tile's current state blended in."""
            out = canvas.copy()
            x = np.clip(np.asarray(xi, np.float32).reshape(tile.height, tile.width, 3), 0.0, 1.0)
            out[tile.window] = weight * x + (1.0 - weight) * out[tile.window]
            return out

        def on_iteration(xi, terms, index=index, evaluator=evaluator, composite=composite):
            return tracker.step(terms, evaluator, scale, canvas.shape[:2], lambda: composite(xi), tile=index)

        x_new, stop = optimize(evaluator, canvas[tile.window].copy(), config.tile_iterations, on_iteration,
                               config.optimizer, config.learning_rate)
        tracker.end_pass(evaluator)
        if x_new is not None:
            canvas = composite(x_new)
        finished.append(tile)
        if stop:
            break
    return canvas, stop, tiles
