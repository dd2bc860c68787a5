"""Batch stylisation of folders and sweeps on Ray; see `python scripts/batch.py --help`."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nst_keras.cli.batch import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
