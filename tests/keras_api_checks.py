"""Checks of the Keras-native API that run under whatever Keras backend is set (KERAS_BACKEND).

tests/test_keras_api.py runs them in-process under TensorFlow and in a subprocess under JAX:
`python tests/keras_api_checks.py` prints one JSON line of results.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NET = {"model": "vgg16", "weights": "random"}
SIZE = 32


def images(n, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    out = [np.clip(np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (rng.uniform(1, 3) * xx + rng.uniform(1, 3) * yy))
                             for _ in range(3)], -1) + rng.normal(0, 0.05, (SIZE, SIZE, 3)), 0, 1)
           for _ in range(n)]
    return np.stack(out).astype("float32")


def make_losses():
    from nst_keras import losses

    style = images(1, 9)[0]
    return {
        "perceptual": losses.PerceptualLoss(["block1_conv2", "block2_conv1"], **NET),
        "style": losses.StyleLoss(style, ["block1_conv1", "block2_conv1"], **NET),
        "texture": losses.StyleLoss(None, ["block1_conv1", "block2_conv1"], **NET),
        "tv": losses.TotalVariationLoss(),
        "transfer": losses.StyleTransferLoss(style, content_layers=["block2_conv1"],
                                             style_layers=["block1_conv1", "block2_conv1"], **NET),
    }


def values_and_gradients():
    """Each loss on identical and on different images, and whether its gradient reaches y_pred."""
    import keras
    from keras import ops

    a, b = images(2, 0), images(2, 1)
    out = {}
    for name, loss in make_losses().items():
        same, diff = float(loss(a, a)), float(loss(a, b))
        grad = _gradient(loss, a, b)
        out[name] = {"same": same, "different": diff, "grad_norm": float(np.linalg.norm(grad)),
                     "grad_finite": bool(np.all(np.isfinite(grad)))}
    del keras, ops
    return out


def _gradient(loss, y_true, y_pred):
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.Variable(y_pred)
        with tf.GradientTape() as tape:
            value = loss(y_true, x)
        return tape.gradient(value, x).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda x: loss(y_true, x))(y_pred))
    raise RuntimeError(f"no gradient check for backend {backend}")


def train(loss_name, steps=6):
    """A tiny image-to-image network fitted with one loss: its first and last epoch losses."""
    import keras

    keras.utils.set_random_seed(1)  # the test's own process, not the library
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    outputs = keras.layers.Conv2D(3, 3, padding="same", activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=make_losses()[loss_name])
    noisy, clean = images(4, 3), images(4, 4)
    history = model.fit(noisy, clean, epochs=steps, batch_size=4, verbose=0).history["loss"]
    return history[0], history[-1]


def save_and_load(path):
    """A model holding VGGFeatures, compiled with PerceptualLoss, through a .keras file."""
    import keras

    from nst_keras import layers, losses

    inputs = keras.Input((SIZE, SIZE, 3))
    feats = layers.VGGFeatures(["block1_conv1"], **NET)(inputs)
    outputs = keras.layers.Conv2D(3, 1, activation="sigmoid")(feats["block1_conv1"])
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss=losses.PerceptualLoss(["block1_conv2"], **NET))
    x = images(2, 5)
    model.fit(x, images(2, 6), epochs=1, verbose=0)
    before = model.predict(x, verbose=0)
    model.save(path)
    loaded = keras.models.load_model(path)
    after = loaded.predict(x, verbose=0)
    return {"max_difference": float(np.abs(before - after).max()),
            "loss_class": type(loaded.loss).__name__,
            "loss_layers": loaded.loss.get_config()["layers"]}


def main():
    import keras

    results = {"backend": keras.backend.backend(), "values": values_and_gradients(),
               "train": {name: train(name) for name in ("perceptual", "style", "transfer")},
               "saved": save_and_load(os.path.join(sys.argv[1], "model.keras"))}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
