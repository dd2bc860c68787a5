"""Loss histories, plots and contact sheets: functions the CLI calls to write what a run reported."""
import csv
import io
import os

from .errors import UserError
from .image import atomic_write, contact_sheet, save_json, save_png

HISTORY_FORMATS = (".csv", ".json")


def check_history_path(path):
    if os.path.splitext(path)[1].lower() not in HISTORY_FORMATS:
        raise UserError(f"loss log '{path}' has an unknown extension; accepted: {', '.join(HISTORY_FORMATS)}")


def write_history(path, history):
    """Write per-iteration records (dicts) as CSV or JSON, by extension.

    CSV columns are the union of the records' keys in order of first appearance (a tiled run's
    tile records add a 'tile' column); a record without a column leaves it empty.
    """
    check_history_path(path)
    if path.lower().endswith(".json"):
        save_json(path, history)
        return
    buffer = io.StringIO()
    if history:
        fields = list(dict.fromkeys(key for record in history for key in record))
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(history)

    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(buffer.getvalue())
    atomic_write(path, write)


def plot_curves(path, curves, title, ylabel="loss", xlabel="iteration", log=True):
    """Plot {label: (xs, ys)} to a PNG with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for label, (xs, ys) in curves.items():
        ax.plot(xs, ys, label=label)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def plot_history(path, history, title="Gatys-mode loss"):
    """Total and per-term loss against iteration; scale changes are visible as steps."""
    xs = [h["iteration"] for h in history]
    curves = {key: (xs, [max(h[key], 1e-30) for h in history]) for key in ("loss", "content", "style", "tv")}
    plot_curves(path, curves, title)


def write_contact_sheet(path, images, labels):
    """Save checkpoint images side by side with their labels."""
    save_png(path, contact_sheet(images, labels))
