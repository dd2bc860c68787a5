"""Steps 1-3 of the method and the runs built from them: one stage, normalise, impose, transfer, round trip.

`set_layer` runs one stage with the method's scheme (projected, reversible or penalty) and builds
its report; `normalize` records each layer's features and sets them to the reference, shallow to deep;
`impose` sets recorded features, deep to shallow; `decoupled_transfer` normalises the style and
the content and imposes the style's features on the normalised content; `round_trip` imposes an
image's own features back. A callback that returns True stops any of them at the end of the
stage in progress (stages are never left half done); they return what has finished.
"""
import math
import time

import numpy as np

from .. import __version__
from ..errors import UserError, announce
from .config import DEFAULT_SIZE, DecoupledConfig
from .features import FeatureMeans
from .penalty import penalty_stage
from .polish import as_saved, polish
from .projected import ProjectedStage
from .records import DecoupledResult, by_layer, finite, snr_db
from .reference import reference_features
from .reversible import ReversibleStage
from .sizes import MIN_POSITIONS_PER_CHANNEL, check_positions, shortfall, smallest_size
from .stage import Stage, StageContext


class _StopRequest:
    """A caller's callback, wrapped so that a run sees whether it asked to stop (returned True)."""

    def __init__(self, callback):
        self.callback, self.stopped = callback, False

    def __call__(self, progress):
        if self.callback(progress):
            self.stopped = True

    @property
    def hook(self):
        """What the stages call: self, or None without a callback."""
        return self if self.callback is not None else None


def _watch(callback):
    return callback if isinstance(callback, _StopRequest) else _StopRequest(callback)


def set_layer(net, x, k, target, reference, config, context=None):
    """Move x (flat float64) so that layer k's means reach `target`, earlier layers fixed.

    Args:
        net: a FeatureMeans; reference: the Reference (its dead channels are never constrained).
        config: the run's DecoupledConfig (a reversible run's deep layers take the projected scheme).
        context: a StageContext (default: a lone normalising stage without callback).
    Returns:
        (x, stage report dict, convergence history).
    """
    context = context or StageContext()
    if context.num_stages is None:
        context = context.replace(num_stages=1)
    stage = Stage(net, k, context)
    config = config.at_layer(k)
    target = np.asarray(target, np.float64)
    if config.method == "penalty":
        x, f, rows, extra = penalty_stage(stage, x, target, reference, config)
    else:
        scheme = ReversibleStage if config.reversible else ProjectedStage
        x, f, rows, extra = scheme(stage, target, reference, config).run(x)
    report = _report(stage, x, f, rows, target, reference, config)
    for key in ("gradient_dead", "woken", "dependent"):
        if key in extra:
            extra[key] = by_layer(net, extra[key])
    report.update(extra)
    if context.callback is not None:
        last = stage.history[-1]
        context.callback(stage._progress(last["segment"], last["snr_db"], last["min_earlier_snr_db"],
                                         report["wall_time_s"], report, x.reshape(*net.shape, 3).copy()))
    return x, report, stage.history


def _report(stage, x, f, rows, target, reference, config):
    """The stage report's common part: SNRs of the set and earlier layers, passes, time, box."""
    net, k = stage.net, stage.k
    lo, hi = net.offsets[k], net.offsets[k + 1]
    f_layers = net.split(f)
    set_rows = rows[rows >= lo] - lo
    earlier_snr = {}
    for j in range(k):
        name = net.layers[j]
        live = np.setdiff1d(np.arange(net.channels[j]), reference.dead[name])
        earlier_snr[name] = finite(snr_db(f_layers[name][live], stage.goal_earlier(j, live)))
    return {
        "stage": stage.kind, "layer": net.layers[k], "method": config.method,
        "set_snr_db": finite(snr_db(f[lo:hi][set_rows], target[set_rows])),
        "set_snr_all_channels_db": finite(snr_db(f[lo:hi], target)),
        "earlier_snr_db": earlier_snr,
        "min_earlier_snr_db": min(earlier_snr.values()) if earlier_snr else None,
        "passes": stage.passes(), "wall_time_s": time.perf_counter() - stage.t0,
        "cpu_time_s": time.process_time() - stage.cpu0,
        "constrained_channels": int(set_rows.size), "channels": int(hi - lo),
        "unconstrained_channels": np.setdiff1d(np.arange(hi - lo), set_rows).tolist(),
        "out_of_box_fraction": float(np.mean((x < 0) | (x > 1))),
        "max_out_of_box": float(max(0.0, -x.min(), x.max() - 1)) if np.all(np.isfinite(x)) else math.inf,
    }


