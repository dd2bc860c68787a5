"""Two widely copied style-transfer recipes, re-implemented on nst_keras' own VGG extractor.

Each recipe has (1) a runner that follows the recipe step by step (its optimiser, its image
space, its batch) and (2) its loss definition written as an Evaluator subclass, so that our
default pipeline (L-BFGS-B, coarse-to-fine) can minimise exactly the same loss.

Sources (facts only, re-implemented here):
- keras.io "Neural style transfer" example (F. Chollet): a 3-image batch (base, style,
  combination) through VGG at every step; SGD, learning rate 100 decayed x0.96 every 100 steps;
  content weight 2.5e-8 (sum of squares on block5_conv2), style weight 1e-6 split over
  block1_conv1..block5_conv1 with sum((S - C)^2) / (4 * 3^2 * (rows*cols)^2) on unnormalised
  Grams, total variation weight 1e-6 on sum((a + b)^1.25) over the 'caffe'-preprocessed image.
- TensorFlow tutorial "Neural style transfer": Adam(0.02, beta_1=0.99, epsilon=0.1), image in
  [0, 1] clipped after each step; Gram = einsum / positions; style weight 1e-2 times the mean of
  the per-layer mean squared Gram differences; content weight 1e4 times the mean squared
  difference on block5_conv2; total variation weight 30 with tf.image.total_variation.
"""
import time

import numpy as np
import tensorflow as tf

from nst_keras import gatys
from nst_keras.gatys.config import DEFAULT_STYLE_LAYERS
from nst_keras.models import preprocess

CONTENT_LAYER = "block5_conv2"
STYLE_LAYERS = DEFAULT_STYLE_LAYERS
RECIPE_LAYERS = [CONTENT_LAYER, *STYLE_LAYERS]


# ---------------------------------------------------------------------------------------------
# keras.io


def _raw_gram(features):
    """Unnormalised Gram of one image's [h, w, C] features: [C, C]."""
    flat = tf.reshape(features, [-1, tf.shape(features)[-1]])
    return tf.matmul(flat, flat, transpose_a=True)


def kerasio_terms(comb_feats, base_content, style_grams, caffe_image, rows, cols):
    """Weighted (content, style, tv) of the keras.io recipe; comb_feats are one image's features."""
    content = 2.5e-8 * tf.reduce_sum(tf.square(comb_feats[CONTENT_LAYER] - base_content))
    size = float(rows * cols)
    style = 0.0
    for name, target in zip(STYLE_LAYERS, style_grams):
        diff = target - _raw_gram(comb_feats[name])
        style += (1e-6 / len(STYLE_LAYERS)) * tf.reduce_sum(tf.square(diff)) / (4.0 * 9.0 * size * size)
    x = caffe_image
    a = tf.square(x[:, :rows - 1, :cols - 1, :] - x[:, 1:, :cols - 1, :])
    b = tf.square(x[:, :rows - 1, :cols - 1, :] - x[:, :rows - 1, 1:, :])
    tv = 1e-6 * tf.reduce_sum(tf.pow(a + b, 1.25))
    return tf.stack([content, style, tv])


def run_kerasio(extractor, content, style, steps, log_every=0, log=print):
    """The keras.io loop: SGD on the caffe-space image, 3-image batch through the network per step.

    Returns (final image in [0, 1] (unclipped), final loss, seconds, cpu seconds, losses per step).
    """
    import keras

    rows, cols = content.shape[:2]
    base = preprocess(tf.constant(content[None]))
    style_img = preprocess(tf.constant(style[None]))
    comb = tf.Variable(base)
    opt = keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(100.0, decay_steps=100, decay_rate=0.96))
    model = extractor.model

    def features(batch):
        return dict(zip(extractor.layers, model(batch)))

    def loss_of(comb_image, base_image, style_image):
        feats = features(tf.concat([base_image, style_image, comb_image], axis=0))
        comb_feats = {n: f[2] for n, f in feats.items()}
        grams = [_raw_gram(feats[n][1]) for n in STYLE_LAYERS]
        return tf.reduce_sum(kerasio_terms(comb_feats, feats[CONTENT_LAYER][0], grams, comb_image, rows, cols))

    @tf.function
    def loss_and_grads(comb_image, base_image, style_image):
        with tf.GradientTape() as tape:
            loss = loss_of(comb_image, base_image, style_image)
        return loss, tape.gradient(loss, comb_image)

    losses = []
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(1, steps + 1):
        loss, grads = loss_and_grads(comb, base, style_img)
        opt.apply_gradients([(grads, comb)])
        losses.append(float(loss))
        if log_every and i % log_every == 0:
            log(f"keras.io step {i}: loss {losses[-1]:.4g} ({time.perf_counter() - t0:.0f} s)")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    final = float(tf.function(loss_of)(comb, base, style_img))
    from nst_keras.models import deprocess

    return deprocess(comb).numpy()[0], final, seconds, cpu, losses


