"""Video stylisation: stylize_frames (warped start, temporal loss) and the nst-video command."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import av  # noqa: E402,F401  (the test extra installs PyAV and OpenCV: fail, never skip, without them)
import cv2  # noqa: E402,F401

from nst_keras import color  # noqa: E402
from nst_keras.cli import video as cli  # noqa: E402
from nst_keras.errors import UserError  # noqa: E402
from nst_keras.gatys.config import GatysConfig  # noqa: E402
from nst_keras.image import load_image, resize_to, size_for_long_side  # noqa: E402
from nst_keras.video import flow, io  # noqa: E402
from nst_keras.video.config import VideoConfig  # noqa: E402
from nst_keras.video.synthetic import pan_clip  # noqa: E402
from nst_keras.video.temporal import FrameResult, stylize_frames  # noqa: E402
from conftest import interrupting_bar, make_image, write_image  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = dict(content_layers=("block2_conv1",), style_layers=("block1_conv1", "block2_conv1"))
FAST = ["--model", "vgg16", "--weights", "random", "--size", "48", "--iterations", "5", "--frame-iterations", "3",
        "--coarse-size", "0", "--content-layers", "block2_conv1", "--style-layers", "block1_conv1,block2_conv1"]
SHAPE = (40, 56)  # CLI input frames; at --size 48 the output is 34x48
OUT_SHAPE = size_for_long_side(SHAPE, 48)


def pan(n, shape=SHAPE, seed=3, step=(3, 0)):
    """An n-frame pan over a smooth random image: (frames, exact flows, masks)."""
    h, w = shape
    return pan_clip(make_image(h + abs(step[1]) * n, w + abs(step[0]) * n, seed), n, shape, step=step)


def frame_folder(path, n=3, shape=SHAPE):
    for i, frame in enumerate(pan(n, shape)[0]):
        io.write_frame(path, i + 1, frame)
    return str(path)


def clip(tmp_path, n=4, fps=12):
    """A tiny H.264 clip of an n-frame pan, made with encode_video."""
    paths = [io.write_frame(tmp_path / "clip_frames", i + 1, f) for i, f in enumerate(pan(n)[0])]
    out = tmp_path / "clip.mp4"
    io.encode_video(paths, out, fps)
    return str(out)


@pytest.fixture
def style(tmp_path):
    return write_image(tmp_path / "style.png", 36, 36, 1)


def run(capsys, *argv, quiet=True):
    code = cli.main(FAST + [str(a) for a in argv] + (["-q"] if quiet else []))  # later flags win
    return code, capsys.readouterr().err


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nst-video: error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], err


def png_names(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".png"))


# --- stylize_frames ---------------------------------------------------------------------------------------

def test_temporal_term_lowers_the_temporal_error(tiny_extractor):
    # A 3-frame pan with exact flow; content start, so independent frames differ only by the
    # optimisation. The ratio is 0.5-0.6 for the source and style images tried (seeds 3, 8, 11).
    frames, flows, masks = pan(3, (36, 48), seed=11)
    style = make_image(40, 40, 12)
    config = GatysConfig(size=48, iterations=6, coarse_size=0, **LAYERS)
    errors = {}
    for independent in (False, True):
        video = VideoConfig(frame_iterations=3, temporal_weight=2e3, independent=independent)
        outputs = [r.image for r in stylize_frames(frames, style, config, video, extractor=tiny_extractor)]
        assert len(outputs) == 3
        errors[independent] = flow.temporal_error(outputs, flows, masks)
    assert errors[False] < 0.7 * errors[True], errors


def test_generator_input_yields_one_result_per_frame(tiny_extractor):
    frames = pan(3)[0]
    seen = []
    config = GatysConfig(size=48, iterations=3, coarse_size=0, **LAYERS)
    results = list(stylize_frames((f for f in frames), make_image(36, 36, 1), config,
                                  VideoConfig(frame_iterations=2, long_term=(2, 1)),
                                  callback=lambda p: seen.append((p.frame, p.frames)), extractor=tiny_extractor))
    assert [r.index for r in results] == [0, 1, 2]
    for r in results:
        assert isinstance(r, FrameResult) and r.stop_reason == "completed"
        assert r.image.shape == (*OUT_SHAPE, 3) and r.image.dtype == np.float32
        assert 0 <= r.image.min() and r.image.max() <= 1
        assert r.working.shape == r.image.shape and r.metadata["frame"] == r.index
    meta = [r.metadata for r in results]
    assert [m["start"] for m in meta] == ["content", "warped", "warped"]
    assert [m["offsets"] for m in meta] == [[], [1], [1, 2]]
    assert meta[0]["video"]["long_term"] == (1, 2)  # sorted by validate
    assert "temporal" not in meta[0]["final_terms"]
    for m in meta[1:]:
        assert np.isfinite(m["final_terms"]["temporal"]) and 0.5 < m["reliable"] <= 1
    assert {f for f, _ in seen} == {0, 1, 2} and {n for _, n in seen} == {None}  # a generator has no length


def test_style_masks_and_bfloat16_apply_to_every_frame(tmp_path):
    """Gatys options reach the later frames too: a style mask restricts the style to its region
    (the unmasked half stays closer to the content than with no mask), and bfloat16 builds the
    network in bfloat16 for every frame."""
    frames = pan(2)[0]
    mask = np.zeros(OUT_SHAPE, np.uint8)
    mask[:, : OUT_SHAPE[1] // 2] = 255
    mask_path = tmp_path / "mask.png"
    from PIL import Image

    Image.fromarray(mask).save(mask_path)
    base = GatysConfig(size=48, iterations=8, coarse_size=0, model="vgg16", weights="random", style_weight=1.0,
                       **LAYERS)
    style = make_image(36, 36, 7)
    video = VideoConfig(frame_iterations=6)
    plain = list(stylize_frames(frames, style, base, video))
    masked = list(stylize_frames(frames, style, base.replace(style_masks=(str(mask_path),)), video))
    content = resize_to(frames[1], OUT_SHAPE)
    right = slice(OUT_SHAPE[1] // 2 + 4, None)  # away from the mask's edge
    change = lambda r: np.abs(r.image[:, right] - content[:, right]).mean()  # noqa: E731
    assert masked[1].metadata["start"] == "warped"
    assert change(masked[1]) < 0.8 * change(plain[1]), (change(masked[1]), change(plain[1]))

    bf16 = list(stylize_frames(frames, style, base.replace(precision="bfloat16", iterations=3),
                               VideoConfig(frame_iterations=2)))
    assert [r.metadata["precision"] for r in bf16] == ["bfloat16", "bfloat16"]
    assert bf16[1].metadata["start"] == "warped" and np.isfinite(bf16[1].metadata["final_loss"])


def test_frames_of_different_shapes_are_a_user_error(tiny_extractor):
    frames = [make_image(36, 48, 0), make_image(40, 48, 1)]
    config = GatysConfig(size=48, iterations=1, coarse_size=0, **LAYERS)
    with pytest.raises(UserError, match="frame 1 is 48x40 but frame 0 is 48x36"):
        list(stylize_frames(frames, make_image(36, 36, 1), config, extractor=tiny_extractor))


@pytest.mark.parametrize("kwargs,needle", [
    (dict(frame_iterations=0), "--frame-iterations 0"),
    (dict(frame_iterations=True), "--frame-iterations True"),
    (dict(temporal_weight=-1.0), "--temporal-weight -1.0"),
    (dict(temporal_weight=float("nan")), "--temporal-weight nan"),
    (dict(long_term=(2,)), "--long-term 2 has no 1"),
    (dict(long_term=(1, 1)), "--long-term 1,1"),
    (dict(long_term=(1, 0)), "--long-term 1,0"),
    (dict(long_term=4), "--long-term 4"),
    (dict(flow_preset="slow"), "--flow-preset 'slow'"),
])
def test_bad_video_config_is_a_user_error_naming_the_value(kwargs, needle):
    with pytest.raises(UserError) as info:
        VideoConfig(**kwargs).validate()
    assert needle in str(info.value) and "accepted" in str(info.value)
    with pytest.raises(UserError):  # before any network is built
        next(stylize_frames([make_image(36, 48)], make_image(36, 36, 1), GatysConfig(), VideoConfig(**kwargs)))


def test_numpy_whole_numbers_are_accepted():
    video = VideoConfig(frame_iterations=np.int64(3), long_term=[np.int64(2), 1]).validate()
    assert video.frame_iterations == 3 and video.long_term == (1, 2)
    json.dumps(video.to_dict())  # recorded in run.json


# --- nst-video --------------------------------------------------------------------------------------------

def test_folder_in_gives_folder_out(tmp_path, style, capsys):
    src = frame_folder(tmp_path / "in", 3)
    out = tmp_path / "out"
    code, err = run(capsys, src, style, "-o", out)
    assert code == 0, err
    assert png_names(out) == [io.frame_name(i) for i in (1, 2, 3)]
    for name in png_names(out):
        assert load_image(out / name).shape == (*OUT_SHAPE, 3)
    summary = json.loads((out / "nst-video.json").read_text())
    assert summary["frames"] == 3 and summary["output_kind"] == "folder"
    assert [r["start"] for r in summary["frame_records"]] == ["content", "warped", "warped"]
    assert not [n for n in os.listdir(out / cli.STATE) if n.startswith("working_")]


def test_video_in_gives_video_out_with_same_count_and_fps(tmp_path, style, capsys):
    src = clip(tmp_path, 3, 12)
    out = tmp_path / "out.mp4"
    code, err = run(capsys, src, style, "-o", out)
    assert code == 0, err
    result = io.open_frames(out)
    assert result.count == 3 and result.fps == 12 and result.shape == OUT_SHAPE
    sidecar = json.loads((tmp_path / "out.json").read_text())
    assert sidecar["encode"]["frames"] == 3 and sidecar["inputs"]["input"]["name"] == "clip.mp4"
    assert not os.path.exists(str(out) + ".frames")


def test_every_2_halves_frames_and_fps_independent_runs(tmp_path, style, capsys):
    src = clip(tmp_path, 4, 12)
    out = tmp_path / "half.webm"
    code, err = run(capsys, src, style, "-o", out, "--every", "2", "--independent")
    assert code == 0, err
    result = io.open_frames(out)
    assert result.count == 2 and result.fps == 6
    records = json.loads((tmp_path / "half.json").read_text())["frame_records"]
    assert [r["start"] for r in records] == ["content", "content"] and records[1]["offsets"] == []


@pytest.mark.parametrize("argv,needles", [
    (["{corrupt}", "{style}"], ["video '{corrupt}'", "cannot be opened"]),
    (["{empty}", "{style}"], ["has no image frames"]),
    (["{mixed}", "{style}"], ["is 48x40 but", "is 56x40", "frames of one size"]),
    (["{folder}", "{style}", "-o", "{tmp}/out.avi"], ["unsupported extension '.avi'", ".mp4"]),
    (["{folder}", "{style}", "--temporal-weight", "-1"], ["--temporal-weight -1.0"]),
    (["{folder}", "{style}", "--long-term", "2"], ["--long-term 2 has no 1"]),
    (["{folder}", "{style}", "--long-term", "1,x"], ["--long-term: '1,x' is not a list of whole numbers", "accepted"]),
    (["{folder}", "{style}", "--frame-iterations", "0"], ["--frame-iterations 0"]),
    (["{folder}", "{style}", "--tile-size", "32", "--tile-overlap", "8"], ["--tile-size 32 below --size 48"]),
    (["{folder}", "{style}", "-o", "{folder}"], ["is the input"]),
    (["{folder}", "{style}", "-o", "{style}"], ["unsupported extension '.png'"]),
    (["{folder}", "{style}", "--crf", "60"], ["--crf 60"]),
    (["{folder}", "{style}", "--fps", "0"], ["--fps 0"]),
    (["{clip}", "{style}", "--fps", "24"], ["--fps 24 with the video input"]),
])
def test_bad_inputs_give_one_line_and_exit_2(tmp_path, style, capsys, argv, needles):
    (tmp_path / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    (tmp_path / "empty").mkdir()
    (tmp_path / "mixed").mkdir()
    write_image(tmp_path / "mixed" / "a.png", 40, 56, 0)
    write_image(tmp_path / "mixed" / "b.png", 40, 48, 1)
    folder = frame_folder(tmp_path / "frames", 2)
    values = dict(corrupt=tmp_path / "corrupt.mp4", empty=tmp_path / "empty", mixed=tmp_path / "mixed",
                  folder=folder, style=style, tmp=tmp_path,
                  clip=clip(tmp_path, 2) if "{clip}" in argv else None)
    argv = [a.format(**values) for a in argv]
    default_out = [] if "-o" in argv else ["-o", str(tmp_path / "o.mp4")]
    code, err = run(capsys, *default_out, *argv)
    assert_one_line_error(code, err, *[n.format(**values) for n in needles])
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "o.mp4.frames").exists()


def test_without_pyav_one_line_naming_the_extra(tmp_path, style):
    folder = frame_folder(tmp_path / "in", 1)
    code = ("import sys; sys.modules['av'] = None; from nst_keras.cli.video import main; "
            f"sys.exit(main([{folder!r}, {style!r}, '-o', {str(tmp_path / 'o.mp4')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("nst-video: error:") and "PyAV" in lines[0]
    assert "pip install 'nst_keras[video]'" in lines[0]


def test_interrupted_video_run_keeps_frames_and_resumes(tmp_path, style, capsys, monkeypatch):
    src = clip(tmp_path, 3, 12)
    out = tmp_path / "out.mp4"
    work = tmp_path / "out.mp4.frames"
    # The bar gets update(0) for the (no) finished frames, then update(1) per frame: Ctrl-C after frame 2.
    with monkeypatch.context() as m:
        m.setattr(cli, "progress_bar", interrupting_bar(2))
        code, err = run(capsys, src, style, "-o", out)
    assert code == 130 and "2 of 3 frames finished" in err, err
    assert io.open_frames(out).count == 2  # the partial video
    assert png_names(work) == [io.frame_name(1), io.frame_name(2)]

    # Other options on the unfinished work folder: refused, naming the option group that differs.
    code, err = run(capsys, src, style, "-o", out, "--temporal-weight", "50")
    assert_one_line_error(code, err, "holds a run with other video")
    code, err = run(capsys, src, style, "-o", out, "--seed", "3")
    assert_one_line_error(code, err, "holds a run with other config")

    code, err = run(capsys, src, style, "-o", out, quiet=False)
    assert code == 0, err
    assert "resuming after frame 2 of 3" in err and "1 stylised in this run" in err
    result = io.open_frames(out)
    assert result.count == 3 and result.fps == 12
    assert not work.exists()
    summary = json.loads((tmp_path / "out.json").read_text())
    # Every frame is reported, the two from the interrupted run included.
    assert [r["frame"] for r in summary["frame_records"]] == [1, 2, 3]
    assert [r["start"] for r in summary["frame_records"]] == ["content", "warped", "warped"]


def test_interrupted_folder_run_does_not_remake_finished_frames(tmp_path, style, capsys, monkeypatch):
    src = frame_folder(tmp_path / "in", 3)
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        m.setattr(cli, "progress_bar", interrupting_bar(2))
        code, err = run(capsys, src, style, "-o", out)
    assert code == 130 and "2 of 3 frames finished" in err, err
    kept = {n: ((out / n).stat().st_mtime_ns, (out / n).read_bytes()) for n in png_names(out)}
    assert sorted(kept) == [io.frame_name(1), io.frame_name(2)]

    code, err = run(capsys, src, style, "-o", out, quiet=False)
    assert code == 0 and "resuming after frame 2 of 3" in err, err
    assert png_names(out) == [io.frame_name(i) for i in (1, 2, 3)]
    for name, before in kept.items():
        assert ((out / name).stat().st_mtime_ns, (out / name).read_bytes()) == before
    records = json.loads((out / "nst-video.json").read_text())["frame_records"]
    assert [r["frame"] for r in records] == [1, 2, 3] and records[2]["start"] == "warped"

    # A finished folder: a re-run does nothing.
    code, err = run(capsys, src, style, "-o", out, quiet=False)
    assert code == 0 and "all 3 frames are finished already" in err, err


def test_folder_output_with_unrelated_pngs_is_refused(tmp_path, style, capsys):
    src = frame_folder(tmp_path / "in", 2)
    (tmp_path / "holiday").mkdir()
    write_image(tmp_path / "holiday" / "beach.png")
    code, err = run(capsys, src, style, "-o", tmp_path / "holiday")
    assert_one_line_error(code, err, "not from an nst-video run")
    assert png_names(tmp_path / "holiday") == ["beach.png"]


def test_original_colors_luminance_keeps_the_content_colours(tmp_path, style, capsys):
    src = frame_folder(tmp_path / "in", 2)
    out = tmp_path / "out"
    code, err = run(capsys, src, style, "-o", out, "--original-colors", "luminance")
    assert code == 0, err
    records = json.loads((out / "nst-video.json").read_text())["frame_records"]
    assert [r["start"] for r in records] == ["content", "warped"]  # frame 2 starts from frame 1's grey result
    for i, frame in enumerate(pan(2)[0]):
        result = load_image(out / io.frame_name(i + 1))
        content = resize_to(frame, result.shape[:2])
        chroma = np.abs(color.rgb_to_yiq(result)[..., 1:] - color.rgb_to_yiq(content)[..., 1:]).mean()
        assert chroma < 0.02, (i, chroma)
        assert np.abs(color.luminance(result) - color.luminance(content)).mean() > 0.005  # stylised at all


def test_color_match_cov_folder_in_video_out_at_fps(tmp_path, style, capsys):
    # A frame folder has no frame rate: --fps (default 25) gives the video one.
    src = frame_folder(tmp_path / "in", 2)
    out = tmp_path / "out.mp4"
    code, err = run(capsys, src, style, "-o", out, "--color-match", "cov", "--fps", "10")
    assert code == 0, err
    result = io.open_frames(out)
    assert result.count == 2 and result.fps == 10
    sidecar = json.loads((tmp_path / "out.json").read_text())
    assert sidecar["config"]["color_match"] == "cov" and sidecar["encode"]["audio"] == "none"
