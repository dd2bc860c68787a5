"""Frames in and out: a video file (through PyAV) or a folder of images in; numbered PNG frames
out (video/encode.py makes them a video, re-exported here as encode_video). Frames are float32
[H, W, 3] RGB in [0, 1].

PyAV is imported inside the functions that need it, so importing this module never fails without
it; `require_video_packages` turns a missing PyAV or OpenCV into one line for the user.
"""
import os
import re
from fractions import Fraction

import numpy as np
from PIL import Image

from ..errors import UserError
from ..image import check_image, load_image, save_png
from .encode import VIDEO_EXTENSIONS, _av_message, encode_video  # noqa: F401  (encode_video re-exported)

FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

_ACCEPTED_INPUT = (f"a video file (.mp4, .mov, .mkv, .webm, .avi, .gif, ... anything FFmpeg decodes) "
                   f"or a folder of {'/'.join(FRAME_EXTENSIONS)} frames")
_ACCEPTED_OUTPUT = (f"a video file ({', '.join(VIDEO_EXTENSIONS)}) or a directory "
                    "(numbered PNG frames; no extension)")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def require_video_packages(prog="nst-video"):
    """Raise UserError in one line when PyAV (`av`) or OpenCV (`cv2`) cannot be imported."""
    missing = []
    for module, package in (("av", "PyAV"), ("cv2", "OpenCV")):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"{package} ({module})")
    if missing:
        raise UserError(f"{prog} needs PyAV and OpenCV, and {' and '.join(missing)} cannot be imported; "
                        "accepted: install them with pip install 'nst_keras[video]'")


