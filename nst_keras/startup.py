"""Process start-up for the commands and the batch workers: TensorFlow without its C++ chatter.

Only processes of our own call this (the CLIs after parsing their flags, Ray workers as they
start): a library import never changes the environment.
"""
import os
import sys


def quiet_start(verbose=False):
    """Start TensorFlow without its C++ start-up lines (oneDNN, CUDA stubs, absl) unless verbose.

    TF_CPP_MIN_LOG_LEVEL silences what TensorFlow logs once running; the lines printed while its
    libraries load come before that setting is read, so stderr's file descriptor points at
    /dev/null during the import. Python errors raised by the import still surface.
    """
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    try:
        saved = os.dup(2)
    except OSError:  # no stderr descriptor to redirect
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(null, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
