"""What every benchmark shares: one named section of BENCHMARKS.md written (the others left
untouched), a timestamped log line, the CPU model beside every figure."""
import os
import re
import sys
import time

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "BENCHMARKS.md")
HEADER = ("# Benchmarks\n\nFigures measured on the project's 2-core CPU machine (no GPU). Each section "
          "names the command that produced it; machines are noisy, so medians and ratios from one run "
          "are quoted.\n")


def write_section(name, markdown, path=BENCHMARKS):
    """Replace the text between `<!-- begin NAME -->` and `<!-- end NAME -->` (append if absent)."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else HEADER
    block = f"{begin}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cpu_model():
    """The CPU's model name from /proc/cpuinfo ('unknown' where there is none)."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from nst_keras.precision import cpu_model_and_flags

    return cpu_model_and_flags("/proc/cpuinfo")[0] or "unknown"
