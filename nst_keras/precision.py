"""Which precision the convolutions run in: bfloat16 where the hardware has it natively, float32
elsewhere (emulated bfloat16 is slower than float32)."""
from .errors import announce, check_choice

PRECISIONS = ("auto", "float32", "bfloat16")


def cpu_model_and_flags(cpuinfo_path):
    """(model name, set of flags) of the first CPU in a /proc/cpuinfo-style file; ('', set()) if unreadable."""
    name, flags = "", set()
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not name:
                    name = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
                if name and flags:
                    break
    except OSError:
        pass
    return name, flags

def _gpu_details():
    """Device details (compute_capability, device_name) of every visible GPU."""
    import tensorflow as tf

    details = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            details.append(tf.config.experimental.get_device_details(device))
        except (ValueError, RuntimeError):
            details.append({})
    return details

def native_bfloat16(cpuinfo_path="/proc/cpuinfo", gpus=None):
    """Whether this machine computes bfloat16 convolutions natively: (bool, reason).

    True for a CPU with the AMX bfloat16 unit (flag amx_bf16; oneDNN's bfloat16 kernels use it)
    or a visible GPU of compute capability 8.0 or newer (Ampere's bfloat16 tensor cores). Without
    them TensorFlow emulates bfloat16, which is slower than float32. `gpus`: device-detail dicts
    (None: TensorFlow's visible GPUs). The reason names the CPU model and the bfloat16 flags found.
    """
    gpus = _gpu_details() if gpus is None else gpus
    for gpu in gpus:
        capability = tuple(gpu.get("compute_capability") or (0, 0))
        if capability >= (8, 0):
            return True, f"GPU {gpu.get('device_name', '')} compute capability {capability[0]}.{capability[1]}".replace("  ", " ")
    name, flags = cpu_model_and_flags(cpuinfo_path)
    found = sorted(f for f in flags if "bf16" in f or f.startswith("amx"))
    reason = f"CPU {name or 'unknown'}; bfloat16 flags: {' '.join(found) or 'none'}"
    return "amx_bf16" in flags, reason

def resolve_precision(precision, notify=None, native=None):
    """'float32' or 'bfloat16' for a requested precision ('auto', 'float32' or 'bfloat16').

    'auto' is bfloat16 only where it is native (native_bfloat16; `native` is its result, computed
    if None). 'bfloat16' on hardware without it still runs, but says once, through notify (a
    UserWarning without one), that it will be slow.
    """
    check_choice("precision", precision, PRECISIONS)
    if precision == "float32":
        return "float32"
    has_native, reason = native_bfloat16() if native is None else native
    if precision == "auto":
        return "bfloat16" if has_native else "float32"
    if not has_native:
        announce(notify, f"precision bfloat16 is emulated on this machine ({reason}): expect it to be slower "
                          "than float32; --precision auto picks the faster one")
    return "bfloat16"
