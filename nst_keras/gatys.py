"""Gatys-mode style transfer: the Evaluator, the optimisers and the coarse-to-fine pipeline."""
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize
import tensorflow as tf

from . import __version__, color, regions
from .config import GatysConfig
from .errors import UserError
from .image import center_crop, fit_long_side, load_image, resize_to, size_for_long_side
from .losses import content_layer_loss, gram_matrix, style_layer_loss, total_variation_loss
from .memory import check_fits
from .models import build_extractor, map_layers, min_image_side

TERMS = ("content", "style", "tv")
# L-BFGS-B sees the loss scaled so that it starts at this value: its tolerances are then
# meaningful whatever the weights (an unscaled tiny loss stopped it after one evaluation).
LBFGS_START_VALUE = 1e3
DEFAULT_LEARNING_RATES = {"adam": 0.02, "sgd": 2e-3}


class NonFiniteLoss(Exception):
    """The loss or its gradient became NaN or infinite."""


@dataclass
class Progress:
    """One optimiser iteration, handed to the callback."""

    iteration: int          # over all scales, from 1
    total_iterations: int
    scale: int              # index of the current scale, from 0
    num_scales: int
    shape: tuple            # (h, w) of the current scale
    loss: float             # weighted total, unscaled
    terms: dict             # weighted content, style and tv terms
    evaluations: int        # loss-and-gradient evaluations so far
    elapsed: float          # seconds since the start
    image_fn: object = field(repr=False, default=None)

    @property
    def image(self):
        """The current image, float32 [H, W, 3] in [0, 1] (computed on demand)."""
        return self.image_fn()


@dataclass
class StylizeResult:
    image: np.ndarray       # float32 [H, W, 3] in [0, 1]
    history: list           # one dict per iteration: iteration, scale, loss, terms, evaluations, elapsed
    stop_reason: str        # 'completed', 'callback', 'non-finite loss'
    metadata: dict          # config, model, weights, seed, version: enough to reproduce the run


