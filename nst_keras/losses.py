"""Pure loss functions of tensors, normalised by the actual tensor shapes.

Notation of Gatys, Ecker & Bethge (2016), "Image style transfer using convolutional neural
networks": a layer l has N_l channels and M_l = h * w positions.
"""
import tensorflow as tf

TV_FORMS = ("power", "l2")  # total-variation forms, see total_variation_loss


@tf.custom_gradient
def _gram_sum(flat):
    """flat^T flat for [B, M, C]; the gradient is one matmul, flat (dG + dG^T), not two."""
    def grad(upstream):
        return tf.matmul(flat, upstream + tf.linalg.matrix_transpose(upstream))
    return tf.matmul(flat, flat, transpose_a=True), grad


def gram_matrix(features):
    """Gram matrix of [B, h, w, C] features divided by the number of positions M_l: [B, C, C].

    Gatys eq. 3 without the division; dividing by M_l makes Gram values independent of the
    image size (departure 1 in the README).
    """
    shape = tf.shape(features)
    flat = tf.reshape(features, [shape[0], shape[1] * shape[2], shape[3]])
    positions = tf.cast(shape[1] * shape[2], features.dtype)
    return _gram_sum(flat) / positions


def style_layer_loss(gram, target_gram):
    """E_l of Gatys eq. 4 with size-normalised Grams: sum((G - A)^2) / (4 N_l^2), per image."""
    channels = tf.cast(tf.shape(gram)[-1], gram.dtype)
    return tf.reduce_sum(tf.square(gram - target_gram), axis=[-2, -1]) / (4.0 * channels * channels)


def content_layer_loss(features, target):
    """Gatys eq. 1 divided by the number of elements: mean((F - P)^2) / 2, per image."""
    return 0.5 * tf.reduce_mean(tf.square(features - target), axis=[1, 2, 3])


def total_variation_loss(images, form="power", power=1.25):
    """Total variation of [B, H, W, 3] images in [0, 1], averaged over pixels, per image.

    form='power' is the classic Keras example's (dx^2 + dy^2)^1.25; form='l2' is the plain
    dx^2 + dy^2. Both are means over pixels where the example sums (departure 3 in the README).
    Every neighbour pair counts: dx is taken on every row and dy on every column, with a zero
    difference past the last column and row. (The classic form dropped the last row's dx, the last
    column's dy and the corner pixel altogether, which left results with a noisy last row and
    column: departure 10 in the README.)
    """
    dx = images[:, :, 1:, :] - images[:, :, :-1, :]
    dy = images[:, 1:, :, :] - images[:, :-1, :, :]
    dx = tf.pad(dx, [[0, 0], [0, 0], [0, 1], [0, 0]])
    dy = tf.pad(dy, [[0, 0], [0, 1], [0, 0], [0, 0]])
    if form == "power":
        return tf.reduce_mean(tf.pow(tf.square(dx) + tf.square(dy) + 1e-12, power), axis=[1, 2, 3])
    if form == "l2":
        return tf.reduce_mean(tf.square(dx) + tf.square(dy), axis=[1, 2, 3])
    raise ValueError(f"unknown total-variation form {form!r}; accepted: {', '.join(TV_FORMS)}")
