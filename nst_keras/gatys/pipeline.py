"""stylize(): a Gatys-mode run from images to result, coarse to fine, tiled when asked.

The set-up (option checks, masks, colours, the extractor and its weights fallback) is done once
here for every kind of run; scales are optimised by optimize.optimize on an Evaluator per scale,
and a run with config.tile_size below config.size is finished by tiles.refine_tiles.
"""
import dataclasses
from dataclasses import dataclass

import numpy as np

from .. import __version__, color
from ..errors import UserError
from ..image import center_crop, check_image, fit_long_side, load_image, resize_to, size_for_long_side
from ..models import build_extractor, map_layers, min_image_side, native_bfloat16, resolve_precision
from ..progress import GatysTracker
from . import regions, tiles
from .config import GatysConfig
from .evaluator import TEMPORAL_TERMS, TERMS, Evaluator
from .memory import check_fits
from .optimize import optimize
from .plan import plan_scales


@dataclass
class StylizeResult:
    image: np.ndarray       # float32 [H, W, 3] in [0, 1]
    history: list           # one dict per iteration: iteration, scale, loss, terms, evaluations, elapsed
    stop_reason: str        # 'completed', 'callback', 'non-finite loss'
    metadata: dict          # config, model, weights, seed, version: enough to reproduce the run
    working: np.ndarray = None  # the optimised image clipped to [0, 1], before colours are restored
                                # (the luminance image when only luminance is optimised)


@dataclass
class _Run:
    """What every pass of one run shares, after the set-up."""

    config: GatysConfig     # with the layers of the network actually used
    content: np.ndarray     # colour-prepared
    styles: list            # colour-prepared, not yet sized
    masks: list             # one [H, W] mask per style, or None
    finish_colors: object   # image -> image with the content's colours back where asked
    extractor: object
    min_side: int
    precision: str = "float32"  # resolved: the extractor's
    hardware: str = ""          # why (native_bfloat16's reason)
    float32_iterations: int = 0  # iterations continued in float32 after a bfloat16 stall
    _float32_extractor: object = None

    def float32_extractor(self):
        """The extractor in float32 (the same one in a float32 run; built once otherwise)."""
        if self._float32_extractor is None:
            self._float32_extractor = self.extractor.with_precision("float32")
        return self._float32_extractor

    def finish(self, x):
        """A working image as the result: clipped to [0, 1], the content's colours back where asked."""
        return self.finish_colors(np.clip(x, 0.0, 1.0)).astype(np.float32)


def fit_style(style, content_shape, config, index=0):
    """Size style image number `index` for a content image of shape (h, w).

    config.style_size (an absolute long side at config.size, shrunk with coarser scales) wins over
    config.style_fit; config.style_scales[index] multiplies either.
    """
    factor = config.style_scales[index] if config.style_scales else 1.0
    if config.style_size:
        return fit_long_side(style, max(1, round(config.style_size * factor * max(content_shape) / config.size)))
    if config.style_fit in ("resize", "crop"):
        shape = tuple(max(1, round(n * factor)) for n in content_shape[:2])
        return resize_to(style, shape) if config.style_fit == "resize" else center_crop(style, shape)
    long_side = max(1, round(max(content_shape) * config.style_scale * factor))
    return fit_long_side(style, long_side)


def is_tiled(config):
    """Whether a run under config refines tiles after a base pass."""
    return bool(config.tile_size) and config.size > config.tile_size


