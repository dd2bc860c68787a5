"""The Keras-native API: VGGFeatures, GramMatrix and the losses, under TensorFlow and (in a
subprocess) JAX."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_api_checks as checks

HERE = os.path.dirname(os.path.abspath(__file__))


def _assert_checks(results):
    values = results["values"]
    for name in ("perceptual", "texture"):  # losses between y_true and y_pred: zero when they are equal
        assert values[name]["same"] == pytest.approx(0.0, abs=1e-6) and values[name]["different"] > 0
    assert values["style"]["same"] > 0 and values["transfer"]["same"] > 0  # against a fixed style image
    assert values["tv"]["same"] > 0
    for name, v in values.items():
        assert v["grad_finite"] and v["grad_norm"] > 0, name
    for name, (first, last) in results["train"].items():
        assert np.isfinite(last) and last < first, name
    assert results["saved"]["max_difference"] == 0.0
    assert results["saved"]["loss_class"] == "PerceptualLoss" and results["saved"]["loss_layers"] == ["block1_conv2"]


@pytest.mark.slow
def test_tensorflow_backend(tmp_path):
    import keras

    assert keras.backend.backend() == "tensorflow"
    results = {"values": checks.values_and_gradients(),
               "train": {name: checks.train(name) for name in ("perceptual", "style", "transfer")},
               "saved": checks.save_and_load(str(tmp_path / "model.keras"))}
    _assert_checks(results)


@pytest.mark.slow
def test_jax_backend(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=os.path.dirname(HERE))
    done = subprocess.run([sys.executable, os.path.join(HERE, "keras_api_checks.py"), str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["backend"] == "jax"
    _assert_checks(results)


def test_gram_and_losses_agree_with_numpy():
    from keras import ops

    from nst_keras import layers, losses

    rng = np.random.default_rng(0)
    f, g = rng.normal(size=(2, 5, 4, 3)).astype("float32"), rng.normal(size=(2, 5, 4, 3)).astype("float32")
    flat = f.reshape(2, 20, 3)
    gram = np.einsum("bmi,bmj->bij", flat, flat) / 20
    np.testing.assert_allclose(ops.convert_to_numpy(losses.gram_matrix(f)), gram, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(layers.GramMatrix()(f)), gram, rtol=1e-5, atol=1e-6)
    target = gram[::-1]
    np.testing.assert_allclose(ops.convert_to_numpy(losses.style_layer_loss(gram, target)),
                               ((gram - target) ** 2).sum(axis=(1, 2)) / (4 * 3 * 3), rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(losses.content_layer_loss(f, g)),
                               0.5 * ((f - g) ** 2).mean(axis=(1, 2, 3)), rtol=1e-5)
    low = ops.cast(f, "bfloat16")  # a mixed-precision policy's features: Grams in float32
    assert keras.backend.standardize_dtype(losses.gram_matrix(low).dtype) == "float32"


def test_loss_on_vgg_features_matches_the_pure_functions():
    from keras import ops

    from nst_keras import layers, losses

    a, b = checks.images(2, 0), checks.images(2, 1)
    feats = layers.VGGFeatures(["block2_conv1"], **checks.NET)
    expected = losses.content_layer_loss(feats(b)["block2_conv1"], feats(a)["block2_conv1"])
    loss = losses.PerceptualLoss(["block2_conv1"], reduction=None, **checks.NET)
    np.testing.assert_allclose(ops.convert_to_numpy(loss(a, b)), ops.convert_to_numpy(expected), rtol=1e-6)


def test_networks_are_shared_and_frozen():
    from nst_keras import layers, losses

    a = layers.VGGFeatures(["block1_conv1"], **checks.NET)
    b = losses.PerceptualLoss(["block1_conv2"], **checks.NET).features
    kernel = lambda f: f.network.get_layer("block1_conv1").kernel  # noqa: E731
    assert kernel(a) is kernel(b)  # one set of weights per process
    assert not a.trainable and not a.trainable_weights


@pytest.mark.parametrize("make, message", [
    (lambda L, Ls: L.VGGFeatures(["block4_conv2x"], **checks.NET), r"did you mean 'block4_conv2'.*Received: layers="),
    (lambda L, Ls: L.VGGFeatures([], **checks.NET), r"at least one layer.*Received: layers=\[\]"),
    (lambda L, Ls: Ls.StyleLoss(np.zeros((4, 4)), **checks.NET), r"style_image.*Received: shape=\(4, 4\)"),
    (lambda L, Ls: Ls.StyleLoss(np.full((8, 8, 3), 255.0), **checks.NET), r"outside \[0, 1\]"),
    (lambda L, Ls: L.VGGFeatures(["block1_conv1"], **checks.NET)(np.zeros((1, 8, 8, 4), "float32")),
     r"images \[B, H, W, 3\].*Received: shape=\(1, 8, 8, 4\)"),
    (lambda L, Ls: Ls.TotalVariationLoss("l1"), r"accepted: power, l2. Received: form='l1'"),
    (lambda L, Ls: Ls.PerceptualLoss(["block1_conv1"], layer_weights=[1, 2], **checks.NET), r"one non-negative"),
])
def test_bad_input_is_a_keras_style_value_error(make, message):
    from nst_keras import layers, losses

    with pytest.raises(ValueError, match=message):
        make(layers, losses)
