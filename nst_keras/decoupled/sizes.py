"""Whether a working shape leaves the method enough positions to reach its precision.

A stage constrains one channel mean per live channel (not dead on the noise reference) with
the image's pixels, but a deep layer's means are averages over few positions: with too few of
them per constrained channel, many channels are zero everywhere (no gradient) or nearly
dependent, and the stage stalls far below 60 dB. What decides it is the number of positions per
live channel, not the short side (docs/decoupled/NUMERICS.md, "Sizes"): measured on VGG16 (hed)
block5_conv1, 64 positions for 213 live channels (128x128, 0.30) reach 60 dB; 48 (128x96, 0.23)
stop at 42.6 dB, 16 (64x64) at 21.6 dB; block4_conv1 at 64x64 (64 for 486, 0.13) at 36 dB.
At 0.30 another pair's imposition stopped at 41.8 dB (BENCHMARKS.md, decoupled-shapes), so
between 0.3 and 0.5 the run goes on but says so in one line before it starts.
"""
from ..errors import UserError, announce
from ..vgg import layer_stride

MIN_POSITIONS_PER_CHANNEL = 0.3  # below: refused (every measured case stopped below 60 dB)
SAFE_POSITIONS_PER_CHANNEL = 0.5  # below: said up front (128x128, 0.30: one pair 60.4 dB, another 41.8)


def positions(shape, name):
    """Spatial positions of a layer's output for an image of shape (h, w) (VGG's 2x2 pools floor)."""
    stride = layer_stride(name)
    return (int(shape[0]) // stride) * (int(shape[1]) // stride)


def shortfall(shape, reference, layers, ratio=MIN_POSITIONS_PER_CHANNEL):
    """[(layer, positions, live channels)] for the layers with fewer than `ratio` positions per
    live channel at this shape."""
    out = []
    for name in layers:
        live = reference.mean[name].size - len(reference.dead[name])
        if live and positions(shape, name) < ratio * live:
            out.append((name, positions(shape, name), live))
    return out


def smallest_size(shape, live, max_size, ratio=MIN_POSITIONS_PER_CHANNEL):
    """The smallest long side (up to max_size) at which an image of this aspect ratio has `ratio`
    positions per live channel for every {layer: live channels}; None if there is none."""
    from ..image import size_for_long_side

    for size in range(max(shape[:2]), max_size + 1):
        at = size_for_long_side(shape, size)
        if all(positions(at, name) >= ratio * n for name, n in live.items()):
            return size
    return None


def check_positions(shape, reference, config, notify=None):
    """Refuse (UserError) a working shape below MIN_POSITIONS_PER_CHANNEL at some layer, naming the
    smallest --size that works for its aspect ratio; with config.allow_imprecise, say so in one
    line (through notify) and go on. Below SAFE_POSITIONS_PER_CHANNEL, say in one line that stages
    may stop below 60 dB. The penalty baseline promises no precision and is not checked.
    Returns the shortfall list (of the refusal threshold)."""
    if config.method == "penalty":
        return shortfall(shape, reference, config.layers)
    short = shortfall(shape, reference, config.layers)
    worst = short or shortfall(shape, reference, config.layers, SAFE_POSITIONS_PER_CHANNEL)
    if not worst:
        return short
    name, count, live = worst[-1]
    what = f"{shape[1]}x{shape[0]} px at size {config.size}: {name} has {count} positions for {live} live channels"
    safe = smallest_size(shape, {n: c for n, _, c in worst}, config.max_size, SAFE_POSITIONS_PER_CHANNEL)
    if not short:
        announce(notify, f"{what} ({count / live:.2f} per channel): stages may stop below 60 dB; "
                         + (f"--size {safe} or more gives {SAFE_POSITIONS_PER_CHANNEL}" if safe else "no --size up to "
                            f"--max-size {config.max_size} gives {SAFE_POSITIONS_PER_CHANNEL}"))
        return short
    smallest = smallest_size(shape, {n: c for n, _, c in short}, config.max_size)
    fix = (f"--size {smallest} or more for this aspect ratio" if smallest is not None
           else f"no --size up to --max-size {config.max_size} for this aspect ratio")
    what += f", below the {MIN_POSITIONS_PER_CHANNEL} per channel that the 60 dB precision needs"
    if config.allow_imprecise:
        announce(notify, f"{what}; running anyway (--allow-imprecise): expect stages below 60 dB ({fix} reaches it)")
        return short
    raise UserError(f"{what}; accepted: {fix} (or --allow-imprecise)")
