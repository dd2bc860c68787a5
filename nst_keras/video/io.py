"""Frames in and out: a video file (through PyAV) or a folder of images in; a folder of numbered
PNGs or a video file (with the input's audio) out. Frames are float32 [H, W, 3] RGB in [0, 1].

PyAV is imported inside the functions that need it, so importing this module never fails without
it; `require_video_packages` turns a missing PyAV or OpenCV into one line for the user.
"""
import os
import re
from fractions import Fraction

import numpy as np
from PIL import Image

from ..errors import UserError
from ..image import atomic_write, check_image, load_image, save_png

# Output video containers: extension -> (FFmpeg muxer, video encoder). GIF is written with Pillow.
_CONTAINERS = {
    ".mp4": ("mp4", "libx264"),
    ".mov": ("mov", "libx264"),
    ".mkv": ("matroska", "libx264"),
    ".webm": ("webm", "libvpx-vp9"),
    ".gif": ("gif", "gif"),
}
VIDEO_EXTENSIONS = tuple(_CONTAINERS)
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Audio codecs each container takes as a stream copy; anything else is re-encoded.
_COPYABLE_AUDIO = {
    ".mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
    ".mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_f32le"},
    ".mkv": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "vorbis", "flac", "pcm_s16le", "pcm_s24le",
             "pcm_f32le", "dts", "truehd", "mp2"},
    ".webm": {"opus", "vorbis"},
}
_AUDIO_ENCODER = {".mp4": "aac", ".mov": "aac", ".mkv": "aac", ".webm": "libopus"}

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


