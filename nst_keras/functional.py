"""Style-transfer losses as pure functions of tensors: the one implementation that the Gatys
Evaluator, the Keras losses (losses.py) and the Keras layers (layers.py) all use.

Written with `keras.ops` only, so they run under the TensorFlow and JAX backends. Notation of
Gatys, Ecker & Bethge (2016), "Image style transfer using convolutional neural networks": a layer l
has N_l channels and M_l = h * w positions. Features in a lower precision (a mixed-precision
policy) are cast to float32 before their Gram matrices.
"""
import keras
from keras import ops

TV_FORMS = ("power", "l2")  # total-variation forms, see total_variation_loss
_LOW_PRECISION = ("float16", "bfloat16")


def _float32(x):
    return ops.cast(x, "float32") if keras.backend.standardize_dtype(x.dtype) in _LOW_PRECISION else x


@ops.custom_gradient
def _gram_sum(flat):
    """flat^T flat for [B, M, C]; the gradient is one matmul, flat (dG + dG^T), not two."""
    def grad(*args, upstream=None):
        upstream = args[0] if upstream is None else upstream
        return ops.matmul(flat, upstream + ops.transpose(upstream, (0, 2, 1)))
    return ops.matmul(ops.transpose(flat, (0, 2, 1)), flat), grad


def gram_matrix(features):
    """Gram matrix of [B, h, w, C] features divided by the number of positions M_l: [B, C, C].

    Gatys eq. 3 without the division; dividing by M_l makes Gram values independent of the
    image size (departure 1 in the README).
    """
    features = _float32(features)
    shape = ops.shape(features)
    flat = ops.reshape(features, (shape[0], shape[1] * shape[2], features.shape[-1]))
    positions = ops.cast(shape[1] * shape[2], features.dtype)
    return _gram_sum(flat) / positions


def style_layer_loss(gram, target_gram):
    """E_l of Gatys eq. 4 with size-normalised Grams: sum((G - A)^2) / (4 N_l^2), per image."""
    channels = float(gram.shape[-1])
    return ops.sum(ops.square(gram - target_gram), axis=(-2, -1)) / (4.0 * channels * channels)


def content_layer_loss(features, target):
    """Gatys eq. 1 divided by the number of elements: mean((F - P)^2) / 2, per image."""
    return 0.5 * ops.mean(ops.square(_float32(features) - _float32(target)), axis=(1, 2, 3))


def total_variation_loss(images, form="power", power=1.25):
    """Total variation of [B, H, W, 3] images in [0, 1], averaged over pixels, per image.

    form='power' is the classic Keras example's (dx^2 + dy^2)^1.25; form='l2' is the plain
    dx^2 + dy^2. Both are means over pixels where the example sums (departure 3 in the README).
    Every neighbour pair counts: dx is taken on every row and dy on every column, with a zero
    difference past the last column and row. (The classic form dropped the last row's dx, the last
    column's dy and the corner pixel altogether, which left results with a noisy last row and
    column: departure 10 in the README.)
    """
    if form not in TV_FORMS:
        raise ValueError(f"Unknown total-variation form; accepted: {', '.join(TV_FORMS)}. Received: form={form!r}")
    dx = ops.pad(images[:, :, 1:, :] - images[:, :, :-1, :], [[0, 0], [0, 0], [0, 1], [0, 0]])
    dy = ops.pad(images[:, 1:, :, :] - images[:, :-1, :, :], [[0, 0], [0, 1], [0, 0], [0, 0]])
    if form == "power":
        return ops.mean(ops.power(ops.square(dx) + ops.square(dy) + 1e-12, power), axis=(1, 2, 3))
    return ops.mean(ops.square(dx) + ops.square(dy), axis=(1, 2, 3))


def temporal_loss(images, targets, weights):
    """The temporal loss of Ruder, Dosovitskiy & Brox (2016), eq. 7 and its long-term sum (eq. 8),
    per image: sum over k of mean(c_k * (x - w_k)^2) over pixels and channels (their 1/D with
    D = H * W * C).

    images: [B, H, W, 3]; targets: [B, K, H, W, 3], earlier results warped into this frame;
    weights: [B, K, H, W], the per-pixel reliability c_k of each warped result.
    """
    diff = ops.square(ops.expand_dims(images, 1) - targets)            # [B, K, H, W, 3]
    return ops.sum(ops.mean(ops.expand_dims(weights, -1) * diff, axis=(2, 3, 4)), axis=1)
