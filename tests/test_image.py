import os
import stat

import numpy as np
import pytest
from PIL import Image

from nst_keras import image as nimage
from nst_keras.errors import UserError
from conftest import make_image, write_image


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "LA", "I;16", "1"])
def test_modes_are_converted_to_rgb(tmp_path, mode):
    base = (make_image(20, 30) * 255).astype(np.uint8)
    if mode == "I;16":
        img = Image.fromarray(base[..., 0].astype(np.uint16) * 257)
        assert img.mode.startswith("I;16")
        path = tmp_path / "x.png"
    else:
        img = Image.fromarray(base, "RGB").convert(mode)
        path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    img.save(path)
    out = nimage.load_image(path)
    assert out.shape == (20, 30, 3) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    if mode in ("L", "I;16"):
        # grey stays grey, and 16-bit values are scaled, not clipped to white
        grey = base[..., 0] if mode == "I;16" else np.asarray(img)
        np.testing.assert_allclose(out[..., 0], out[..., 1])
        np.testing.assert_allclose(out[..., 0], grey / 255.0, atol=1.5 / 255)


def test_rgba_transparency_composited_over_white(tmp_path):
    arr = np.zeros((8, 8, 4), np.uint8)
    arr[..., 0] = 255
    arr[:, :4, 3] = 255  # left half opaque red, right half transparent
    Image.fromarray(arr, "RGBA").save(tmp_path / "a.png")
    out = nimage.load_image(tmp_path / "a.png")
    np.testing.assert_allclose(out[0, 0], [1, 0, 0])
    np.testing.assert_allclose(out[0, 7], [1, 1, 1])


def test_exif_rotation_is_honoured(tmp_path):
    arr = (make_image(20, 40) * 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    exif = img.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    img.save(tmp_path / "r.jpg", exif=exif.tobytes())
    out = nimage.load_image(tmp_path / "r.jpg")
    assert out.shape == (40, 20, 3)


@pytest.mark.parametrize("content,match", [(None, "does not exist"), (b"not an image", "not a readable image")])
def test_bad_files(tmp_path, content, match):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=match):
        nimage.load_image(path)


def test_truncated_file(tmp_path):
    path = write_image(tmp_path / "t.png", 64, 64)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(UserError, match="cannot be read|not a readable"):
        nimage.load_image(path)


def test_decompression_bomb_guard(tmp_path, monkeypatch):
    path = write_image(tmp_path / "big.png", 64, 64)
    monkeypatch.setattr(nimage, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(UserError, match="decompression-bomb"):
        nimage.load_image(path)


def test_png_round_trip_is_8bit_and_keeps_metadata(tmp_path):
    img = make_image(10, 12)
    path = tmp_path / "o.png"
    nimage.save_png(path, img, {"seed": 3})
    back = nimage.load_image(path)
    assert np.max(np.abs(back - img)) <= 0.5 / 255 + 1e-6
    assert nimage.read_png_metadata(path) == {"seed": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]  # no temporary left behind
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_to_uint8_does_not_clip_at_225():
    assert nimage.to_uint8(np.array([[[1.0, 0.95, 0.0]]]))[0, 0].tolist() == [255, 242, 0]


def test_resize_fit_and_crop_shapes():
    img = make_image(30, 60)
    assert nimage.fit_long_side(img, 20).shape == (10, 20, 3)
    assert nimage.size_for_long_side((30, 60), 120) == (60, 120)
    crop = nimage.center_crop(img, (20, 20))
    assert crop.shape == (20, 20, 3)
    # a centred square crop of a wide image equals resizing its middle
    np.testing.assert_allclose(crop, nimage.resize_to(img[:, 15:45], (20, 20)), atol=1e-6)
