"""nst_keras.video.io: frames in from video files and image folders, frames and videos out."""
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

import av  # noqa: E402  (installed by the test extra: fail, never skip, without it)

from nst_keras.errors import UserError  # noqa: E402
from nst_keras.video import io  # noqa: E402

H, W = 24, 32


def level(i):
    """The green level that encodes frame index i (steps of 20 survive H.264 easily)."""
    return (10 + 20 * i) % 256


def frame_image(i, h=H, w=W):
    """uint8 [h, w, 3]: a red gradient moving right by 2 px a frame, green = level(i), blue flat."""
    xx = (np.arange(w)[None, :] + 2 * i) % w
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[..., 0] = (xx * 255 // max(w - 1, 1)).astype(np.uint8)
    rgb[..., 1] = level(i)
    rgb[..., 2] = 128
    return rgb


def index_of(frame):
    """The frame index encoded in a decoded frame's green level."""
    return int(round((float(frame[..., 1].mean()) * 255 - 10) / 20))


def make_clip(path, n=10, fps=Fraction(24), audio=False, h=H, w=W, codec="libx264", faststart=False):
    """A tiny clip made with PyAV; with audio, a 440 Hz AAC sine as long as the video."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        video = out.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=44100, layout="mono")
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(frame_image(i, h, w), format="rgb24")
            frame.pts, frame.time_base = i, 1 / fps
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            rate = 44100
            total = int(rate * n / fps)
            wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(total) / rate)).astype(np.float32)
            for k in range(0, total, 1024):
                chunk = av.AudioFrame.from_ndarray(wave[None, k:k + 1024], format="flt", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = rate, k, Fraction(1, rate)
                for packet in sound.encode(chunk):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
    return str(path)


def make_frames(directory, n, h=H, w=W):
    """Numbered PNG frames written with write_frame; returns their paths."""
    return [io.write_frame(directory, i + 1, frame_image(i, h, w) / 255.0) for i in range(n)]


def audio_seconds(path):
    """Seconds of decoded audio in the file's first audio stream (None without one)."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        return sum(frame.samples / frame.sample_rate for frame in container.decode(stream))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return {
        "24": make_clip(root / "c24.mp4", n=10, fps=Fraction(24)),
        "ntsc": make_clip(root / "ntsc.mkv", n=12, fps=Fraction(30000, 1001)),
        "audio": make_clip(root / "audio.mp4", n=12, fps=Fraction(24), audio=True),
    }


# ---- frames in ------------------------------------------------------------------------------------

def test_folder_round_trip_and_natural_order(tmp_path):
    paths = make_frames(tmp_path / "out", 11)
    assert os.path.basename(paths[0]) == "frame_000001.png" == io.frame_name(1)
    source = io.open_frames(tmp_path / "out")
    assert (source.kind, source.count, source.shape, source.fps, source.has_audio) == ("folder", 11, (H, W), None, False)
    assert source.time_of(0) is None
    frames = list(source)
    for i, frame in enumerate(frames):
        assert frame.dtype == np.float32 and frame.shape == (H, W, 3)
        np.testing.assert_allclose(frame, frame_image(i) / 255.0, atol=0.5 / 255 + 1e-6)

    natural = tmp_path / "natural"
    natural.mkdir()
    for number, i in ((10, 2), (2, 1), (1, 0)):  # written out of order; lexically frame10 < frame2
        Image.fromarray(frame_image(i)).save(natural / f"frame{number}.png")
    (natural / "notes.txt").write_text("not a frame")
    source = io.open_frames(natural)
    assert source.names == ["frame1.png", "frame2.png", "frame10.png"]
    assert [index_of(f) for f in source] == [0, 1, 2]


