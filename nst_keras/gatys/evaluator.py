"""The Evaluator: loss terms and image gradient of Gatys mode in one compiled pass.

Targets (content features, style Gram matrices) are computed once; the compiled function has a
fixed image shape, so a coarse-to-fine run builds one Evaluator per scale and a tiled run one
per tile (sharing the style targets).
"""
import numpy as np
import tensorflow as tf

from dataclasses import dataclass

from ..functional import content_layer_loss, gram_matrix, style_layer_loss, temporal_loss, total_variation_loss
from . import regions

TERMS = ("content", "style", "tv")
TEMPORAL_TERMS = TERMS + ("temporal",)


@dataclass
class Temporal:
    """The temporal term of a video frame (Ruder et al. 2016): weight * sum_k mean(c_k (x - w_k)^2).

    targets: [K, H, W, 3] earlier frames' results warped into this frame (in the working space of
    the run: the luminance image when only luminance is optimised); weights: [K, H, W] their
    per-pixel reliability c_k in [0, 1]; weight: the term's weight.
    """

    targets: np.ndarray
    weights: np.ndarray
    weight: float


class NonFiniteLoss(Exception):
    """The loss or its gradient became NaN or infinite."""


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

    Args:
        extractor: a nst_keras.models.FeatureExtractor with the config's layers.
        content: float32 [H, W, 3]; its features are the content targets and its shape the image's.
        styles: style images, sized already (pipeline.fit_style).
        config: a GatysConfig (layers and loss weights).
        blend_weights: relative weights of the styles (None: equal).
        masks: one [H, W] mask per style (regions.py): each style's Gram target is then matched by
            the masked Gram of its region and the regions' losses are summed with the blend weights.
        style_targets: precomputed Gram targets (compute_style_targets or tiles.chunked_style_targets),
            e.g. to share them across tiles.
        temporal: a Temporal term (video frames) of the content's shape, or None; with it the
            terms are TEMPORAL_TERMS, else TERMS.
    """

    def __init__(self, extractor, content, styles, config, blend_weights=None, masks=None, style_targets=None,
                 temporal=None):
        self.config = config
        self.term_names = TERMS if temporal is None else TEMPORAL_TERMS
        self.temporal = None
        if temporal is not None:
            if temporal.targets.shape[1:] != content.shape or temporal.weights.shape[1:] != content.shape[:2]:
                raise ValueError(f"temporal targets {temporal.targets.shape} and weights {temporal.weights.shape} "
                                 f"do not match the image {content.shape}")
            self.temporal = (tf.constant(temporal.targets[None], tf.float32),
                             tf.constant(temporal.weights[None], tf.float32), float(temporal.weight))
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
        self.last_image = None  # the float32 image of last_terms
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
        terms = [c.content_weight * content, c.style_weight * style, c.tv_weight * tv]
        if self.temporal is not None:
            targets, weights, weight = self.temporal
            terms.append(weight * temporal_loss(image, targets, weights)[0])
        return tf.stack(terms)

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
        """(terms, gradient) as numpy float32 for an image array of shape [H, W, 3].

        Raises:
            NonFiniteLoss: a term or the gradient is NaN or infinite.
        """
        image = np.asarray(x, dtype=np.float32).reshape(1, *self.shape)
        terms, grad = self.loss_and_grad(tf.constant(image))
        terms, grad = terms.numpy(), grad.numpy()
        self.evaluations += 1
        if not (np.all(np.isfinite(terms)) and np.all(np.isfinite(grad))):
            raise NonFiniteLoss(f"loss terms {terms.tolist()}")
        self.last_terms, self.last_image = terms, image
        return terms, grad

    def scipy_fun(self, scale):
        """f(x) -> (scale * loss, scale * gradient) in float64: the only float32/float64 crossing."""
        def fun(x):
            terms, grad = self.evaluate(x)
            return float(terms.sum()) * scale, grad.ravel().astype(np.float64) * scale
        return fun

    def terms_at(self, x):
        """The weighted loss terms of an image, without the gradient."""
        return self.loss_terms(tf.constant(np.asarray(x, np.float32).reshape(1, *self.shape))).numpy()

    def final_terms(self, x):
        """terms_at(x), reusing the last evaluation when it was at this very image (no extra pass)."""
        image = np.asarray(x, np.float32).reshape(1, *self.shape)
        if self.last_image is not None and np.array_equal(self.last_image, image):
            return self.last_terms.copy()
        return self.terms_at(image)