def normalize(net, image, reference, config, context=None):
    """Steps 1/2: for k = 1..K record c_k (layers < k already normalised), then set f_k = r_k.

    Args:
        net: a FeatureMeans for the image's shape; reference: the Reference.
        image: float array [H, W, 3] (values may leave [0, 1] slightly; docs/decoupled/NUMERICS.md).
        config: the DecoupledConfig.
        context: a StageContext: kind (default 'normalize'), index of the first stage, stages in
            the run (default: as many as layers) and callback. A callback that returns True stops
            the normalisation after the stage in progress.
    Returns:
        (normalised image float64 [H, W, 3], recorded features {layer: c_k}, stage reports, history);
        after a stop, the image after the last finished stage and the stages finished so far.
    """
    context = context or StageContext(kind="normalize")
    stop = _watch(context.callback)
    x = np.asarray(image, np.float64).reshape(-1).copy()
    num_stages = context.num_stages or len(net.layers)
    recorded, reports, history = {}, [], []
    for k, name in enumerate(net.layers):
        recorded[name] = net.means(x, k)[net.offsets[k]:]
        stage = context.replace(stage_index=context.stage_index + k, num_stages=num_stages, callback=stop.hook,
                                implicit=True)
        x, report, hist = set_layer(net, x, k, reference.mean[name], reference, config, stage)
        reports.append(report)
        history += hist
        if stop.stopped:
            break
    return x.reshape(*net.shape, 3), recorded, reports, history


def impose(net, image, features, reference, config, context=None):
    """Step 3: from a normalised image, set f_K = c_K, then f_{K-1} = c_{K-1}, ... f_1 = c_1.

    Args:
        features: the recorded features {layer: c_k}; context: as in `normalize` (default kind
            'impose'). A callback that returns True stops the imposition after the stage in progress.
    Returns:
        (image float64 [H, W, 3], stage reports, history); after a stop, the image after the last
        finished stage and the stages finished so far.
    """
    context = context or StageContext(kind="impose")
    stop = _watch(context.callback)
    x = np.asarray(image, np.float64).reshape(-1).copy()
    num_stages = context.num_stages or len(net.layers)
    reports, history = [], []
    for i, k in enumerate(reversed(range(len(net.layers)))):
        stage = context.replace(stage_index=context.stage_index + i, num_stages=num_stages, callback=stop.hook,
                                implicit=False)
        x, report, hist = set_layer(net, x, k, features[net.layers[k]], reference, config, stage)
        reports.append(report)
        history += hist
        if stop.stopped:
            break
    return x.reshape(*net.shape, 3), reports, history


def prepare(content, style, config):
    """Size the content to `config.size` (long side) and centre-crop the style to the same shape.

    Raises:
        UserError: an input that is not an image in [0, 1] (image.check_image), or a content whose
            short side at this size is below what the deepest layer needs (the message gives the
            smallest --size that works for this aspect ratio).
    """
    from ..image import center_crop, check_image, fit_long_side
    from ..models import min_image_side

    content, style = check_image(content, "content image"), check_image(style, "style image")
    need = min_image_side(config.layers)
    for image, role in ((content, "content image"), (style, "style image")):
        if min(image.shape[:2]) < need:
            raise UserError(f"{role} is {image.shape[1]}x{image.shape[0]} px; accepted: at least {need} px on "
                            f"the short side for {config.layers[-1]}")
    content = fit_long_side(content, config.size)
    if min(content.shape[:2]) < need:
        smallest = _short_side_size(content.shape, config.size, need)
        raise UserError(f"content is {content.shape[1]}x{content.shape[0]} at size {config.size}; "
                        f"{config.layers[-1]} needs at least {need} pixels on the short side; accepted: "
                        f"--size {smallest} or more for this aspect ratio")
    style = center_crop(style, content.shape[:2])
    return content, style


