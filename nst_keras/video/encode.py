"""encode_video(): numbered PNG frames to a video file, atomically, with the input's audio copied
or re-encoded. PyAV is imported inside the functions (video/io.py reads frames).
"""
import os
from fractions import Fraction

import numpy as np
from PIL import Image

from ..errors import UserError
from ..image import atomic_write

# Output video containers: extension -> (FFmpeg muxer, video encoder). GIF is written with Pillow.
_CONTAINERS = {
    ".mp4": ("mp4", "libx264"),
    ".mov": ("mov", "libx264"),
    ".mkv": ("matroska", "libx264"),
    ".webm": ("webm", "libvpx-vp9"),
    ".gif": ("gif", "gif"),
}

# Audio codecs each container takes as a stream copy; anything else is re-encoded.
_COPYABLE_AUDIO = {
    ".mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
    ".mov": {"aac", "mp3", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_f32le"},
    ".mkv": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "vorbis", "flac", "pcm_s16le", "pcm_s24le",
             "pcm_f32le", "dts", "truehd", "mp2"},
    ".webm": {"opus", "vorbis"},
}
_AUDIO_ENCODER = {".mp4": "aac", ".mov": "aac", ".mkv": "aac", ".webm": "libopus"}
VIDEO_EXTENSIONS = tuple(_CONTAINERS)


def _av_message(exc):
    """An FFmpeg error as a short phrase, without the path PyAV appends."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip() or type(exc).__name__



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