def stylize(content, style, config=None, callback=None, extractor=None, notify=None, *, init=None, init_mask=None,
            temporal=None):
    """Repaint `content` in the style of `style`: coarse to fine, then tiles if config asks.

    Args:
        content: float32 [H, W, 3] in [0, 1].
        style: one such image, or a list of them (blended by config.style_blend_weights).
        config: a GatysConfig (defaults if None); every field is honoured, tiles included.
        callback: called with a progress.GatysProgress after every iteration; returning True stops the run.
        extractor: a FeatureExtractor to reuse (built from config if None).
        notify: called with one-line messages (e.g. the weights fallback); the library never prints.
        init: a start image at the output size in the run's working space (StylizeResult.working of
            a neighbouring video frame, warped); the run is then one pass of config.iterations at
            config.size, no coarse scales (the start is already close).
        init_mask: [H, W] in [0, 1] with init: where below 1, the start blends towards the
            config's own initial image (e.g. the content where a warped start is unreliable).
        temporal: an evaluator.Temporal term at the output size, added to the loss (video frames).

    Returns:
        StylizeResult. A non-finite loss ends the run early and keeps the last good image.
    Raises:
        UserError: bad options, images too small for the deepest layer, or a size whose predicted
            peak memory exceeds the available memory (gatys.memory).
    """
    config = (config or GatysConfig()).validate()
    run = _set_up(content, style, config, extractor, notify)
    guided = init is not None or temporal is not None
    if is_tiled(run.config):
        if guided:
            raise UserError(f"a start image or temporal term with tiles (--tile-size {config.tile_size} below --size "
                            f"{config.size}); accepted: --tile-size 0 or at least --size")
        return _stylize_tiled(run, callback)
    config = run.config
    final_shape = size_for_long_side(run.content.shape, config.size)
    _check_shape(final_shape, config.size, run, "output size")
    _check_guides(final_shape, init, init_mask)  # the Evaluator checks the temporal term's shape
    if init is not None:
        sizes, iterations = [config.size], [config.iterations]
    else:
        sizes, iterations = _scales(run.content.shape, config, run.min_side)
    tracker = GatysTracker(callback, sum(iterations), len(sizes), TERMS if temporal is None else TEMPORAL_TERMS,
                           run.finish)
    x, stop, last = _coarse_to_fine(run, config, sizes, iterations, tracker, (init, init_mask), temporal)
    metadata = dict(_metadata(run, tracker, stop, sizes), **_final_loss(run, config, last, x))
    if guided:
        metadata.update(start="warped" if init is not None else config.init,
                        temporal_weight=None if temporal is None else float(temporal.weight))
    return StylizeResult(run.finish(x), tracker.history, stop or "completed", metadata,
                         np.clip(x, 0.0, 1.0).astype(np.float32))


def _check_guides(shape, init, init_mask):
    """ValueErrors (programming errors of a caller) for a start image or mask of the wrong shape."""
    shape = tuple(shape)
    if init is not None and np.shape(init) != (*shape, 3):
        raise ValueError(f"init must be [H, W, 3] at the output size {shape}. Received: init.shape={np.shape(init)}")
    if init_mask is not None and (init is None or np.shape(init_mask) != shape):
        raise ValueError(f"init_mask must be [H, W] at the output size {shape}, with init. "
                         f"Received: init_mask.shape={np.shape(init_mask)}")


def _set_up(content, style, config, extractor, notify):
    content = check_image(content, "content image")
    styles = [check_image(s, "style image") for s in (list(style) if isinstance(style, (list, tuple)) else [style])]
    if config.style_blend_weights is not None and len(config.style_blend_weights) != len(styles):
        raise UserError(f"{len(config.style_blend_weights)} style blend weights for {len(styles)} style "
                        "images; accepted: one weight per style image")
    if config.style_scales is not None and len(config.style_scales) != len(styles):
        raise UserError(f"{len(config.style_scales)} style scales for {len(styles)} style images; "
                        "accepted: one scale per style image")
    masks = None
    if config.style_masks:
        masks = [regions.load_mask(path) for path in config.style_masks]
        regions.check_masks(masks, content.shape, len(styles), config.style_masks)
    color_source = load_image(config.color_source, "color source image") if config.color_source else None
    content, styles, finish_colors = color.prepare(content, styles, config, color_source)
    native = native_bfloat16() if config.precision != "float32" else (False, "")
    precision = resolve_precision(config.precision, notify, native)  # said once per run
    if extractor is None:
        extractor = build_extractor(config.model, config.weights,
                                    list(config.content_layers) + list(config.style_layers),
                                    seed=config.seed, notify=notify, pooling=config.pooling, precision=precision)
    if getattr(extractor, "pooling", "max") != config.pooling:
        raise UserError(f"the extractor pools with '{extractor.pooling}' but pooling is '{config.pooling}'; "
                        "accepted: an extractor built with the configured pooling")
    if getattr(extractor, "precision", "float32") != precision:
        raise UserError(f"the extractor computes in {getattr(extractor, 'precision', 'float32')} but precision "
                        f"'{config.precision}' is {precision} here; accepted: an extractor built with "
                        f"precision='{precision}', or --precision {getattr(extractor, 'precision', 'float32')}")
    if extractor.model_name != config.model:  # the weights fallback changed the network
        config = config.replace(model=extractor.model_name, weights=extractor.weights_source,
                                content_layers=tuple(map_layers(config.content_layers, extractor.model_name)),
                                style_layers=tuple(map_layers(config.style_layers, extractor.model_name)))
    missing = [n for n in (*config.content_layers, *config.style_layers) if n not in extractor.layers]
    if missing:
        raise UserError(f"the extractor has no layer {', '.join(missing)}; accepted: an extractor built with "
                        f"every configured layer. Received: extractor layers {list(extractor.layers)}")
    min_side = min_image_side(extractor.layers)
    for image, role in [(content, "content image")] + [(s, "style image") for s in styles]:
        if min(image.shape[:2]) < min_side:  # it would only be upscaled into a blur
            raise UserError(f"{role} is {image.shape[1]}x{image.shape[0]} px; accepted: at least {min_side} px on "
                            f"the short side for layer {extractor.deepest}")
    return _Run(config, content, styles, masks, finish_colors, extractor, min_side, precision, native[1])


