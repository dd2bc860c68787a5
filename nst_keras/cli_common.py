"""What both command-line tools share: error handling, path checks, progress bars."""
import os
import sys

from .errors import UserError


def quiet_tensorflow():
    """Silence TensorFlow's C++ start-up logging (set before TensorFlow is imported)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def run_main(fn, argv, prog):
    """Run fn(argv); a UserError becomes one line on stderr and exit code 2."""
    try:
        return fn(argv)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2


def _same_file(a, b):
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def check_output_path(path, inputs, role="output", extensions=(".png",)):
    """Raise UserError unless `path` can be written without touching an input."""
    if os.path.splitext(path)[1].lower() not in extensions:
        raise UserError(f"{role} '{path}' has an unsupported extension; accepted: {', '.join(extensions)}")
    for source in inputs:
        if source and _same_file(path, source):
            raise UserError(f"{role} '{path}' is also an input; accepted: a path that is not an input image")
    if os.path.isdir(path):
        raise UserError(f"{role} '{path}' is a directory; accepted: a file path ending in {extensions[0]}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UserError(f"{role} directory '{directory}' does not exist; accepted: a path in an existing directory")
    if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UserError(f"{role} '{path}' cannot be written (permission denied); accepted: a writable path")


def sidecar_path(output, suffix):
    """out.png -> out<suffix> (e.g. out.json, out_loss.png)."""
    return os.path.splitext(output)[0] + suffix


def progress_bar(total, quiet, desc):
    """A tqdm bar on stderr, or a do-nothing stand-in when quiet."""
    if quiet:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="it", file=sys.stderr, dynamic_ncols=True)


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix_str(self, s):
        pass

    def set_description_str(self, s):
        pass

    def close(self):
        pass


def say(message, quiet=False):
    """One informational line on stderr (suppressed by --quiet)."""
    if not quiet:
        print(message, file=sys.stderr)
