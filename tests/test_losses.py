import numpy as np
import pytest
import tensorflow as tf

from nst_keras.losses import content_layer_loss, gram_matrix, style_layer_loss, total_variation_loss


def test_gram_matrix_by_hand():
    f = np.arange(2 * 3 * 2, dtype=np.float32).reshape(1, 2, 3, 2)  # 6 positions, 2 channels
    flat = f.reshape(6, 2)
    expected = flat.T @ flat / 6.0
    np.testing.assert_allclose(gram_matrix(tf.constant(f))[0].numpy(), expected, rtol=1e-6)


def test_style_loss_normalised_by_own_channels():
    g = tf.zeros((1, 4, 4))
    a = tf.ones((1, 4, 4))
    # sum((G - A)^2) / (4 N^2) = 16 / 64
    np.testing.assert_allclose(style_layer_loss(g, a).numpy(), [0.25])
    g8, a8 = tf.zeros((1, 8, 8)), tf.ones((1, 8, 8))
    np.testing.assert_allclose(style_layer_loss(g8, a8).numpy(), [0.25])  # independent of N


def test_gram_independent_of_image_size():
    rng = np.random.default_rng(0)
    tile = rng.uniform(size=(1, 4, 4, 3)).astype(np.float32)
    big = np.tile(tile, (1, 3, 3, 1))
    np.testing.assert_allclose(gram_matrix(tf.constant(tile)).numpy(), gram_matrix(tf.constant(big)).numpy(), rtol=1e-5)


def test_content_loss_by_hand():
    f = tf.constant(np.full((1, 2, 2, 3), 2.0, np.float32))
    p = tf.zeros((1, 2, 2, 3))
    np.testing.assert_allclose(content_layer_loss(f, p).numpy(), [2.0])  # 0.5 * mean(4)


def test_total_variation_by_hand():
    img = np.zeros((1, 3, 3, 3), np.float32)
    img[:, :, 2, :] = 1.0  # a vertical edge between columns 1 and 2
    # over the 3x3 grid of differences (zero past the last row and column): dx = 1 in column 1 on
    # all 3 rows, dy = 0; mean over 3*3*3
    l2 = total_variation_loss(tf.constant(img), "l2").numpy()
    np.testing.assert_allclose(l2, [1 / 3], rtol=1e-6)
    power = total_variation_loss(tf.constant(img), "power").numpy()
    np.testing.assert_allclose(power, [1 / 3], rtol=1e-5)
    img2 = img * 0.5
    np.testing.assert_allclose(total_variation_loss(tf.constant(img2), "power").numpy(), [0.25 ** 1.25 / 3],
                               rtol=1e-4)


@pytest.mark.parametrize("form", ["power", "l2"])
def test_total_variation_sees_the_last_row_column_and_corner(form):
    """A result's last row and column were noisy: the classic form never compared their pixels
    along the edge, and never saw the corner pixel at all."""
    rng = np.random.default_rng(0)
    flat = np.full((1, 16, 16, 3), 0.5, np.float32)

    def tv_of_noise(where):
        img = flat.copy()
        img[where] += rng.choice([-0.2, 0.2], size=img[where].shape).astype(np.float32)
        return float(total_variation_loss(tf.constant(img), form).numpy()[0])

    interior_row, last_row = tv_of_noise(np.s_[:, 8, :, :]), tv_of_noise(np.s_[:, 15, :, :])
    interior_col, last_col = tv_of_noise(np.s_[:, :, 8, :]), tv_of_noise(np.s_[:, :, 15, :])
    assert last_row > 0.5 * interior_row and last_col > 0.5 * interior_col
    corner = tf.Variable(flat)
    with tf.GradientTape() as tape:
        loss = total_variation_loss(corner + tf.constant(np.eye(16, dtype=np.float32)[None, :, :, None] * 0.1), form)
    assert np.abs(tape.gradient(loss, corner).numpy()[0, 15, 15]).sum() > 0


def test_gram_gradient_matches_plain_autodiff():
    rng = np.random.default_rng(3)
    f = tf.constant(rng.normal(size=(2, 5, 4, 3)).astype(np.float32))
    weights = tf.constant(rng.normal(size=(2, 3, 3)).astype(np.float32))  # not symmetric on purpose

    def plain(x):
        flat = tf.reshape(x, [2, 20, 3])
        return tf.matmul(flat, flat, transpose_a=True) / 20.0

    grads = []
    for fn in (gram_matrix, plain):
        with tf.GradientTape() as tape:
            tape.watch(f)
            loss = tf.reduce_sum(weights * fn(f))
        grads.append(tape.gradient(loss, f).numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-6)