def test_video_in_count_shape_and_exact_fps(clips):
    source = io.open_frames(clips["24"])
    assert (source.kind, source.count, source.shape, source.names) == ("video", 10, (H, W), None)
    assert source.fps == Fraction(24) and isinstance(source.fps, Fraction)
    assert source.has_audio is False
    frames = list(source)
    assert len(frames) == 10 and frames[0].dtype == np.float32 and frames[0].shape == (H, W, 3)
    assert [index_of(f) for f in frames] == list(range(10))

    ntsc = io.open_frames(clips["ntsc"])
    assert ntsc.fps == Fraction(30000, 1001) and ntsc.count == 12
    assert ntsc.time_of(3) == pytest.approx(3 * 1001 / 30000, abs=1e-3)
    assert io.open_frames(clips["audio"]).has_audio is True


def test_selection_picks_the_right_frames(clips, tmp_path):
    source = io.open_frames(clips["24"], start=2, frames=3, every=3)
    assert source.indices == [2, 5, 8] and source.count == 3
    assert [index_of(f) for f in source] == [2, 5, 8]
    assert source.time_of(1) == pytest.approx(5 / 24, abs=1e-3)
    assert source.audio_span() == pytest.approx((2 / 24, 9 / 24), abs=1e-3)
    assert index_of(source.frame(-1)) == 8
    tail = io.open_frames(clips["24"], start=7, every=2)  # runs out before `frames` would stop it
    assert tail.indices == [7, 9] and [index_of(f) for f in tail] == [7, 9]

    make_frames(tmp_path / "f", 10)
    folder = io.open_frames(tmp_path / "f", start=1, frames=2, every=4)
    assert folder.indices == [1, 5] and folder.names == ["frame_000002.png", "frame_000006.png"]
    assert [index_of(f) for f in folder] == [1, 5]


# ---- video out ------------------------------------------------------------------------------------

@pytest.mark.parametrize("ext,fps", [(".mp4", Fraction(30000, 1001)), (".webm", Fraction(24)),
                                     (".mkv", Fraction(25)), (".mov", Fraction(30000, 1001))])
def test_encode_video_keeps_frames_and_fps(tmp_path, ext, fps):
    paths = make_frames(tmp_path / "frames", 8)
    output = tmp_path / f"out{ext}"
    info = io.encode_video(paths, output, fps)
    assert info["frames"] == 8 and info["fps"] == str(fps) and info["audio"] == "none"
    back = io.open_frames(output)
    assert back.count == 8 and back.fps == fps and back.shape == (H, W) and not back.has_audio
    assert [index_of(f) for f in back] == list(range(8))
    assert sorted(os.listdir(tmp_path)) == ["frames", f"out{ext}"]  # no temporary file left


def test_gif_output(tmp_path):
    paths = make_frames(tmp_path / "frames", 6)
    io.encode_video(paths, tmp_path / "out.gif", Fraction(10))
    back = io.open_frames(tmp_path / "out.gif")
    assert back.count == 6 and back.fps == 10
    assert [index_of(f) for f in back] == list(range(6))


def test_audio_is_copied_trimmed_or_absent(clips, tmp_path):
    source = io.open_frames(clips["audio"], start=3, frames=6)
    frames = make_frames(tmp_path / "frames", source.count)
    start, end = source.audio_span()
    assert (start, end) == pytest.approx((3 / 24, 9 / 24), abs=1e-3)

    info = io.encode_video(frames, tmp_path / "a.mp4", source.fps, audio_from=source.path,
                           audio_start=start, audio_end=end)
    assert info["audio"] == "copied"
    assert io.open_frames(tmp_path / "a.mp4").has_audio
    assert audio_seconds(tmp_path / "a.mp4") == pytest.approx(end - start, abs=0.05)

    info = io.encode_video(frames, tmp_path / "a.webm", source.fps, audio_from=source.path,
                           audio_start=start, audio_end=end)
    assert info["audio"] == "re-encoded"  # AAC does not go into WebM: Opus
    with av.open(str(tmp_path / "a.webm")) as container:
        assert container.streams.audio[0].codec_context.name == "opus"
    assert audio_seconds(tmp_path / "a.webm") == pytest.approx(end - start, abs=0.05)

    info = io.encode_video(frames, tmp_path / "n.mp4", source.fps, audio_from=clips["24"])
    assert info["audio"] == "none" and not io.open_frames(tmp_path / "n.mp4").has_audio
    info = io.encode_video(frames, tmp_path / "n2.mp4", source.fps)
    assert info["audio"] == "none" and audio_seconds(tmp_path / "n2.mp4") is None


