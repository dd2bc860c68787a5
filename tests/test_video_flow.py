"""nst_keras.video.flow and .synthetic: warping, DIS flow, Ruder et al.'s masks, the temporal error,
and clips with exactly known motion. Tiny images, no TensorFlow."""
from pathlib import Path

import numpy as np
import pytest

import cv2  # noqa: E402,F401  (installed by the test extra: fail, never skip, without it)

from conftest import make_image  # noqa: E402
from nst_keras.errors import UserError  # noqa: E402
from nst_keras.video.flow import (  # noqa: E402
    FLOW_PRESETS, compute_flow, disocclusion, long_term_weights, motion_boundary, out_of_frame,
    reliability, temporal_error, temporal_errors, warp)
from nst_keras.video.synthetic import camera_clip, pan_clip  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def smooth(h, w, x0=0.0, y0=0.0):
    """A smooth analytic colour image sampled at (x0 + x, y0 + y), so that shifts are known."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    xx, yy = xx + x0, yy + y0
    planes = [0.5 + 0.2 * np.sin(0.21 * xx + 0.13 * yy + k) + 0.2 * np.cos(0.17 * yy - 0.08 * xx + 2 * k)
              for k in range(3)]
    return np.stack(planes, -1).astype(np.float32)


@pytest.fixture(scope="module")
def photo():
    """A real photo (sample cat) at 160x107: texture that optical flow can lock onto."""
    import cv2
    from PIL import Image

    arr = np.asarray(Image.open(SAMPLES / "content_chelsea.jpg").convert("RGB"), np.float32) / 255
    return cv2.resize(arr, (160, 107), interpolation=cv2.INTER_AREA)


def const_flow(h, w, dx, dy):
    flow = np.empty((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


# ---------------------------------------------------------------- warp, out_of_frame
def test_warp_by_whole_pixels_is_exact_away_from_the_border():
    img = make_image(24, 32, seed=3)
    out = warp(img, const_flow(24, 32, 3, -2))  # out(x, y) = img(x + 3, y - 2)
    assert out.shape == img.shape and out.dtype == np.float32
    np.testing.assert_allclose(out[2:, :-3], img[:-2, 3:], atol=1e-6)
    gray = warp(img[..., 0], const_flow(24, 32, 3, -2))
    assert gray.shape == (24, 32)
    np.testing.assert_allclose(gray[2:, :-3], img[:-2, 3:, 0], atol=1e-6)


def test_warp_by_a_subpixel_translation_is_bilinear_accurate():
    img = smooth(24, 32)
    out = warp(img, const_flow(24, 32, 0.5, 0.25))
    expected = smooth(24, 32, 0.5, 0.25)
    inner = (slice(1, -2), slice(1, -2))
    assert np.abs(out[inner] - expected[inner]).max() < 4e-3  # bilinear error on a smooth image
    assert np.abs(img[inner] - expected[inner]).max() > 2e-2  # unwarped, the error is 5x larger
    # and it is bilinear interpolation itself: weights (0.5, 0.5) across, (0.75, 0.25) down
    rows = 0.75 * img[:-1] + 0.25 * img[1:]
    bilinear = 0.5 * rows[:, :-1] + 0.5 * rows[:, 1:]
    np.testing.assert_allclose(out[:-1, :-1], bilinear, atol=1e-5)


def test_out_of_frame_marks_targets_outside_the_image():
    oof = out_of_frame(const_flow(6, 8, 2, -1))
    expected = np.zeros((6, 8), bool)
    expected[:, -2:] = True
    expected[0, :] = True
    np.testing.assert_array_equal(oof, expected)


# ---------------------------------------------------------------- compute_flow
@pytest.mark.parametrize("preset", ["ultrafast", "medium"])
def test_compute_flow_recovers_a_subpixel_translation(photo, preset):
    frames, flows, _ = camera_clip(photo, 2, (64, 80), (10, 10, 80), (11.5, 10.75, 80))
    np.testing.assert_allclose(flows[1][0, 0], [1.5, 0.75])
    flow = compute_flow(frames[1], frames[0], preset)
    assert flow.shape == (64, 80, 2) and flow.dtype == np.float32
    err = np.abs(flow - flows[1])[8:-8, 8:-8]
    assert err.mean() < 0.15 and np.median(err) < 0.15
    # the convention: warping frame 0 by the flow from frame 1 to frame 0 gives frame 1
    assert np.abs(warp(frames[0], flow) - frames[1])[8:-8, 8:-8].mean() < 0.01


def test_a_bad_preset_is_a_user_error_naming_it(photo):
    with pytest.raises(UserError, match="'slow'.*ultrafast, fast, medium"):
        compute_flow(photo, photo, "slow")
    assert FLOW_PRESETS == ("ultrafast", "fast", "medium")


# ---------------------------------------------------------------- Ruder et al.'s masks
def moving_square(photo, d=4):
    """Frames s and t: a textured 24 px square moving right by d px over a static photo."""
    bg = photo[:80, :96]
    tex = photo[::-1, ::-1][20:44, 30:54]
    y0, x0, size = 28, 30, 24

    def scene(x):
        im = bg.copy()
        im[y0:y0 + size, x:x + size] = tex
        return im

    h, w = bg.shape[:2]
    flow_ts = np.zeros((h, w, 2), np.float32)  # t -> s: the square at t came from d px to the left
    flow_ts[y0:y0 + size, x0 + d:x0 + d + size, 0] = -d
    flow_st = np.zeros((h, w, 2), np.float32)
    flow_st[y0:y0 + size, x0:x0 + size, 0] = d
    uncovered = np.zeros((h, w), bool)
    uncovered[y0:y0 + size, x0:x0 + d] = True
    far = np.ones((h, w), bool)
    far[y0 - 4:y0 + size + 4, x0 - 4:x0 + d + size + 4] = False
    inside = np.zeros((h, w), bool)
    inside[y0 + 3:y0 + size - 3, x0 + d + 3:x0 + d + size - 3] = True
    return scene(x0), scene(x0 + d), flow_ts, flow_st, uncovered, far, inside


def test_consistency_check_marks_what_a_moving_square_uncovers_exact_flows(photo):
    _, _, flow_ts, flow_st, uncovered, far, inside = moving_square(photo)
    assert disocclusion(flow_ts, flow_st)[uncovered].all()
    assert not disocclusion(flow_ts, flow_st)[far | inside].any()
    c = reliability(flow_ts, flow_st)
    assert c.dtype == np.float32 and set(np.unique(c)) <= {0.0, 1.0}
    assert (c[uncovered] == 0).all()
    assert (c[far] == 1).all() and (c[inside] == 1).all()


def test_consistency_check_marks_what_a_moving_square_uncovers_dis_flows(photo):
    s, t, _, _, uncovered, far, inside = moving_square(photo)
    c = reliability(compute_flow(t, s), compute_flow(s, t))
    assert c[uncovered].mean() < 0.3
    assert c[far].mean() > 0.9 and c[inside].mean() > 0.8


def test_motion_boundary_fires_on_a_discontinuity_not_on_a_smooth_flow():
    step = np.zeros((20, 30, 2), np.float32)
    step[:, 15:, 0] = 3.0
    mb = motion_boundary(step)
    assert mb[:, 14:16].all()
    assert not mb[:, :13].any() and not mb[:, 17:].any()
    yy, xx = np.mgrid[0:20, 0:30].astype(np.float32)
    zoom = np.stack([1.5 + 0.01 * (xx - 15), -0.5 + 0.01 * (yy - 10)], -1)  # 1 % zoom plus a pan
    assert not motion_boundary(zoom).any()
    c, oof = reliability(zoom, -zoom), out_of_frame(zoom)
    assert oof.any() and (c[oof] == 0).all() and (c[~oof] == 1).all()


def test_long_term_weights_use_the_nearest_reliable_frame():
    c1 = np.array([[1, 0, 0, 1]], np.float32)
    c2 = np.array([[1, 1, 0, 0]], np.float32)
    c4 = np.array([[1, 1, 1, 0]], np.float32)
    weights = long_term_weights({4: c4, 1: c1, 2: c2})
    assert sorted(weights) == [1, 2, 4]
    np.testing.assert_array_equal(weights[1], c1)
    np.testing.assert_array_equal(weights[2], [[0, 1, 0, 0]])  # reliable at t-1: no weight further back
    np.testing.assert_array_equal(weights[4], [[0, 0, 1, 0]])  # occluded at t-1 and t-2: from t-4
    assert all(w.dtype == np.float32 for w in weights.values())


# ---------------------------------------------------------------- synthetic clips, temporal error
def test_pan_clip_flow_is_exact_and_matches_camera_clip():
    src = make_image(40, 50, seed=1)
    frames, flows, masks = pan_clip(src, 4, (20, 24), step=(3, -2))
    assert len(frames) == len(flows) == len(masks) == 4 and flows[0] is None and masks[0] is None
    np.testing.assert_array_equal(frames[0], src[6:26, 0:24])  # origin keeps every crop inside
    np.testing.assert_array_equal(frames[3], src[0:20, 9:33])
    np.testing.assert_array_equal(flows[1][5, 5], [3, -2])  # frame_t(p) = frame_{t-1}(p + step)
    assert masks[1].sum() == (24 - 3) * (20 - 2)
    for t in range(1, 4):
        np.testing.assert_allclose(warp(frames[t - 1], flows[t])[masks[t]], frames[t][masks[t]], atol=1e-6)
    cam_frames, cam_flows, cam_masks = camera_clip(src, 4, (20, 24), (0, 6, 24), (9, 0, 24))
    for t in range(4):
        np.testing.assert_allclose(cam_frames[t], frames[t], atol=1e-6)
    np.testing.assert_allclose(cam_flows[2], flows[2], atol=1e-5)
    np.testing.assert_array_equal(cam_masks[2], masks[2])


def test_camera_clip_zoom_and_pan_flow_warps_frames_onto_each_other():
    src = smooth(60, 80)
    frames, flows, masks = camera_clip(src, 4, (24, 32), (4, 6, 48), (20, 10, 40))
    assert frames[0].shape == (24, 32, 3) and frames[0].dtype == np.float32
    for t in range(1, 4):
        assert 0.5 < masks[t].mean() < 1.0  # panning right: the right edge is new
        np.testing.assert_array_equal(masks[t], ~out_of_frame(flows[t]))
        err = np.abs(warp(frames[t - 1], flows[t]) - frames[t])[masks[t]]
        assert err.max() < 0.01
        assert np.abs(frames[t - 1] - frames[t])[masks[t]].mean() > 0.02  # the frames do move
    with pytest.raises(ValueError, match="leaves"):
        camera_clip(src, 3, (24, 32), (0, 0, 40), (60, 0, 40))


def test_temporal_error_is_zero_on_true_motion_and_grows_with_jitter():
    frames, flows, masks = pan_clip(make_image(40, 50, seed=2), 5, (24, 30), step=(2, 1))
    assert temporal_error(frames, flows, masks) < 1e-6
    rng = np.random.default_rng(0)
    jittered = [np.clip(f + rng.normal(0, 0.05, f.shape), 0, 1).astype(np.float32) for f in frames]
    errors = temporal_errors(jittered, flows, masks)
    assert len(errors) == 4 and min(errors) > 0.02
    assert temporal_error(jittered, flows, masks) == pytest.approx(np.mean(errors))
    zoom = camera_clip(smooth(60, 80), 4, (24, 32), (4, 6, 48), (20, 10, 40))
    assert temporal_error(*zoom) < 0.005
    empty = [None] + [np.zeros((24, 30), bool)] * 4
    assert np.isnan(temporal_errors(frames, flows, empty)[0])