class KerasIoEvaluator(gatys.Evaluator):
    """The keras.io loss as a function of an image in [0, 1], for our optimisers.

    Same definition as run_kerasio: the image is 'caffe'-preprocessed, the content target is
    the base image's block5_conv2, the style targets unnormalised Grams of the style image
    (resized to the content size, as the recipe does), normalised by this scale's rows*cols.
    """

    def __init__(self, extractor, content, styles, config, blend_weights=None, **unused):
        self.config, self.shape, self.extractor = config, content.shape, extractor
        self.evaluations, self.last_terms = 0, None
        feats = extractor(tf.constant(content[None]))
        sfeats = extractor(tf.constant(styles[0][None]))
        self.base_content = tf.constant(feats[CONTENT_LAYER][0])
        self.style_grams = [tf.constant(_raw_gram(sfeats[n][0])) for n in STYLE_LAYERS]
        spec = tf.TensorSpec([1, *self.shape], tf.float32)
        self.loss_and_grad = tf.function(self._loss_and_grad, input_signature=[spec])
        self.loss_terms = tf.function(self._terms, input_signature=[spec])

    def _terms(self, image):
        feats = {n: f[0] for n, f in self.extractor(image).items()}
        return kerasio_terms(feats, self.base_content, self.style_grams, preprocess(image), *self.shape[:2])


# ---------------------------------------------------------------------------------------------
# TensorFlow tutorial


def _tutorial_gram(features):
    result = tf.linalg.einsum("bijc,bijd->bcd", features, features)
    shape = tf.shape(features)
    return result / tf.cast(shape[1] * shape[2], tf.float32)


def tutorial_terms(feats, content_target, style_targets, image, total_variation=tf.image.total_variation):
    """Weighted (content, style, tv) of the TensorFlow tutorial's loss for [1, H, W, 3] in [0, 1]."""
    style = tf.add_n([tf.reduce_mean(tf.square(_tutorial_gram(feats[n]) - t))
                      for n, t in zip(STYLE_LAYERS, style_targets)])
    style = 1e-2 * style / len(STYLE_LAYERS)
    content = 1e4 * tf.reduce_mean(tf.square(feats[CONTENT_LAYER] - content_target))
    tv = 30.0 * tf.reduce_sum(total_variation(image))
    return tf.stack([content, style, tv])


def _tutorial_targets(extractor, content, style):
    feats = extractor(tf.constant(content[None]))
    sfeats = extractor(tf.constant(style[None]))
    return tf.constant(feats[CONTENT_LAYER]), [tf.constant(_tutorial_gram(sfeats[n])) for n in STYLE_LAYERS]


def run_tutorial(extractor, content, style, steps, log_every=0, log=print):
    """The tutorial's loop: Adam on the [0, 1] image, clipped after each step, one image per step."""
    import keras

    content_target, style_targets = _tutorial_targets(extractor, content, style)
    image = tf.Variable(content[None])
    opt = keras.optimizers.Adam(learning_rate=0.02, beta_1=0.99, epsilon=1e-1)

    def loss_of(img):
        return tf.reduce_sum(tutorial_terms(extractor(img), content_target, style_targets, img))

    @tf.function
    def train_step(img):
        with tf.GradientTape() as tape:
            loss = loss_of(img)
        opt.apply_gradients([(tape.gradient(loss, img), img)])
        img.assign(tf.clip_by_value(img, 0.0, 1.0))
        return loss

    losses = []
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(1, steps + 1):
        losses.append(float(train_step(image)))
        if log_every and i % log_every == 0:
            log(f"tutorial step {i}: loss {losses[-1]:.4g} ({time.perf_counter() - t0:.0f} s)")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    final = float(tf.function(loss_of)(image))
    return image.numpy()[0], final, seconds, cpu, losses


