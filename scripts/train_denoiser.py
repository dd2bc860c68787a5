"""Train a small denoising network with nst_keras's perceptual loss, as a Keras project would.

    python scripts/train_denoiser.py -o denoiser.keras [--epochs 5] [--crops 512] [--size 64]

Crops of the shipped samples/ photos, with Gaussian noise added, are the inputs; the clean crops
are the targets. The loss is nst_keras.losses.PerceptualLoss (VGG features, Johnson et al. 2016)
plus a small pixel term; the model is saved as a .keras file that loads back with
keras.models.load_model (the nst_keras loss is registered for serialisation). Prints the PSNR of
held-out crops before and after training.
"""
import argparse
import glob
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def crops(photos, count, size, rng):
    out = []
    for _ in range(count):
        image = photos[rng.integers(len(photos))]
        top, left = rng.integers(image.shape[0] - size + 1), rng.integers(image.shape[1] - size + 1)
        out.append(image[top:top + size, left:left + size])
    return np.stack(out).astype("float32")


def psnr(a, b):
    return float(10 * np.log10(1.0 / np.mean((np.clip(a, 0, 1) - b) ** 2)))


def build_model():
    import keras

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    residual = keras.layers.Conv2D(3, 3, padding="same")(x)
    return keras.Model(inputs, keras.layers.Add()([inputs, residual]), name="denoiser")


class Bar:
    """A tqdm progress bar over all training steps, as a Keras callback."""

    def __new__(cls, total):
        import keras
        from tqdm import tqdm

        class _Bar(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.bar = tqdm(total=total, unit="step", file=sys.stderr)

            def on_train_batch_end(self, batch, logs=None):
                self.bar.update(1)
                self.bar.set_postfix_str(f"loss {logs['loss']:.4g}")

            def on_train_end(self, logs=None):
                self.bar.close()
        return _Bar()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", default="denoiser.keras", help="where to save the model (.keras)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--crops", type=int, default=512, help="training crops")
    p.add_argument("--size", type=int, default=64, help="crop side in px")
    p.add_argument("--noise", type=float, default=0.1, help="standard deviation of the added noise")
    p.add_argument("--weights", default="auto", help="VGG weights of the loss (auto, hed, imagenet, ...)")
    args = p.parse_args(argv)
    if not args.output.endswith(".keras"):
        p.error(f"output {args.output!r}: accepted: a path ending in .keras")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    import nst_keras

    rng = np.random.default_rng(0)
    photos = [nst_keras.load_image(path) for path in sorted(glob.glob(os.path.join(ROOT, "samples", "content_*.jpg")))]
    clean = crops(photos, args.crops + 64, args.size, rng)
    noisy = np.clip(clean + rng.normal(0, args.noise, clean.shape), 0, 1).astype("float32")
    (x, y), (x_val, y_val) = (noisy[64:], clean[64:]), (noisy[:64], clean[:64])
    model = build_model()
    perceptual = nst_keras.losses.PerceptualLoss(layers=["block2_conv2", "block3_conv3"], weights=args.weights)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=lambda t, p: perceptual(t, p) + 10.0 * keras.ops.mean(keras.ops.abs(t - p)))
    print(f"held-out PSNR before: {psnr(x_val, y_val):.2f} dB (noisy input)")
    steps = args.epochs * -(-len(x) // 16)
    model.fit(x, y, batch_size=16, epochs=args.epochs, verbose=0, callbacks=[Bar(steps)])
    print(f"held-out PSNR after:  {psnr(model.predict(x_val, verbose=0), y_val):.2f} dB")
    model.compile(optimizer="adam", loss=perceptual)  # a registered loss, so the file loads anywhere
    model.save(args.output)
    print(f"saved {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