def _av_message(exc):
    """An FFmpeg error as a short phrase, without the path PyAV appends."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip() or type(exc).__name__


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


def _as_fps(fps):
    """A frame rate as a positive Fraction (floats are limited to denominators up to 1001)."""
    try:
        value = Fraction(fps) if not isinstance(fps, float) else Fraction(fps).limit_denominator(1001)
    except (TypeError, ValueError, ZeroDivisionError):
        value = None
    if value is None or not 0 < value <= 1000:
        raise UserError(f"frame rate {fps!r} is not usable; accepted: a number of frames per second in (0, 1000], "
                        "like 24 or 30000/1001")
    return value


def _read_rgb(path, shape=None):
    """A PNG frame as uint8 [H, W, 3]; UserError when unreadable or not of `shape` (h, w)."""
    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"))
    except Exception as exc:  # PIL raises many kinds for broken files
        raise UserError(f"frame '{path}' cannot be read ({exc}); accepted: complete PNG frames") from None
    if shape is not None and rgb.shape[:2] != tuple(shape):
        raise UserError(f"frame '{path}' is {rgb.shape[1]}x{rgb.shape[0]} but the first frame is "
                        f"{shape[1]}x{shape[0]}; accepted: frames of one size")
    return rgb


def _pad_even(rgb):
    """Pad to an even height and width by repeating the last row / column (yuv420p needs it)."""
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return rgb


def encode_video(frame_paths, output, fps, audio_from=None, audio_start=0.0, audio_end=None, crf=18):
    """Encode image frames (PNG paths, in order) into a video file, atomically.

    The file is written under a temporary name in the output's directory and moved over `output`
    when complete; on any failure (or Ctrl-C) the temporary file is removed and an existing
    `output` is left as it was.

    Codecs: .mp4/.mov/.mkv H.264 (libx264, yuv420p, `crf`), .webm VP9 (libvpx-vp9, yuv420p, `crf`),
    .gif a palette per frame (Pillow; delays in 1/100 s, so the rate is approximate and no audio).
    yuv420p needs an even width and height: an odd size is padded by one row and/or column that
    repeats the edge (so 33x25 frames give a 34x26 video). The stream's frame rate is `fps` exactly.

    Audio: when `audio_from` is a file with an audio stream (and the output is not a GIF), its audio
    between audio_start and audio_end seconds (on its own clock, see FrameSource.time_of and
    audio_span) starts the output's audio at 0. It is copied packet by packet when the container
    takes the codec, else re-encoded (AAC for mp4/mov/mkv, Opus for webm).

    Returns:
        {'frames': n, 'fps': '30000/1001', 'size': (h, w) as encoded, 'codec': 'h264',
         'audio': 'copied' | 're-encoded' | 'none', 'output': path}.
    """
    import av

    frame_paths = [os.fspath(p) for p in frame_paths]
    output = os.fspath(output)
    ext = os.path.splitext(output)[1].lower()
    if ext not in _CONTAINERS:
        raise UserError(f"output '{output}' has the unsupported extension '{ext}'; "
                        f"accepted: a video file ({', '.join(VIDEO_EXTENSIONS)})")
    if not frame_paths:
        raise UserError(f"no frames to encode into '{output}'; accepted: one or more PNG frames")
    fps = _as_fps(fps)
    if not isinstance(crf, (int, np.integer)) or isinstance(crf, bool) or not 0 <= crf <= 51:
        raise UserError(f"crf {crf!r} is out of range; accepted: a whole number 0 (lossless) to 51 (worst); "
                        "18 looks visually lossless")
    shape = _read_rgb(frame_paths[0]).shape[:2]
    audio = None
    if audio_from is not None and ext != ".gif":
        audio = _audio_stream_info(os.fspath(audio_from))
    result = {"frames": len(frame_paths), "fps": str(fps), "output": output, "audio": "none"}

    if ext == ".gif":
        atomic_write(output, lambda tmp: _write_gif(tmp, frame_paths, shape, fps))
        result.update(codec="gif", size=tuple(shape))
        return result

    mode = None
    if audio is not None:
        mode = "copied" if audio in _COPYABLE_AUDIO[ext] else "re-encoded"

    def write(tmp):
        _write_av(tmp, ext, frame_paths, shape, fps, crf, audio_from, mode, audio_start, audio_end)

    try:
        atomic_write(output, write)
    except (av.FFmpegError, OSError, ValueError) as exc:
        if mode != "copied":
            raise
        mode = "re-encoded"  # the muxer refused the stream copy: encode the audio instead
        try:
            atomic_write(output, write)
        except (av.FFmpegError, ValueError):
            raise exc from None
    even = _pad_even(np.zeros(shape + (1,), np.uint8)).shape[:2]
    result.update(codec=_CONTAINERS[ext][1].replace("libx264", "h264").replace("libvpx-vp9", "vp9"),
                  size=tuple(even), audio=mode or "none")
    return result


def _audio_stream_info(path):
    """The codec name of the first audio stream of `path`, or None (also when it is no media file)."""
    import av

    try:
        with av.open(path) as container:
            if not container.streams.audio:
                return None
            return container.streams.audio[0].codec_context.name
    except (av.FFmpegError, OSError, ValueError):
        return None


def _write_gif(tmp, frame_paths, shape, fps):
    """An animated GIF with an adaptive palette per frame; delays rounded to 1/100 s without drift."""
    images = [Image.fromarray(_read_rgb(p, shape)).quantize(colors=256, method=Image.Quantize.MEDIANCUT)
              for p in frame_paths]
    ticks = [round(i * 100 / fps) for i in range(len(images) + 1)]
    durations = [max(2, b - a) * 10 for a, b in zip(ticks, ticks[1:])]
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=durations,
                   loop=0, optimize=False, disposal=1)


def _write_av(tmp, ext, frame_paths, shape, fps, crf, audio_from, audio_mode, audio_start, audio_end):
    """Mux the video (and audio, when audio_mode is 'copied' or 're-encoded') into `tmp`."""
    import av

    muxer, codec = _CONTAINERS[ext]
    height, width = _pad_even(np.zeros(shape + (1,), np.uint8)).shape[:2]
    container_options = {"movflags": "+faststart"} if ext in (".mp4", ".mov") else {}
    if codec == "libvpx-vp9":
        options = {"crf": str(crf), "b:v": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}
    else:
        options = {"crf": str(crf), "preset": "medium"}
    source = av.open(audio_from) if audio_mode else None
    try:
        with av.open(tmp, "w", format=muxer, options=container_options) as out:
            video = out.add_stream(codec, rate=fps, options=options)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            video.codec_context.time_base = 1 / fps
            video.time_base = 1 / fps
            audio_packets = iter(())
            if audio_mode == "copied":
                audio_packets = _copied_audio(source, out, audio_start, audio_end)
            elif audio_mode == "re-encoded":
                audio_packets = _reencoded_audio(source, out, ext, audio_start, audio_end)
            pending = [None]

            def mux_audio_until(seconds):
                """Mux the audio packets that start before `seconds` (None: all the rest)."""
                while True:
                    if pending[0] is None:
                        pending[0] = next(audio_packets, None)
                        if pending[0] is None:
                            return
                    packet = pending[0]
                    if seconds is not None and packet.pts is not None and packet.pts * packet.time_base > seconds:
                        return
                    out.mux(packet)
                    pending[0] = None

            def mux_video(packets):
                for packet in packets:
                    if packet.dts is not None:
                        mux_audio_until(packet.dts * packet.time_base)
                    out.mux(packet)

            for i, path in enumerate(frame_paths):
                frame = av.VideoFrame.from_ndarray(_pad_even(_read_rgb(path, shape)), format="rgb24")
                frame.pts, frame.time_base = i, 1 / fps
                mux_video(video.encode(frame))
            mux_video(video.encode())
            mux_audio_until(None)
    finally:
        if source is not None:
            source.close()


def _copied_audio(source, out, start, end):
    """Packets of the source's first audio stream between start and end seconds, re-timed to
    start at 0, for a stream copy into `out`."""
    stream = source.streams.audio[0]
    target = out.add_stream_from_template(stream)
    time_base = stream.time_base
    offset = round(Fraction(start).limit_denominator(10 ** 9) / time_base)
    return _trimmed_packets(source, stream, target, time_base, offset, start, end)


def _trimmed_packets(source, stream, target, time_base, offset, start, end):
    for packet in source.demux(stream):
        if packet.size == 0 or packet.pts is None:
            continue
        seconds = packet.pts * time_base
        if seconds < start - 1e-6:
            continue
        if end is not None and seconds >= end - 1e-6:
            break
        packet.pts -= offset
        if packet.dts is not None:
            packet.dts -= offset
        packet.stream = target
        packet.time_base = time_base
        yield packet


def _reencoded_audio(source, out, ext, start, end):
    """The source's first audio stream between start and end seconds, decoded and encoded (AAC or
    Opus) into a new stream of `out`, starting at 0."""
    import av

    stream = source.streams.audio[0]
    codec = _AUDIO_ENCODER[ext]
    rate = stream.codec_context.sample_rate or 48000
    if codec == "libopus":
        rate = 48000
    source_layout = stream.codec_context.layout
    layout = source_layout.name if source_layout and source_layout.nb_channels <= 2 else "stereo"
    target = out.add_stream(codec, rate=rate, layout=layout)
    encoder = target.codec_context
    resampler = av.AudioResampler(format=encoder.format, layout=encoder.layout, rate=rate,
                                  frame_size=encoder.frame_size or None)
    return _encoded_audio(source, stream, target, resampler, rate, start, end)


def _encoded_audio(source, stream, target, resampler, rate, start, end):
    samples = 0

    def encode(frames):
        nonlocal samples
        for frame in frames:
            frame.pts, frame.time_base = samples, Fraction(1, rate)
            samples += frame.samples
            yield from target.encode(frame)

    for frame in source.decode(stream):
        if frame.pts is None:
            continue
        seconds = frame.pts * frame.time_base
        if seconds < start - 1e-6:
            continue
        if end is not None and seconds >= end - 1e-6:
            break
        frame.pts = None
        yield from encode(resampler.resample(frame))
    yield from encode(resampler.resample(None))
    yield from target.encode(None)
