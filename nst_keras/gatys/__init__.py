"""Gatys mode: content, Gram-matrix style and total-variation losses on VGG features.

Modules: config (GatysConfig, the one home of the defaults), evaluator (loss and gradient in one
compiled pass), optimize (L-BFGS-B, Adam, SGD behind one function), pipeline (stylize: coarse to
fine, tiles when asked), tiles, regions (masked Grams), memory (peak-memory prediction), plan
(what a run would do, without running it). Names are imported on first use, so that the CLI
reads its options without loading TensorFlow.
"""
_EXPORTS = {
    "GatysConfig": "config", "DEFAULT_STYLE_LAYERS": "config", "OPTIMIZERS": "config", "INITS": "config",
    "STYLE_FITS": "config",
    "Evaluator": "evaluator", "NonFiniteLoss": "evaluator", "TERMS": "evaluator", "Temporal": "evaluator",
    "compute_style_targets": "evaluator",
    "optimize": "optimize", "DEFAULT_LEARNING_RATES": "optimize",
    "stylize": "pipeline", "StylizeResult": "pipeline", "fit_style": "pipeline", "is_tiled": "pipeline",
    "plan_scales": "plan", "plan_run": "plan", "format_plan": "plan",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'nst_keras.gatys' has no attribute {name!r}")