def _natural_key(name):
    """Sort key under which frame2 comes before frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


class FrameSource:
    """The selected frames of a video file or an image folder; made by `open_frames`.

    Attributes:
        path: the input.
        kind: 'video' or 'folder'.
        fps: the input's frame rate (fractions.Fraction), None for folders.
        count: the number of selected frames.
        shape: (h, w) of every frame.
        indices: the selected source frame indices (0-based).
        names: for folders the selected file names, for videos None.
        has_audio: whether the input has an audio stream.

    Iterating yields the selected frames in order as float32 [h, w, 3] arrays in [0, 1], decoded
    one at a time.
    """

    def __init__(self, path, kind, fps, shape, indices, names=None, has_audio=False, times=None,
                 total=None):
        self.path = path
        self.kind = kind
        self.fps = fps
        self.shape = shape
        self.indices = indices
        self.count = len(indices)
        self.names = names
        self.has_audio = has_audio
        self.total = total  # frames in the whole input, before selection
        self._times = times  # presentation time (seconds) of every source frame; videos only

    def __len__(self):
        return self.count

    def __repr__(self):
        return (f"FrameSource({self.path!r}, kind={self.kind!r}, count={self.count}, shape={self.shape}, "
                f"fps={self.fps}, has_audio={self.has_audio})")

    def time_of(self, i):
        """Seconds, on the source's clock, at which selected frame i is shown (folders: None).
        This is the clock of `encode_video`'s audio_start and audio_end."""
        if self._times is None:
            return None
        return self._times[self.indices[i]]

    def audio_span(self):
        """(start, end) seconds of the selected frames on the source's clock, for encode_video's
        audio_start and audio_end: from the first selected frame to the end of the last one
        (folders: None). With every > 1 the output video is shorter than this span."""
        if self._times is None:
            return None
        last = self.indices[-1]
        end = self._times[last + 1] if last + 1 < len(self._times) else self._times[last] + float(1 / self.fps)
        return self.time_of(0), end

    def __iter__(self):
        if self.kind == "folder":
            for name in self.names:
                yield self._load(name)
        else:
            yield from self._decode(self.indices)

    def frame(self, i):
        """Selected frame i (random access; for a video this decodes from the start)."""
        if not -self.count <= i < self.count:
            raise IndexError(f"frame {i} out of range for {self.count} frames")
        i %= self.count
        if self.kind == "folder":
            return self._load(self.names[i])
        return next(iter(self._decode([self.indices[i]])))

    def _load(self, name):
        image = load_image(os.path.join(self.path, name), role="frame")
        if image.shape[:2] != tuple(self.shape):
            raise UserError(f"frame '{os.path.join(self.path, name)}' is {image.shape[1]}x{image.shape[0]} "
                            f"but the first frame is {self.shape[1]}x{self.shape[0]}; accepted: frames of one size")
        return image

    def _decode(self, indices):
        import av

        wanted = iter(indices)
        target = next(wanted, None)
        k = -1
        with av.open(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            try:
                for k, frame in enumerate(container.decode(stream)):
                    if k == target:
                        yield _frame_to_array(frame)
                        target = next(wanted, None)
                        if target is None:
                            return
            except av.FFmpegError as exc:
                raise UserError(f"video '{self.path}' cannot be decoded after frame {k + 1} ({_av_message(exc)}); "
                                f"accepted: {_ACCEPTED_INPUT}") from None
        if target is not None:
            raise UserError(f"video '{self.path}' ended after {k + 1} decodable frames, expected {self.total} "
                            f"(truncated or corrupt?); accepted: {_ACCEPTED_INPUT}")


def _frame_to_array(frame):
    """A decoded PyAV frame as float32 [H, W, 3] RGB in [0, 1], turned as its display matrix says."""
    kwargs = {}
    if int(getattr(frame, "color_range", 0) or 0):
        kwargs["src_color_range"] = frame.color_range
    try:
        rgb = frame.to_ndarray(format="rgb24", **kwargs)
    except (TypeError, ValueError):
        rgb = frame.to_ndarray(format="rgb24")
    rotation = int(round((getattr(frame, "rotation", 0) or 0) / 90.0)) % 4
    if rotation:
        rgb = np.rot90(rgb, k=rotation)  # the display matrix turns the picture counterclockwise
    return np.ascontiguousarray(rgb, dtype=np.float32) / 255.0


def _check_selection(path, total, start, frames, every):
    """Selected source indices; UserError for a bad start/frames/every."""
    for name, value in (("start", start), ("every", every)) + ((("frames", frames),) if frames is not None else ()):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise UserError(f"{name} must be a whole number; accepted: an integer. Received: {name}={value!r}")
    if start < 0:
        raise UserError(f"start {start} is negative; accepted: 0 to {total - 1} (the first frame is 0)")
    if start >= total:
        raise UserError(f"start {start} is past the last frame of '{path}', which has {total} frames; "
                        f"accepted: 0 to {total - 1} (the first frame is 0)")
    if frames is not None and frames < 1:
        raise UserError(f"frames {frames} selects nothing; accepted: 1 or more (or all frames when not given)")
    if every < 1:
        raise UserError(f"every {every} is not a step; accepted: 1 (every frame) or more")
    indices = list(range(int(start), total, int(every)))
    return indices[:int(frames)] if frames is not None else indices


def open_frames(path, start=0, frames=None, every=1):
    """The frames of a video file or image folder, selected as indices start, start+every, ...
    (at most `frames` of them). Everything is checked here, before any frame is decoded in full.

    Raises:
        UserError: the path is missing; a folder without image frames, with frames of different
            sizes or with an unreadable image; a video PyAV cannot open, without a video stream,
            truncated or decoding no frame; start, frames or every out of range.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f"input '{path}' does not exist; accepted: {_ACCEPTED_INPUT}")
    if os.path.isdir(path):
        return _open_folder(path, start, frames, every)
    if os.path.splitext(path)[1].lower() in FRAME_EXTENSIONS:
        raise UserError(f"input '{path}' is a single image, not a video; accepted: {_ACCEPTED_INPUT} "
                        "(put the image in a folder, or use the image command)")
    return _open_video(path, start, frames, every)


def _open_folder(path, start, frames, every):
    names = sorted((name for name in os.listdir(path)
                    if not name.startswith(".") and os.path.splitext(name)[1].lower() in FRAME_EXTENSIONS
                    and os.path.isfile(os.path.join(path, name))), key=_natural_key)
    if not names:
        raise UserError(f"folder '{path}' has no image frames; accepted: {_ACCEPTED_INPUT}")
    indices = _check_selection(path, len(names), start, frames, every)
    selected = [names[i] for i in indices]
    shape = None
    for name in selected:
        file = os.path.join(path, name)
        size = _image_size(file)
        if shape is None:
            shape, first = size, name
        elif size != shape:
            raise UserError(f"frame '{file}' is {size[1]}x{size[0]} but '{first}' is {shape[1]}x{shape[0]}; "
                            "accepted: frames of one size")
    return FrameSource(path, "folder", None, shape, indices, names=selected, total=len(names))


def _image_size(file):
    """(h, w) of an image file as load_image will return it (EXIF rotation applied), reading the
    header (and for PNGs checking every chunk); UserError when it is not a readable image."""
    try:
        with Image.open(file) as img:
            w, h = img.size
            if img.format == "PNG":
                img.verify()
            elif img.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientations that swap the axes
                w, h = h, w
    except Exception as exc:  # PIL raises many kinds for broken files
        raise UserError(f"frame '{file}' is not a readable image ({exc}); accepted: {_ACCEPTED_INPUT}") from None
    return h, w


def _frame_rate(stream, count, duration):
    """The stream's frame rate as a Fraction: the nominal rate when the average agrees with it."""
    average, guessed = stream.average_rate, stream.guessed_rate
    if guessed and (not average or abs(float(average) / float(guessed) - 1) < 0.01):
        return Fraction(guessed)
    if average:
        return Fraction(average).limit_denominator(100000)
    if duration and duration > 0 and count > 1:
        return Fraction(count / duration).limit_denominator(1001)
    return Fraction(25)


def _open_video(path, start, frames, every):
    import av

    def bad(reason):
        return UserError(f"video '{path}' {reason}; accepted: {_ACCEPTED_INPUT}")

    try:
        container = av.open(path)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise bad(f"cannot be opened ({_av_message(exc)})") from None
    with container:
        if not container.streams.video:
            raise bad("has no video stream")
        stream = container.streams.video[0]
        has_audio = bool(container.streams.audio)
        listed = stream.frames  # from the container's index; 0 when it has none
        pts = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    continue
                if packet.is_corrupt:
                    raise bad(f"is truncated or corrupt (frame {len(pts) + 1} is incomplete)")
                pts.append(packet.pts if packet.pts is not None else packet.dts)
        except av.FFmpegError as exc:
            raise bad(f"cannot be read after frame {len(pts)} ({_av_message(exc)}); truncated or corrupt?") from None
        if not pts:
            raise bad("has no video frames")
        if listed and len(pts) < listed:
            raise bad(f"is truncated: its index lists {listed} frames but only {len(pts)} can be read")
        time_base = stream.time_base or Fraction(1, 1000)
        duration = float(stream.duration * time_base) if stream.duration else None
        fps = _frame_rate(stream, len(pts), duration)
        if None in pts:  # no timestamps: frames at the nominal rate
            times = [float(i / fps) for i in range(len(pts))]
        else:
            times = [float(p * time_base) for p in sorted(pts)]
    indices = _check_selection(path, len(pts), start, frames, every)
    source = FrameSource(path, "video", fps, None, indices, has_audio=has_audio, times=times, total=len(pts))
    try:  # decodes one frame: proves the stream decodes and gives the displayed size
        first = next(iter(source._decode([0])))
    except StopIteration:
        raise bad("decodes no frame") from None
    except UserError:
        raise bad("decodes no frame (corrupt?)") from None
    source.shape = tuple(first.shape[:2])
    return source


def check_output(path, input_path):
    """'video' for an output with a video extension (in an existing, writable directory), 'folder'
    for an existing directory or a path without extension; UserError for anything else and for an
    output that is the input."""
    path, input_path = os.fspath(path), os.fspath(input_path)
    if os.path.realpath(path) == os.path.realpath(input_path):
        raise UserError(f"output '{path}' is the input; accepted: {_ACCEPTED_OUTPUT} other than the input")
    if os.path.isdir(path):
        return "folder"
    ext = os.path.splitext(path)[1].lower()
    if ext in VIDEO_EXTENSIONS:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise UserError(f"output '{path}': directory '{directory}' does not exist; accepted: {_ACCEPTED_OUTPUT} "
                            "in an existing directory")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise UserError(f"output '{path}': directory '{directory}' is not writable; accepted: {_ACCEPTED_OUTPUT} "
                            "in a writable directory")
        return "video"
    if ext:
        raise UserError(f"output '{path}' has the unsupported extension '{ext}'; accepted: {_ACCEPTED_OUTPUT}")
    if os.path.exists(path):
        raise UserError(f"output '{path}' is an existing file, not a directory; accepted: {_ACCEPTED_OUTPUT}")
    return "folder"


def frame_name(i):
    """The file name of frame number i, counted from 1: frame_name(1) == 'frame_000001.png'."""
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 1:
        raise ValueError(f"frame numbers start at 1; received {i!r}")
    return f"frame_{int(i):06d}.png"


def write_frame(directory, i, image, metadata=None):
    """Write frame number i (from 1) into `directory` (made if needed) as an atomic PNG; returns
    its path. `metadata` (a dict) goes into the PNG as with image.save_png."""
    path = os.path.join(os.fspath(directory), frame_name(i))
    os.makedirs(os.fspath(directory), exist_ok=True)
    save_png(path, check_image(image, role=f"frame {i}"), metadata)
    return path


def _png_complete(path):
    """Whether `path` is a whole PNG file: the signature at the start and the IEND chunk at the end."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != _PNG_SIGNATURE:
                return False
            f.seek(0, os.SEEK_END)
            if f.tell() < 8 + 25 + 12:  # signature, IHDR, IEND
                return False
            f.seek(-len(_PNG_END), os.SEEK_END)
            return f.read() == _PNG_END
    except OSError:
        return False


def finished_frames(directory, count):
    """How many frames from the first (frame_000001.png, ...) exist in `directory` as complete
    PNGs, up to `count`: a missing or truncated frame ends the run."""
    directory = os.fspath(directory)
    for i in range(1, int(count) + 1):
        if not _png_complete(os.path.join(directory, frame_name(i))):
            return i - 1
    return int(count)