def test_odd_size_is_padded_by_edge_replication(tmp_path):
    paths = make_frames(tmp_path / "frames", 5, h=25, w=33)
    info = io.encode_video(paths, tmp_path / "odd.mp4", Fraction(24), crf=0)
    assert info["size"] == (26, 34)
    back = io.open_frames(tmp_path / "odd.mp4")
    assert back.count == 5 and back.shape == (26, 34)
    first = next(iter(back))
    np.testing.assert_allclose(first[25], first[24], atol=6 / 255)  # the added row repeats the edge


def test_failed_encode_leaves_no_partial_file_and_keeps_the_old_output(tmp_path):
    paths = make_frames(tmp_path / "frames", 4)
    broken = tmp_path / "frames" / "frame_000005.png"
    broken.write_bytes(open(paths[0], "rb").read()[:60])  # a truncated PNG
    output = tmp_path / "out.mp4"
    output.write_bytes(b"the previous video")
    with pytest.raises(UserError, match="frame_000005.png"):
        io.encode_video(paths + [str(broken)], output, Fraction(24))
    assert output.read_bytes() == b"the previous video"
    assert sorted(os.listdir(tmp_path)) == ["frames", "out.mp4"]

    with pytest.raises(UserError, match="frame_000005.png"):
        io.encode_video(paths + [str(broken)], tmp_path / "new.webm", Fraction(24))
    assert sorted(os.listdir(tmp_path)) == ["frames", "out.mp4"]


def test_finished_frames_stops_at_a_missing_or_truncated_frame(tmp_path):
    directory = tmp_path / "out"
    assert io.finished_frames(directory, 5) == 0
    paths = make_frames(directory, 5)
    assert io.finished_frames(directory, 5) == 5
    assert io.finished_frames(directory, 3) == 3
    assert io.finished_frames(directory, 7) == 5
    data = open(paths[3], "rb").read()
    with open(paths[3], "wb") as f:
        f.write(data[:-20])
    assert io.finished_frames(directory, 5) == 3
    os.remove(paths[1])
    assert io.finished_frames(directory, 5) == 1


def test_frame_names_and_write_frame(tmp_path):
    assert io.frame_name(12) == "frame_000012.png"
    with pytest.raises(ValueError):
        io.frame_name(0)
    path = io.write_frame(tmp_path / "a" / "b", 3, np.full((4, 5, 3), 0.5, np.float32), metadata={"k": 1})
    assert path.endswith(os.path.join("a", "b", "frame_000003.png")) and os.path.isfile(path)
    assert os.listdir(tmp_path / "a" / "b") == ["frame_000003.png"]
    with pytest.raises(UserError):
        io.write_frame(tmp_path, 1, np.zeros((4, 5), np.float32))


# ---- one-line errors ------------------------------------------------------------------------------

def assert_one_line(excinfo, *names):
    message = str(excinfo.value)
    assert "\n" not in message and "accepted" in message, message
    for name in names:
        assert str(name) in message, message