def _short_side_size(shape, size, need, most=None):
    """The smallest long side from `size` (up to `most`) at which an image of this aspect ratio has
    `need` pixels on its short side."""
    from ..image import size_for_long_side

    while (most is None or size < most) and min(size_for_long_side(shape, size)) < need:
        size += 1
    return size


def working_size(content, style, config, extractor=None, notify=None):
    """The run at its working size: (config with the size used, content, style, net, extractor,
    reference). A config without a size starts from DEFAULT_SIZE (or the smallest size whose short
    side the deepest layer accepts) and, where the size rule (sizes.py) refuses that for the
    content's aspect ratio, moves to the smallest size it accepts, saying so in one line."""
    from ..image import size_for_long_side
    from ..models import min_image_side

    auto, said = config.size is None, None
    if auto:
        start = min(DEFAULT_SIZE, config.max_size)
        need = min_image_side(config.layers)
        size = _short_side_size(content.shape, start, need, config.max_size)
        if size != start:
            h, w = size_for_long_side(content.shape, start)
            said = (f"at size {start} a {w}x{h} image has {min(h, w)} px on its short side, below the {need} that "
                    f"{config.layers[-1]} needs")
        config = config.replace(size=size)
    for _ in range(3):  # the live channels counted at the new shape may differ a little
        content_at, style_at = prepare(content, style, config)
        net, extractor = build_net(config, content_at.shape[:2], extractor, notify)
        reference = reference_features(net, config.noise_draws, config.seed, config.dead_tolerance)
        short = shortfall(net.shape, reference, config.layers) if auto and config.method != "penalty" else []
        smallest = smallest_size(net.shape, {n: live for n, _, live in short}, config.max_size) if short else None
        if smallest is None or smallest <= config.size:
            break
        name, count, live = short[-1]
        said = said or (f"at size {config.size} a {net.shape[1]}x{net.shape[0]} image leaves {name} {count} positions "
                        f"for {live} live channels, below the {MIN_POSITIONS_PER_CHANNEL} per channel the 60 dB "
                        "precision needs")
        config = config.replace(size=smallest)
    if said:
        announce(notify, f"size {config.size}: {said}; {config.size} is the smallest size with enough for this "
                         "aspect ratio (--size sets it)")
    return config, content_at, style_at, net, extractor, reference


def build_net(config, shape, extractor=None, notify=None):
    """The extractor (built from the config unless given) wrapped as a FeatureMeans; returns both."""
    from ..models import build_extractor

    if extractor is None:
        extractor = build_extractor(model=config.model, weights=config.weights, layers=list(config.layers),
                                    seed=config.seed, notify=notify)
    smoothing = config.smoothing if config.reversible else 0.0
    return FeatureMeans(extractor, shape, config.layers, smoothing=smoothing, seed=config.seed,
                        straight_through=config.straight_through, float64=config.reversible), extractor


def _clipped(image):
    return None if image is None else np.clip(image, 0, 1).astype(np.float32)