def _check_shape(shape, size, run, what):
    """A UserError, not a failure deep inside, for an image too small or too large for this machine."""
    if min(shape) < run.min_side:
        raise UserError(f"{what} {shape[1]}x{shape[0]} is too small for layer {run.extractor.deepest}; "
                        f"accepted: at least {run.min_side} px on the short side")
    check_fits(shape, size, run.extractor.model_name, run.extractor.layers,  # a UserError, not an OOM kill
               precision=run.precision)


def _scales(content_shape, config, min_side):
    """The long sides of the coarse-to-fine schedule and the iterations at each."""
    sizes = [s for s in plan_scales(config.size, config.coarse_size)
             if min(size_for_long_side(content_shape, s)) >= min_side]
    return sizes, [config.coarse_iterations] * (len(sizes) - 1) + [config.iterations]


def _initial_image(config, content, style, rng):
    if config.init == "content":
        return content.copy()
    if config.init == "noise":
        return rng.uniform(0.0, 1.0, content.shape).astype(np.float32)
    if config.init == "style":
        return resize_to(style, content.shape[:2])
    return resize_to(load_image(config.init, "init image"), content.shape[:2])


def _coarse_to_fine(run, config, sizes, iterations, tracker, start=(None, None), temporal=None):
    """Optimise at each scale, starting from the previous scale's result upscaled; returns (x, stop).
    start: (image, mask) to begin from instead of the config's initial image (stylize's init);
    temporal: a Temporal term for the last scale."""
    rng = np.random.default_rng(config.seed)
    x, stop = None, None
    for index, (long_side, n_iter) in enumerate(zip(sizes, iterations)):
        shape = size_for_long_side(run.content.shape, long_side)
        c = resize_to(run.content, shape)
        s = [fit_style(img, shape, config, i) for i, img in enumerate(run.styles)]
        for img in s:
            if min(img.shape[:2]) < run.min_side:
                raise UserError(f"style image of {img.shape[1]}x{img.shape[0]} px at scale {long_side} is too "
                                f"small for layer {run.extractor.deepest}; accepted: at least {run.min_side} px "
                                "(raise --style-scale, --style-size or --size)")
        if x is None:
            x = _initial_image(config, c, s[0], rng)
            if config.original_colors == "luminance":
                x = color.gray(color.luminance(x))
            if start[0] is not None:
                mask = 1.0 if start[1] is None else np.asarray(start[1], np.float32)[..., None]
                x = (mask * np.asarray(start[0], np.float32) + (1.0 - mask) * x).astype(np.float32)
        else:
            x = resize_to(x, shape)
        term = temporal if index == len(sizes) - 1 else None
        evaluator = Evaluator(run.extractor, c, s, config, config.style_blend_weights, masks=run.masks, temporal=term)
        done = [0]  # iterations of this scale
        on_iteration = _iteration_callback(tracker, evaluator, index, shape, done)
        x_new, stop = optimize(evaluator, x, n_iter, on_iteration, config.optimizer, config.learning_rate)
        if stop == "non-finite loss" and tracker.iteration == 0 and tracker.evaluations == 0:
            _refuse_overflow(evaluator, x, config)
        if _stalled(run, config, stop, done[0], n_iter) and x_new is not None:
            # bfloat16 noise can stall L-BFGS-B's line search before the budget is used: the rest
            # of this scale's iterations run in float32, from where it stopped (a fresh L-BFGS-B).
            tracker.end_pass(evaluator)
            evaluator = Evaluator(run.float32_extractor(), c, s, config, config.style_blend_weights, masks=run.masks,
                                  temporal=term)
            before = done[0]
            on_iteration = _iteration_callback(tracker, evaluator, index, shape, done)
            x_new, stop = optimize(evaluator, x_new, n_iter - before, on_iteration, config.optimizer)
            run.float32_iterations += done[0] - before
        tracker.end_pass(evaluator)
        if x_new is not None:
            x = x_new
        if stop:
            break
    return x, stop, {"evaluator": evaluator, "content": c, "styles": s, "temporal": term}


def _iteration_callback(tracker, evaluator, index, shape, done):
    """optimize()'s on_iteration for one pass: counts iterations in done[0], reports to the tracker."""
    def on_iteration(xi, terms):
        done[0] += 1
        return tracker.step(terms, evaluator, index, shape, lambda: np.asarray(xi, np.float32).reshape(*shape, 3))
    return on_iteration


