import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


def make_image(h, w, seed=0):
    """A smooth random colour image, float32 [h, w, 3] in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    planes = [0.5 + 0.4 * np.sin(2 * np.pi * (rng.uniform(1, 3) * xx + rng.uniform(1, 3) * yy) + rng.uniform(0, 6))
              for _ in range(3)]
    return np.clip(np.stack(planes, -1) + rng.normal(0, 0.05, (h, w, 3)), 0, 1).astype(np.float32)


def gradient_image(seed, size):
    """A square test image for the decoupled tests: two ramps and a sine, with 20 % noise,
    float32 [size, size, 3] in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([xx, yy, 0.5 + 0.3 * np.sin(6 * xx * yy)], axis=-1)
    return np.clip(0.8 * base + 0.2 * rng.random((size, size, 3)), 0, 1).astype(np.float32)


def write_image(path, h=40, w=48, seed=0, mode="RGB"):
    arr = (make_image(h, w, seed) * 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path)
    return str(path)


def interrupting_bar(at):
    """A progress-bar class for a CLI's `progress_bar` that raises KeyboardInterrupt (Ctrl-C) when
    its count of update() steps reaches `at`."""
    class Bar:
        def __init__(self, *args, **kwargs):
            self.n = 0

        def update(self, n=1):
            self.n += n
            if self.n == at:
                raise KeyboardInterrupt

        def set_postfix_str(self, text):
            pass

        def close(self):
            pass
    return Bar


@pytest.fixture(scope="session")
def tiny_extractor():
    from nst_keras.models import build_extractor

    return build_extractor("vgg16", "random", ["block2_conv1", "block1_conv1", "block3_conv1"], seed=1)


@pytest.fixture
def images(tmp_path):
    return {"content": write_image(tmp_path / "content.png", 40, 48, 0),
            "style": write_image(tmp_path / "style.png", 36, 36, 1)}
