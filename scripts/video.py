"""Flicker-free video style transfer; see `python scripts/video.py --help`."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nst_keras.cli.video import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