class TutorialEvaluator(gatys.Evaluator):
    """The TensorFlow tutorial's loss as a function of an image in [0, 1], for our optimisers."""

    def __init__(self, extractor, content, styles, config, blend_weights=None, **unused):
        self.config, self.shape, self.extractor = config, content.shape, extractor
        self.evaluations, self.last_terms = 0, None
        self.content_target, self.style_targets = _tutorial_targets(extractor, content, styles[0])
        spec = tf.TensorSpec([1, *self.shape], tf.float32)
        self.loss_and_grad = tf.function(self._loss_and_grad, input_signature=[spec])
        self.loss_terms = tf.function(self._terms, input_signature=[spec])
        self.exact_terms = tf.function(self._exact_terms, input_signature=[spec])

    def _exact_terms(self, image):
        return tutorial_terms(self.extractor(image), self.content_target, self.style_targets, image)

    def _terms(self, image):
        return tutorial_terms(self.extractor(image), self.content_target, self.style_targets, image)


class SmoothTutorialEvaluator(TutorialEvaluator):
    """The tutorial's loss with |d| in the total variation replaced by sqrt(d^2 + eps^2).

    L-BFGS-B needs a smooth objective; this one is an upper bound of the exact loss that is
    at most `slack()` above it, so time_to_loss can check the exact loss only near the target.
    """

    EPS = 1e-4

    def _terms(self, image):
        return tutorial_terms(self.extractor(image), self.content_target, self.style_targets, image,
                              total_variation=self._smooth_total_variation)

    def _smooth_total_variation(self, image):
        """tf.image.total_variation's differences, |d| replaced by sqrt(d^2 + eps^2)."""
        dx = image[:, :, 1:, :] - image[:, :, :-1, :]
        dy = image[:, 1:, :, :] - image[:, :-1, :, :]
        eps2 = self.EPS * self.EPS
        return tf.reduce_sum(tf.sqrt(tf.square(dx) + eps2)) + tf.reduce_sum(tf.sqrt(tf.square(dy) + eps2))

    def slack(self):
        h, w, c = self.shape
        return 30.0 * self.EPS * c * ((w - 1) * h + (h - 1) * w)

    def exact_loss(self, x):
        return float(tf.reduce_sum(self.exact_terms(tf.constant(np.asarray(x, np.float32).reshape(1, *self.shape)))))


# ---------------------------------------------------------------------------------------------
# Our pipeline on a recipe's loss


def time_to_loss(evaluator_cls, extractor, content, style, config, target, max_final_iterations):
    """Run stylize (our pipeline) with the recipe's loss until the final scale reaches `target`.

    Returns a dict: reached, seconds, cpu seconds, final-scale iterations, evaluations, loss, image.
    The clock starts when stylize starts (targets, tracing and coarse scales included); the
    time of exact-loss checks of a smoothed evaluator is included too.
    """
    found = {}
    c0 = time.process_time()
    built = []

    class Recording(evaluator_cls):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            built.append(self)

    def callback(p):
        found.update(iteration=p.iteration, loss=p.loss, seconds=p.elapsed, evaluations=p.evaluations,
                     cpu=time.process_time() - c0, scale=p.scale)
        if p.scale != p.num_scales - 1:
            return False
        evaluator = built[-1]
        if hasattr(evaluator, "exact_loss"):  # a smoothed upper bound: check the exact loss near the target
            if p.loss - evaluator.slack() > target:
                return False
            exact = evaluator.exact_loss(p.image)
            found["exact_loss"] = exact
            found["reached"] = exact <= target
            return found["reached"]
        found["reached"] = p.loss <= target
        return found["reached"]

    saved = gatys.Evaluator
    gatys.Evaluator = Recording  # stylize builds one Evaluator per scale from this name
    try:
        result = gatys.stylize(content, style, config.replace(iterations=max_final_iterations), callback=callback,
                               extractor=extractor)
    finally:
        gatys.Evaluator = saved
    found.setdefault("reached", False)
    found["scales"] = result.metadata["scales"]
    found["image"] = result.image
    return found