def test_bad_video_files_are_user_errors(tmp_path, clips):
    cases = []
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).bytes(4000))
    cases.append(noise)
    whole = open(make_clip(tmp_path / "whole.mp4", n=10), "rb").read()  # index at the end
    (tmp_path / "cut.mp4").write_bytes(whole[:len(whole) // 2])
    cases.append(tmp_path / "cut.mp4")
    fast = open(make_clip(tmp_path / "fast.mp4", n=10, faststart=True), "rb").read()  # index first
    (tmp_path / "cut_fast.mp4").write_bytes(fast[:len(fast) * 3 // 4])
    cases.append(tmp_path / "cut_fast.mp4")
    (tmp_path / "empty.mov").write_bytes(b"")
    cases.append(tmp_path / "empty.mov")
    for path in cases:
        with pytest.raises(UserError) as excinfo:
            io.open_frames(path)
        assert_one_line(excinfo, path)

    sound = tmp_path / "sound.m4a"
    with av.open(str(sound), "w") as out:
        stream = out.add_stream("aac", rate=8000, layout="mono")
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        chunk.sample_rate, chunk.pts = 8000, 0
        for packet in list(stream.encode(chunk)) + list(stream.encode()):
            out.mux(packet)
    with pytest.raises(UserError, match="no video stream") as excinfo:
        io.open_frames(sound)
    assert_one_line(excinfo, sound)


def test_bad_folders_are_user_errors(tmp_path):
    with pytest.raises(UserError) as excinfo:
        io.open_frames(tmp_path / "missing")
    assert_one_line(excinfo, tmp_path / "missing", "does not exist")

    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="has no image frames") as excinfo:
        io.open_frames(tmp_path / "empty")
    assert_one_line(excinfo, tmp_path / "empty", ".png")

    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("x")
    (tmp_path / "texts" / "b.json").write_text("{}")
    with pytest.raises(UserError, match="has no image frames") as excinfo:
        io.open_frames(tmp_path / "texts")
    assert_one_line(excinfo, tmp_path / "texts")

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name, (h, w) in (("f1.png", (H, W)), ("f2.png", (H, W)), ("f10.png", (H + 2, W))):
        Image.fromarray(frame_image(0, h, w)).save(mixed / name)
    with pytest.raises(UserError) as excinfo:
        io.open_frames(mixed)
    assert_one_line(excinfo, "f10.png", f"{W}x{H + 2}", f"{W}x{H}")

    broken = tmp_path / "broken"
    broken.mkdir()
    Image.fromarray(frame_image(0)).save(broken / "f1.png")
    (broken / "f2.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(UserError) as excinfo:
        io.open_frames(broken)
    assert_one_line(excinfo, "f2.png")


@pytest.mark.parametrize("kwargs,names", [
    ({"start": 10}, ["start 10", "10 frames"]),
    ({"start": -1}, ["start -1"]),
    ({"frames": 0}, ["frames 0"]),
    ({"every": 0}, ["every 0"]),
    ({"every": 1.5}, ["every=1.5"]),
])
def test_bad_selection_is_a_user_error(clips, kwargs, names):
    with pytest.raises(UserError) as excinfo:
        io.open_frames(clips["24"], **kwargs)
    assert_one_line(excinfo, *names)


def test_check_output(tmp_path, clips):
    assert io.check_output(tmp_path / "out.mp4", clips["24"]) == "video"
    assert io.check_output(tmp_path / "out.WEBM", clips["24"]) == "video"
    assert io.check_output(tmp_path / "frames_out", clips["24"]) == "folder"
    assert io.check_output(tmp_path, clips["24"]) == "folder"
    with pytest.raises(UserError) as excinfo:
        io.check_output(tmp_path / "out.avi2", clips["24"])
    assert_one_line(excinfo, ".avi2", ".mp4", ".webm")
    with pytest.raises(UserError) as excinfo:
        io.check_output(clips["24"], clips["24"])
    assert_one_line(excinfo, clips["24"], "is the input")
    with pytest.raises(UserError) as excinfo:
        io.check_output(tmp_path / "nowhere" / "out.mp4", clips["24"])
    assert_one_line(excinfo, "nowhere", "does not exist")


def test_require_video_packages_and_lazy_import(monkeypatch):
    io.require_video_packages()
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    with pytest.raises(UserError) as excinfo:
        io.require_video_packages()
    assert_one_line(excinfo, "OpenCV", "pip install 'nst_keras[video]'")
    code = ("import sys; sys.modules['av'] = None; import nst_keras.video.io as m; "
            "print(sorted(k for k in ('av', 'tensorflow') if sys.modules.get(k)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.stdout.strip() == "[]"
