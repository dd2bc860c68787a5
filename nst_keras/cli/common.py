"""What every command shares: one parser base and error contract, common flags, quiet start-up,
path checks, progress bars and messages.

The error contract: bad input (including argparse's own errors) ends in one line on stderr,
`PROG: error: <what, the value, what is accepted>`, and exit code 2; usage only with --help.
"""
import argparse
import dataclasses
import difflib
import os
import re
import sys

from .. import __version__
from ..errors import UserError
from ..startup import quiet_start  # noqa: F401  (the commands start TensorFlow through it)

_TYPE_WORDS = {"int": "a whole number", "float": "a number"}


class Parser(argparse.ArgumentParser):
    """argparse with the project's error contract: errors raise UserError (one line, exit 2)."""

    def error(self, message):
        raise UserError(self._explain(message))

    def _explain(self, message):
        """Rewrite argparse's messages as 'flag value; accepted: ...'."""
        m = re.fullmatch(r"argument (\S+?)(?:/\S+)?: invalid (\w+) value: '(.*)'", message)
        if m:
            flag, kind, value = m.groups()
            word = _TYPE_WORDS.get(kind, kind)
            return f"{flag} '{value}' is not {word}; accepted: {word}"
        m = re.fullmatch(r"unrecognized arguments: (.*)", message)
        if m:
            unknown = m.group(1).split()[0]
            known = [s for a in self._actions for s in a.option_strings]
            hint = difflib.get_close_matches(unknown, known, n=1)
            return (f"unknown option {unknown}" + (f" (did you mean {hint[0]}?)" if hint else "")
                    + "; accepted: the options listed by --help")
        m = re.fullmatch(r"argument (\S+?)(?:/\S+)?: expected one argument", message)
        if m:
            return f"{m.group(1)} needs a value; accepted: {m.group(1)} VALUE (see --help)"
        m = re.fullmatch(r"the following arguments are required: (.*)", message)
        if m:
            shape = " ".join(a.dest.upper() + (f" [{a.dest.upper()} ...]" if a.nargs == "+" else "")
                             for a in self._get_positional_actions())
            return f"missing {m.group(1)}; accepted: {self.prog} {shape} [options] (see --help)"
        return message.replace("\n", " ")


def add_common_flags(parser, output_help="output PNG (default: %(default)s)"):
    """-o, -q/--quiet, --verbose and --version, the same on every command (--seed is a config field)."""
    parser.add_argument("-o", "--output", default="out.png", help=output_help)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    parser.add_argument("--verbose", action="store_true",
                        help="also show TensorFlow's and Keras's own log lines")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--record-paths", action="store_true",
                        help="record the inputs' full paths in the outputs' metadata (default: file name and SHA-256 "
                             "only, so a shared result does not reveal your directories)")


def describe_input(path, full_path=False):
    """How an input is recorded in a result's metadata: its file name and SHA-256 (enough to
    identify the exact file), and its path as typed only when asked."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    out = {"name": os.path.basename(path), "sha256": digest.hexdigest()}
    if full_path:
        out["path"] = os.path.abspath(path)
    return out


def config_flags(config_class, exclude=()):
    """{field name: --flag} for every field of a config dataclass (a test checks each has a flag)."""
    return {f.name: "--" + f.name.replace("_", "-") for f in dataclasses.fields(config_class)
            if f.name not in exclude}


def config_from_args(config_class, args, exclude=()):
    """The config whose fields are the parsed flags, validated."""
    values = {name: getattr(args, name) for name in config_flags(config_class, exclude)}
    return config_class(**values).validate()


def run_main(fn, argv, prog):
    """Run fn(argv); a UserError becomes one line on stderr and exit code 2, a Ctrl-C that the
    command did not handle (before its run had anything to save) one line and exit code 130."""
    try:
        return fn(argv)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted before there was anything to save", file=sys.stderr)
        return 130


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


def progress_bar(total, quiet, desc, unit="it"):
    """A tqdm bar on stderr, or a do-nothing stand-in when quiet."""
    if quiet:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)


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