def decoupled_transfer(content, style, config=None, callback=None, extractor=None, notify=None):
    """Steps 0-3 of decoupled style transfer.

    Args:
        content, style: float32 [H, W, 3] in [0, 1] (any size; see `prepare`).
        config: a DecoupledConfig (defaults if None).
        callback: called with a nst_keras.progress.DecoupledProgress after every corrector
            iteration / reported SGD step, and at the end of every stage (with its report and
            image). Returning True stops the run at the end of the stage in progress.
        extractor: an existing FeatureExtractor to reuse (its layers must include config.layers).
        notify: called with a message when the weights fall back to another source.
    Returns:
        DecoupledResult; metadata["stop_reason"] (and `stop_reason`) is 'completed', or 'callback'
        after a stop. After a stop, `image` is the one after the last finished imposing stage (None
        if the imposition had not started) and a normalised image is None unless all its stages
        finished.
    """
    config = (config or DecoupledConfig()).validate()
    t0 = time.perf_counter()
    config, content, style, net, extractor, reference = working_size(content, style, config, extractor, notify)
    check_positions(net.shape, reference, config, notify)  # before any stage: refuse, or say so
    n = len(net.layers)
    stop = _StopRequest(callback)
    norm_style, style_features, stages, history = normalize(net, style, reference, config,
                                                            StageContext("style", 0, 3 * n, stop.hook))
    norm_style = norm_style if len(stages) == n else None
    norm_content = result = None
    if not stop.stopped:
        norm_content, _, reports, more = normalize(net, content, reference, config,
                                                   StageContext("content", n, 3 * n, stop.hook))
        norm_content = norm_content if len(reports) == n else None
        stages, history = stages + reports, history + more
    if not stop.stopped:
        result, reports, more = impose(net, norm_content, style_features, reference, config,
                                       StageContext("impose", 2 * n, 3 * n, stop.hook, implicit=False))
        stages, history = stages + reports, history + more
    final = polished = None
    after_clipping = kept = None
    if result is not None and config.polish and not stop.stopped:
        final, polished = polish(net, result, reference, config)
    elif result is not None:
        final = _clipped(result)
    if final is not None:
        # On the image exactly as saved (clipped to [0, 1], rounded to 8 bits): each layer's SNR
        # against the style's features, and against the unclipped result's (what saving kept).
        saved = net.split(net.means(as_saved(final, net.shape)))
        unclipped = net.split(net.means(result))
        after_clipping = {name: finite(snr_db(saved[name], style_features[name])) for name in net.layers}
        kept = {name: finite(snr_db(saved[name], unclipped[name])) for name in net.layers}
    stop_reason = "callback" if stop.stopped else "completed"
    metadata = {"version": __version__, "config": config.to_dict(), "extractor": extractor.describe(),
                "shape": list(net.shape), "total_wall_time_s": time.perf_counter() - t0,
                "after_clipping_snr_db": after_clipping, "saved_vs_result_snr_db": kept, "polish": polished,
                "stop_reason": stop_reason}
    return DecoupledResult(image=final, normalized_style=_clipped(norm_style),
                           normalized_content=_clipped(norm_content), style_features=style_features,
                           reference=reference, stages=stages, metadata=metadata, history=history,
                           stop_reason=stop_reason)


def round_trip(net, image, reference, config, callback=None):
    """Normalise an image, then impose its own recorded features.

    The relative RMSE is |back - image| / |image| over all pixel values (no clipping). A callback
    that returns True stops the round trip at the end of the stage in progress.

    Returns:
        (back, normalised, relative RMSE, stage reports): back float64 [H, W, 3] (after a stop, the
        image after the last finished imposing stage, or None before the imposition), the
        normalised image, the RMSE (None unless every stage finished), and the reports of the
        normalising then the imposing stages.
    """
    n = len(net.layers)
    image = np.asarray(image, np.float64)
    stop = _StopRequest(callback)
    normalised, recorded, r1, _ = normalize(net, image, reference, config,
                                            StageContext("normalize", 0, 2 * n, stop.hook))
    if stop.stopped:
        return None, normalised, None, r1
    back, r2, _ = impose(net, normalised, recorded, reference, config,
                         StageContext("impose", n, 2 * n, stop.hook, implicit=False))
    rmse = float(np.linalg.norm(back - image) / np.linalg.norm(image)) if len(r2) == n else None
    return back, normalised, rmse, r1 + r2