def plan_scales(size, coarse_size):
    """Long sides of the coarse-to-fine schedule, coarsest first, ending at `size`."""
    sizes = [size]
    while coarse_size and sizes[0] // 2 >= coarse_size:
        sizes.insert(0, sizes[0] // 2)
    return sizes


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


def compute_style_targets(extractor, styles, layers, blend_weights, per_style=False):
    """Gram targets per layer: blended [1, C, C] (normalised blend weights), or [S, C, C] per style."""
    grams = [[] for _ in layers]
    for style in styles:
        sf = extractor(tf.constant(style[None]))
        for i, n in enumerate(layers):
            grams[i].append(gram_matrix(sf[n])[0].numpy())
    if per_style:
        return [np.stack(g) for g in grams]
    return [np.tensordot(np.asarray(blend_weights, np.float32), np.stack(g), axes=1)[None] for g in grams]


class Evaluator:
    """Loss and gradient of one image in one compiled pass, for SciPy and for TF optimisers.

    Targets (content features, style Grams) are computed once at construction. With `masks`
    (one [H, W] mask per style, see regions.py) each style's Gram target is matched by the masked
    Gram of its region and the regions' losses are summed with the blend weights.
    `style_targets` (from style_targets()) skips computing the Grams, e.g. to share them across tiles.
    """

    def __init__(self, extractor, content, styles, config, blend_weights=None, masks=None, style_targets=None):
        self.config = config
        self.shape = content.shape
        self.content_layers = list(config.content_layers)
        self.style_layers = list(config.style_layers)
        lw = np.array(config.style_layer_weights or [1.0] * len(self.style_layers), dtype=np.float64)
        self.style_layer_weights = (lw / lw.sum()).tolist()
        bw = np.array(blend_weights or [1.0] * len(styles), dtype=np.float64)
        bw = bw / bw.sum()
        self.extractor = extractor
        feats = extractor(tf.constant(content[None]))
        self.content_targets = [tf.constant(feats[n]) for n in self.content_layers]
        if style_targets is None:
            style_targets = compute_style_targets(extractor, styles, self.style_layers, bw, per_style=masks is not None)
        self.style_targets = [tf.constant(t) for t in style_targets]
        self.region_weights = tf.constant(bw, tf.float32)
        self.region_masks = None if masks is None else [
            tf.constant(regions.layer_masks(masks, feats[n].shape[1:3])) for n in self.style_layers]
        self.evaluations = 0
        self.last_terms = None
        spec = tf.TensorSpec([1, *self.shape], tf.float32)
        self.loss_and_grad = tf.function(self._loss_and_grad, input_signature=[spec])
        self.loss_terms = tf.function(self._terms, input_signature=[spec])

    def _terms(self, image):
        c = self.config
        feats = self.extractor(image)
        content = tf.add_n([content_layer_loss(feats[n], t)[0]
                            for n, t in zip(self.content_layers, self.content_targets)])
        style = tf.add_n([w * self._style_layer_term(feats[n], t, i) for i, (n, w, t) in
                          enumerate(zip(self.style_layers, self.style_layer_weights, self.style_targets))])
        tv = total_variation_loss(image, c.tv_form)[0]
        return tf.stack([c.content_weight * content, c.style_weight * style, c.tv_weight * tv])

    def _style_layer_term(self, features, target, index):
        if self.region_masks is None:
            return style_layer_loss(gram_matrix(features), target)[0]
        losses = style_layer_loss(regions.masked_grams(features, self.region_masks[index]), target)  # [S]
        return tf.reduce_sum(self.region_weights * losses)

    def _loss_and_grad(self, image):
        with tf.GradientTape() as tape:
            tape.watch(image)
            terms = self._terms(image)
            loss = tf.reduce_sum(terms)
        return terms, tape.gradient(loss, image)

    def evaluate(self, x):
        """(terms, gradient) as numpy float32 for an image array of shape [H, W, 3]."""
        terms, grad = self.loss_and_grad(tf.constant(np.asarray(x, dtype=np.float32).reshape(1, *self.shape)))
        terms, grad = terms.numpy(), grad.numpy()
        self.evaluations += 1
        if not (np.all(np.isfinite(terms)) and np.all(np.isfinite(grad))):
            raise NonFiniteLoss(f"loss terms {terms.tolist()}")
        self.last_terms = terms
        return terms, grad

    def scipy_fun(self, scale):
        """f(x) -> (scale * loss, scale * gradient) in float64: the only float32/float64 crossing."""
        def fun(x):
            terms, grad = self.evaluate(x)
            return float(terms.sum()) * scale, grad.ravel().astype(np.float64) * scale
        return fun

    def terms_at(self, x):
        return self.loss_terms(tf.constant(np.asarray(x, np.float32).reshape(1, *self.shape))).numpy()


def _run_lbfgs(evaluator, x0, iterations, on_iteration):
    """Minimise with L-BFGS-B inside [0, 1]; on_iteration(x, terms) returns True to stop."""
    try:
        terms0, _ = evaluator.evaluate(x0)
    except NonFiniteLoss:
        return x0, "non-finite loss"
    scale = LBFGS_START_VALUE / max(float(terms0.sum()), 1e-30)
    fun = evaluator.scipy_fun(scale)
    state = {"x": x0.ravel().astype(np.float64), "stop": None}
    last = {}

    def wrapped(x):
        value, grad = fun(x)
        last["x"], last["terms"] = x.copy(), evaluator.last_terms.copy()
        return value, grad

    def callback(intermediate_result):
        x = intermediate_result.x
        terms = last["terms"] if np.array_equal(last.get("x"), x) else evaluator.terms_at(x)
        state["x"] = x.copy()
        if on_iteration(x, terms):
            state["stop"] = "callback"
            raise StopIteration

    try:
        scipy.optimize.minimize(
            wrapped, state["x"], jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * x0.size,
            callback=callback,
            # gtol=0 and a tiny ftol: stop on the iteration budget, not on the loss's scale.
            options={"maxiter": iterations, "maxfun": 2 * iterations + 20, "gtol": 0.0, "ftol": 1e-12,
                     "maxcor": 10})
    except NonFiniteLoss:
        state["stop"] = "non-finite loss"
    return state["x"].reshape(x0.shape).astype(np.float32), state["stop"]


def _run_tf_optimizer(evaluator, x0, iterations, on_iteration, kind, learning_rate):
    """Adam (the TensorFlow tutorial's settings) or SGD, clipping to [0, 1] after each step."""
    import keras

    if kind == "adam":
        opt = keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.99, epsilon=0.1)
    else:
        opt = keras.optimizers.SGD(learning_rate=learning_rate)
    var = tf.Variable(x0[None])
    try:
        terms0, _ = evaluator.evaluate(x0)
    except NonFiniteLoss:
        return x0, "non-finite loss"
    # Same start value as L-BFGS so that learning rates do not depend on the loss weights.
    scale = tf.constant(LBFGS_START_VALUE / max(float(terms0.sum()), 1e-30), tf.float32)

    @tf.function
    def step():
        terms, grad = evaluator.loss_and_grad(var)
        opt.apply_gradients([(grad * scale, var)])
        var.assign(tf.clip_by_value(var, 0.0, 1.0))
        return terms

    stop = None
    for _ in range(iterations):
        terms = step().numpy()
        evaluator.evaluations += 1
        if not np.all(np.isfinite(terms)):
            return None, "non-finite loss"
        x = var.numpy()[0]
        if on_iteration(x, terms):  # the loss of the image this step started from: no extra pass
            stop = "callback"
            break
    return var.numpy()[0], stop


