"""Figures of a decoupled run: per-stage convergence and the noise reference.

Built on an Agg canvas with `progress.new_figure`, outside pyplot, so the library never switches
a caller's backend; they return the Figure and the caller saves it (`progress.save_figure`).
"""
import numpy as np

from ..progress import new_figure


def convergence_figure(history, stages):
    """Per-stage convergence: SNR of the layer being set and min SNR of earlier layers vs passes."""
    kinds = list(dict.fromkeys(s["stage"] for s in stages))
    fig, axes = new_figure((5 * len(kinds), 4), 1, len(kinds))
    for ax, kind in zip(axes[0], kinds):
        for index in sorted({h["stage_index"] for h in history if h["stage"] == kind}):
            samples = [h for h in history if h["stage_index"] == index]
            passes = [h["forward"] + h["reverse"] for h in samples]
            line, = ax.plot(passes, [min(h["snr_db"], 160) for h in samples], label=samples[0]["layer"])
            earlier = [(p, min(h["min_earlier_snr_db"], 160)) for p, h in zip(passes, samples)
                       if h["min_earlier_snr_db"] is not None]
            if earlier:
                ax.plot(*zip(*earlier), ls=":", color=line.get_color())
        ax.axhline(60, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(f"{kind}: set layer (solid), earlier layers' min (dotted)")
        ax.set_xlabel("forward + reverse-mode passes in the stage")
        ax.set_ylabel("SNR against the stage target [dB]")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def reference_figure(reference):
    """Reference channel means per layer (with the spread over noise draws), dead channels marked."""
    names = list(reference.mean)
    fig, axes = new_figure((9, 2 * len(names)), len(names), 1)
    for ax, name in zip(axes[:, 0], names):
        mean, std = reference.mean[name], reference.std[name]
        ax.bar(np.arange(mean.size), mean, width=1.0, color="tab:blue", yerr=std, error_kw={"lw": 0.5})
        dead = reference.dead[name]
        if dead.size:
            ax.plot(dead, np.zeros(dead.size), "rx", ms=3, label=f"{dead.size} dead")
            ax.legend(fontsize=7)
        ax.set_ylabel(name, fontsize=8)
    axes[-1, 0].set_xlabel(f"channel (reference: mean of {reference.draws} U(0,1) noise images, "
                           f"{reference.shape[1]}x{reference.shape[0]})")
    fig.tight_layout()
    return fig