def _stalled(run, config, stop, done, budget):
    """A bfloat16 L-BFGS-B pass that ended by itself (its line search found no decrease) before its budget."""
    return run.precision == "bfloat16" and config.optimizer == "lbfgs" and stop is None and done < budget


def _refuse_overflow(evaluator, x, config):
    """The first evaluation was not finite: if a weight overflows the loss itself, a UserError
    naming it (otherwise the run ends as any non-finite run, keeping the initial image)."""
    terms = evaluator.terms_at(x)
    names = [f"{t}_weight" for t in evaluator.term_names]
    bad = [i for i, t in enumerate(terms) if not np.isfinite(t)]
    if not bad and np.isfinite(np.sum(terms, dtype=np.float32)):
        return
    i = bad[0] if bad else int(np.argmax(terms))
    value = getattr(config, names[i]) if i < len(TERMS) else evaluator.temporal[2]
    raise UserError(f"{names[i]} {value:g} makes the {evaluator.term_names[i]} loss overflow at the start ({terms[i]:g}, the "
                    f"float32 range ends at 3.4e38); accepted: a smaller --{names[i].replace('_', '-')}")


def _stylize_tiled(run, callback):
    """A base pass at long side tile_size (colours handled once for the whole image), then tiles."""
    config = run.config
    full_shape = size_for_long_side(run.content.shape, config.size)
    layout = tiles.plan_tiles(full_shape, config.tile_size, config.tile_overlap)
    tile_shape = (layout[0].height, layout[0].width)
    if min(tile_shape) < run.min_side:
        raise UserError(f"tiles of {tile_shape[1]}x{tile_shape[0]} px are too small for layer "
                        f"{run.extractor.deepest}; accepted: --tile-size of at least {run.min_side}")
    check_fits(tile_shape, config.tile_size, run.extractor.model_name, run.extractor.layers, precision=run.precision)
    # The images are colour-prepared already: the passes run with the colour options off.
    plain = config.replace(color_match="none", color_source=None, original_colors="off")
    base = plain.replace(size=config.tile_size, tile_size=0)
    if config.style_size:  # the base pass sees the style shrunk with the output, as coarse scales do
        base = base.replace(style_size=max(1, round(config.style_size * config.tile_size / config.size)))
    _check_shape(size_for_long_side(run.content.shape, base.size), base.size, run, "output size")
    sizes, iterations = _scales(run.content.shape, base, run.min_side)
    tracker = GatysTracker(callback, sum(iterations) + len(layout) * config.tile_iterations, len(sizes) + 1, TERMS,
                           run.finish)
    x, base_stop, _ = _coarse_to_fine(run, base, sizes, iterations, tracker)
    canvas, stop = resize_to(np.clip(x, 0.0, 1.0), full_shape), base_stop
    if not base_stop:
        content = resize_to(run.content, full_shape)
        styles = [fit_style(s, full_shape, plain, i) for i, s in enumerate(run.styles)]
        canvas, stop, _ = tiles.refine_tiles(canvas, content, styles, plain, run.extractor, tracker, len(sizes))
    # final_loss would need the whole canvas in one pass, which tiling exists to avoid.
    metadata = dict(_metadata(run, tracker, stop, sizes), final_loss=None, base_size=config.tile_size,
                    tiles=[] if base_stop else [dataclasses.asdict(t) for t in layout])
    return StylizeResult(run.finish(canvas), tracker.history, stop or "completed", metadata)


def _metadata(run, tracker, stop, sizes):
    return {"nst_keras_version": __version__, "mode": "gatys", "config": run.config.to_dict(),
            "extractor": run.extractor.describe(), "scales": sizes, "evaluations": tracker.evaluations,
            "stop_reason": stop or "completed", "seconds": tracker.seconds, "precision": run.precision,
            "precision_hardware": run.hardware, "float32_iterations": run.float32_iterations}


def _final_loss(run, config, last, x):
    """The result's weighted loss terms evaluated in float32 at the last scale, so that runs of
    either precision compare: {'final_loss': sum or None if not finite, 'final_terms': {...}}.
    A float32 run reuses its last evaluation when it was at the result (else one forward pass)."""
    evaluator = last["evaluator"]
    if getattr(evaluator.extractor, "precision", "float32") != "float32":
        evaluator = Evaluator(run.float32_extractor(), last["content"], last["styles"], config,
                              config.style_blend_weights, masks=run.masks, temporal=last["temporal"])
    terms = evaluator.final_terms(x)
    total = float(np.sum(terms, dtype=np.float64))
    finite = bool(np.all(np.isfinite(terms))) and np.isfinite(total)
    return {"final_loss": total if finite else None,
            "final_terms": {t: float(v) for t, v in zip(evaluator.term_names, terms)} if finite else None}
