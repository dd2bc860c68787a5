"""Peak memory of a Gatys-mode run: a prediction from measurements, and a check before running.

The prediction is linear in the pixel count: a fixed base (interpreter, TensorFlow, weights)
plus bytes per pixel for the activations of the truncated VGG (forward and backward) and for
L-BFGS-B's workspace. The activation coefficient was fitted by `benchmarks/bench_gatys.py
--parts memory` (peak RSS of one evaluation in a fresh process at 256 to 2048 px, VGG16 up to
block5_conv1); other layer sets are scaled by their activation count per pixel.
"""
from ..errors import UserError
from ..image import size_for_long_side as shape_for_long_side  # re-exported for callers of this module
from ..models import MODELS, layer_channels, layer_names, layer_stride

# Fitted on the benchmark machine (see BENCHMARKS.md, section "Seconds per evaluation and peak memory").
BASE_BYTES = 0.99e9                # the fit's intercept (interpreter, TensorFlow, weights)
BYTES_PER_ACTIVATION = 7.3         # the fit's slope per float of forward activation (~2 float32 copies)
# Activation bytes relative to float32. bfloat16 activations are 2-byte floats, but TensorFlow's
# emulated bfloat16 kernels work through float32 buffers: on an "Intel(R) Xeon(R) Processor @
# 2.60GHz" without amx_bf16/avx512_bf16 the measured peak RSS of one evaluation was float32's within
# 3 % at 256, 512 and 1024 px (BENCHMARKS.md, gatys-precision). So no saving is predicted; with
# native bfloat16 it is unmeasured (expected lower, so 1.0 errs on the safe side).
ACTIVATION_BYTES_FACTOR = {"float32": 1.0, "bfloat16": 1.0}
LBFGS_MAXCOR = 10                  # L-BFGS-B's memory m (optimize.py runs with it)


def activations_per_pixel(model, layers):
    """Floats of forward activation per image pixel in `model` truncated after the deepest of `layers`."""
    order = layer_names(model)
    deepest = max((order.index(n) for n in layers), default=len(order) - 1)
    total = 3.0  # the (preprocessed) input
    for name in order[:deepest + 1]:
        total += layer_channels(name) / layer_stride(name) ** 2
    return total


# A tiled run also holds full-size images (content, canvas, blend weights, float64 copies): 96
# bytes per output pixel, measured on the 4096x2728 README example (peak 2.64 GiB against 1.64 GiB
# predicted for one 512 px tile's evaluation).
TILED_BYTES_PER_OUTPUT_PIXEL = 96


def lbfgs_bytes(pixels):
    """SciPy's L-BFGS-B workspace ((2m + 5) n float64) plus ~7 more float64 vectors of n = 3 * pixels."""
    return (2 * LBFGS_MAXCOR + 12) * 3 * pixels * 8


def predict_peak_bytes(shape, model="vgg16", layers=("block4_conv2", "block5_conv1"), precision="float32"):
    """Predicted peak resident bytes of an L-BFGS-B run on an image of shape (h, w[, 3]) whose
    convolutions compute in `precision` ('float32' or 'bfloat16'; L-BFGS-B is float64 either way)."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}")
    pixels = int(shape[0]) * int(shape[1])
    per_activation = BYTES_PER_ACTIVATION * ACTIVATION_BYTES_FACTOR[precision]
    return int(BASE_BYTES + per_activation * activations_per_pixel(model, layers) * pixels + lbfgs_bytes(pixels))


def _proc_kib_field(path, key):
    """A 'Key:  N kB' field of a /proc file in bytes, or None where it cannot be read."""
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_bytes():
    """MemAvailable from /proc/meminfo in bytes, or None where it cannot be read (non-Linux)."""
    return _proc_kib_field("/proc/meminfo", "MemAvailable")


def resident_bytes():
    """This process's current resident memory (VmRSS), 0 where it cannot be read."""
    return _proc_kib_field("/proc/self/status", "VmRSS") or 0


def largest_fitting_size(shape, model, layers, budget_bytes, precision="float32"):
    """The largest long side whose predicted peak fits in budget_bytes (0 if none does)."""
    def peak(side):
        return predict_peak_bytes(shape_for_long_side(shape, side), model, layers, precision)

    low, high = 0, 1
    while peak(high * 2) <= budget_bytes and high < 1 << 16:
        high *= 2
    high *= 2
    while high - low > 1:
        mid = (low + high) // 2
        if peak(mid) <= budget_bytes:
            low = mid
        else:
            high = mid
    return low


def check_fits(shape, size, model, layers, available=None, precision="float32"):
    """Raise UserError if a run at `shape` (h, w) would not fit in the available memory.

    The need is the predicted peak minus what this process already holds; `available` defaults
    to MemAvailable. Where memory cannot be read, nothing is checked.
    """
    available = available_bytes() if available is None else available
    if available is None:
        return
    resident = resident_bytes()
    need = predict_peak_bytes(shape, model, layers, precision) - resident
    if need <= available:
        return
    fits = largest_fitting_size(shape, model, layers, available + resident, precision)
    gib = 2 ** 30
    accepted = (f"--size {fits} or less, or --tile-size {fits} or less (tiled rendering), or free memory"
                if fits else "free memory first (no size fits now)")
    raise UserError(f"size {size} ({shape[1]}x{shape[0]} px) needs about {need / gib:.1f} GiB more memory but "
                    f"{available / gib:.1f} GiB is available; accepted: {accepted}")
