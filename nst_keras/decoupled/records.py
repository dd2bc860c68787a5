"""What a decoupled run hands back: the noise reference, the result, and the numbers in reports.

Reference holds step 0's expected features of noise; DecoupledResult a whole run's images,
stage reports, metadata and convergence history. snr_db and totals are the measures the stage
reports and BENCHMARKS.md use; finite and by_layer make report values JSON-friendly.
"""
import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Reference:
    """Expected features of U(0, 1) noise at one image size."""

    mean: dict              # layer -> float64 [C]
    std: dict               # layer -> float64 [C], spread over the draws
    dead: dict              # layer -> int array of channels dead on noise
    shape: tuple
    draws: int

    def summary(self):
        out = {}
        for name, mean in self.mean.items():
            live = np.setdiff1d(np.arange(mean.size), self.dead[name])
            rel = self.std[name][live] / mean[live] if live.size else np.zeros(0)
            out[name] = {"channels": int(mean.size), "dead_channels": self.dead[name].tolist(),
                         "mean_of_means": float(mean.mean()),
                         "relative_spread_median": float(np.median(rel)) if rel.size else None,
                         "relative_spread_max": float(rel.max()) if rel.size else None}
        return out


@dataclass
class DecoupledResult:
    """A decoupled run. After a stop requested by the callback (stop_reason 'callback') the
    images are those of the finished parts: `image` is the one after the last finished imposing
    stage (None if the imposition had not started), a normalised image None unless all its
    stages finished."""

    image: np.ndarray               # float32 [H, W, 3], clipped to [0, 1]; None: see above
    normalized_style: np.ndarray
    normalized_content: np.ndarray
    style_features: dict            # layer -> recorded c_k
    reference: Reference
    stages: list                    # one report dict per stage
    metadata: dict
    history: list = field(default_factory=list)  # convergence samples, one dict per iteration
    stop_reason: str = "completed"  # or 'callback'

    def report(self):
        return {"metadata": self.metadata, "reference": self.reference.summary(), "stages": self.stages,
                "totals": totals(self.stages)}


def snr_db(values, target):
    """10 log10(|target|^2 / |values - target|^2); inf when equal."""
    values, target = np.asarray(values, np.float64), np.asarray(target, np.float64)
    err = float(np.sum((values - target) ** 2))
    sig = float(np.sum(target ** 2))
    if err == 0:
        return math.inf
    if sig == 0 or not math.isfinite(err) or sig / err == 0:
        return -math.inf
    return 10 * math.log10(sig / err)


def totals(stages):
    """Sums and extremes over stage reports: time, passes, worst SNRs, largest |cos|."""
    return {"wall_time_s": float(sum(s["wall_time_s"] for s in stages)),
            "forward_passes": int(sum(s["passes"]["forward"] for s in stages)),
            "reverse_passes": int(sum(s["passes"]["reverse"] for s in stages)),
            "min_set_snr_db": float(min(s["set_snr_db"] for s in stages)) if stages else None,
            "min_earlier_snr_db": min((s["min_earlier_snr_db"] for s in stages
                                       if s["min_earlier_snr_db"] is not None), default=None),
            "max_abs_cos": max((s["max_abs_cos"] for s in stages if s["max_abs_cos"] is not None), default=None)}


def finite(value):
    """A float for JSON: +-inf become +-1e9."""
    return float(value) if math.isfinite(value) else (1e9 if value > 0 else -1e9)


def by_layer(net, rows):
    """Stacked feature indices -> {layer: [channel, ...]}."""
    out = {}
    for r in rows:
        j = int(np.searchsorted(net.offsets, r, side="right") - 1)
        out.setdefault(net.layers[j], []).append(int(r - net.offsets[j]))
    return out
