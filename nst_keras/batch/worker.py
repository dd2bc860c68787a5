"""BatchWorker: what one Ray actor holds (the feature networks, built once per process) and does
(one item per call: load, stylise, write atomically). Plain Python: run.py wraps it with
ray.remote, so this module imports no Ray.
"""
import os
import time

from .plan import batch_record, item_status


class BatchWorker:
    """Stylises items with networks kept across calls; every call returns a result record and
    never raises for a bad item (its error becomes a 'failed' record)."""

    def __init__(self, verbose=False):
        from ..startup import quiet_start

        quiet_start(verbose)  # TensorFlow's start-up lines would reach the driver's terminal
        self._extractors = {}   # (model, weights, pooling, precision, seed, layers) -> FeatureExtractor
        self._messages = []

    def where(self):
        """{'node': Ray node id (short; None outside Ray), 'pid': process id}: where this worker runs."""
        import sys

        ray = sys.modules.get("ray")
        node = ray.get_runtime_context().get_node_id()[:12] if ray and ray.is_initialized() else None
        return {"node": node, "pid": os.getpid()}

    def run(self, item, inputs):
        """Stylise one plan.Item; `inputs` is its {'content', 'style'} record (describe_input).

        Returns {'status': 'done'|'failed', 'seconds', 'final_loss', 'error', 'reused',
        'messages', 'worker'}. An item already finished (a retry after the files were written)
        is not computed again.
        """
        started = time.perf_counter()
        out = {"status": "failed", "final_loss": None, "error": None, "reused": False, "worker": self.where()}
        try:
            status, sidecar = item_status(item, inputs)
            if status == "done":
                out.update(status="done", reused=True, final_loss=sidecar.get("final_loss"))
            elif status == "conflict":
                out["error"] = sidecar
            else:
                out.update(self._stylize(item, inputs))
        except Exception as exc:  # noqa: BLE001 - any failure of one item is that item's record
            from ..errors import UserError

            out["error"] = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        out["seconds"] = time.perf_counter() - started
        out["messages"], self._messages = self._messages, []
        return out

    def _extractor(self, config):
        from ..models import build_extractor, native_bfloat16, resolve_precision

        native = native_bfloat16() if config.precision != "float32" else (False, "")
        precision = resolve_precision(config.precision, lambda m: None, native)
        layers = tuple(dict.fromkeys((*config.content_layers, *config.style_layers)))
        key = (config.model, config.weights, config.pooling, precision,
               config.seed if config.weights == "random" else None, layers)
        if key not in self._extractors:
            self._extractors[key] = build_extractor(config.model, config.weights, list(layers), seed=config.seed,
                                                    notify=self._messages.append, pooling=config.pooling,
                                                    precision=precision)
        return self._extractors[key]

    def _stylize(self, item, inputs):
        from ..gatys import stylize
        from ..image import load_image, save_json, save_png

        config = item.config
        content = load_image(item.content, "content image", self._messages.append, long_side=config.size)
        style = load_image(item.style, "style image", self._messages.append, long_side=_style_long_side(config))
        result = stylize(content, style, config, extractor=self._extractor(config), notify=self._messages.append)
        if result.stop_reason != "completed" or result.metadata.get("final_loss") is None:
            return {"error": f"the run stopped ({result.stop_reason}; final loss "
                             f"{result.metadata.get('final_loss')}); nothing written"}
        metadata = dict(result.metadata, inputs=inputs, batch=dict(batch_record(item, inputs), worker=self.where()))
        save_png(item.output, result.image, metadata)
        save_json(item.sidecar, dict(metadata, history=result.history))  # last: marks the item finished
        return {"status": "done", "final_loss": result.metadata["final_loss"]}


def _style_long_side(config):
    """The largest long side the style is resized to (for a reduced decode of a huge file)."""
    factor = max(config.style_scales or (1.0,))
    if config.style_size:
        return max(1, round(config.style_size * factor))
    return max(1, round(config.size * (config.style_scale if config.style_fit == "scale" else 1.0) * factor))


__all__ = ["BatchWorker"]