def _initial_image(config, content, style, rng):
    if config.init == "content":
        return content.copy()
    if config.init == "noise":
        return rng.uniform(0.0, 1.0, content.shape).astype(np.float32)
    if config.init == "style":
        return resize_to(style, content.shape[:2])
    from .image import load_image

    return resize_to(load_image(config.init, "init image"), content.shape[:2])


def stylize(content, style, config=None, callback=None, extractor=None, notify=None):
    """Repaint `content` in the style of `style`; coarse-to-fine, then at config.size.

    Args:
        content: float32 [H, W, 3] in [0, 1].
        style: one such image, or a list of them (blended by config.style_blend_weights).
        config: a GatysConfig (defaults if None).
        callback: called with a Progress after every iteration; returning True stops the run.
        extractor: a FeatureExtractor to reuse (built from config if None).
        notify: called with one-line messages (e.g. the weights fallback); the library never prints.

    Returns:
        StylizeResult. A non-finite loss ends the run early and keeps the last good image.
    Raises:
        UserError: bad options, images too small for the deepest layer, or a size whose predicted
            peak memory exceeds the available memory (nst_keras.memory).
    """
    config = (config or GatysConfig()).validate()
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
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
    if extractor is None:
        extractor = build_extractor(config.model, config.weights,
                                    list(config.content_layers) + list(config.style_layers),
                                    seed=config.seed, notify=notify)
    if extractor.model_name != config.model:  # the weights fallback changed the network
        config = config.replace(model=extractor.model_name, weights=extractor.weights_source,
                                content_layers=tuple(map_layers(config.content_layers, extractor.model_name)),
                                style_layers=tuple(map_layers(config.style_layers, extractor.model_name)))
    final_shape = size_for_long_side(content.shape, config.size)
    min_side = min_image_side(extractor.layers)
    if min(final_shape) < min_side:
        raise UserError(f"output size {final_shape[1]}x{final_shape[0]} is too small for layer "
                        f"{extractor.deepest}; accepted: at least {min_side} px on the short side")
    check_fits(final_shape, config.size, extractor.model_name, extractor.layers)  # a UserError, not an OOM kill
    sizes = [s for s in plan_scales(config.size, config.coarse_size)
             if min(size_for_long_side(content.shape, s)) >= min_side]
    rng = np.random.default_rng(config.seed)
    iters = [config.coarse_iterations] * (len(sizes) - 1) + [config.iterations]
    total = sum(iters)
    start, history, done, stop = time.perf_counter(), [], 0, None
    x = None
    evaluations = 0
    for index, (long_side, n_iter) in enumerate(zip(sizes, iters)):
        shape = size_for_long_side(content.shape, long_side)
        c = resize_to(content, shape)
        s = [fit_style(img, shape, config, i) for i, img in enumerate(styles)]
        for img in s:
            if min(img.shape[:2]) < min_side:
                raise UserError(f"style image of {img.shape[1]}x{img.shape[0]} px at scale {long_side} is too "
                                f"small for layer {extractor.deepest}; accepted: at least {min_side} px "
                                "(raise --style-scale, --style-size or --size)")
        if x is None:
            x = _initial_image(config, c, s[0], rng)
            if config.original_colors == "luminance":
                x = color.gray(color.luminance(x))
        else:
            x = resize_to(x, shape)
        evaluator = Evaluator(extractor, c, s, config, config.style_blend_weights, masks=masks)

        def on_iteration(xi, terms, index=index, shape=shape, evaluator=evaluator):
            nonlocal done
            done += 1
            record = {"iteration": done, "scale": index, "height": shape[0], "width": shape[1],
                      "loss": float(terms.sum()), **{k: float(v) for k, v in zip(TERMS, terms)},
                      "evaluations": evaluations + evaluator.evaluations,
                      "elapsed": time.perf_counter() - start}
            history.append(record)
            if callback is None:
                return False
            image_fn = (lambda xi=xi, shape=shape: np.asarray(xi, np.float32).reshape(*shape, 3))
            return bool(callback(Progress(done, total, index, len(sizes), shape, record["loss"],
                                          dict(zip(TERMS, map(float, terms))), record["evaluations"],
                                          record["elapsed"], image_fn)))

        if config.optimizer == "lbfgs":
            x_new, stop = _run_lbfgs(evaluator, x, n_iter, on_iteration)
        else:
            lr = config.learning_rate or DEFAULT_LEARNING_RATES[config.optimizer]
            x_new, stop = _run_tf_optimizer(evaluator, x, n_iter, on_iteration, config.optimizer, lr)
        evaluations += evaluator.evaluations
        if x_new is not None:
            x = x_new
        if stop:
            break
    metadata = {"nst_keras_version": __version__, "mode": "gatys", "config": config.to_dict(),
                "extractor": extractor.describe(), "scales": sizes, "evaluations": evaluations,
                "stop_reason": stop or "completed", "seconds": time.perf_counter() - start}
    image = finish_colors(np.clip(x, 0.0, 1.0)).astype(np.float32)
    return StylizeResult(image, history, stop or "completed", metadata)
