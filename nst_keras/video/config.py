"""Options of video mode (no TensorFlow: the CLI reads its flags from here before start-up)."""
import dataclasses
import math
import numbers
from dataclasses import dataclass

from ..errors import UserError
from .flow import FLOW_PRESETS


@dataclass(frozen=True)
class VideoConfig:
    """Options of video mode on top of a GatysConfig (CLI flag in brackets).

    frame_iterations: iterations of every frame after the first, which starts close: half the
        first frame's 100 (Ruder et al. also run later frames shorter) [--frame-iterations].
    temporal_weight: weight of the temporal term [--temporal-weight]. 200 from a sweep (20, 200,
        2000, 20000) on a 6-frame pan at 128 px: the largest weight whose frames keep their content
        and style losses within 10 % of independent frames' (temporal error 0.35x theirs).
    long_term: offsets j of the earlier results in the temporal term: (1,) is Ruder et al.'s
        short-term loss, (1, 2, 4) their long-term one [--long-term].
    independent: every frame on its own (no warped start, no temporal term), for comparison
        [--independent].
    flow_preset: OpenCV DIS preset [--flow-preset].
    """

    frame_iterations: int = 50
    temporal_weight: float = 2e2
    long_term: tuple = (1,)
    independent: bool = False
    flow_preset: str = "medium"

    def validate(self):
        """The config with plain Python numbers and long_term sorted; UserError naming a bad value."""
        if not (_whole(self.frame_iterations) and self.frame_iterations >= 1):
            raise UserError(f"--frame-iterations {self.frame_iterations}; accepted: a whole number >= 1")
        if not (isinstance(self.temporal_weight, numbers.Real) and not isinstance(self.temporal_weight, bool)
                and math.isfinite(self.temporal_weight) and self.temporal_weight >= 0):
            raise UserError(f"--temporal-weight {self.temporal_weight}; accepted: a number >= 0")
        single = isinstance(self.long_term, (str, numbers.Number)) or not hasattr(self.long_term, "__iter__")
        offsets = (self.long_term,) if single else tuple(self.long_term)
        if not offsets or any(not _whole(j) or j < 1 for j in offsets) or len(set(offsets)) != len(offsets):
            raise UserError(f"--long-term {','.join(map(str, offsets)) or '(empty)'}; accepted: distinct whole "
                            "numbers >= 1, e.g. 1 or 1,2,4")
        if 1 not in offsets:
            raise UserError(f"--long-term {','.join(map(str, offsets))} has no 1; accepted: offsets that include 1 "
                            "(the previous frame, which also gives the start image)")
        if self.flow_preset not in FLOW_PRESETS:
            raise UserError(f"--flow-preset '{self.flow_preset}'; accepted: {', '.join(FLOW_PRESETS)}")
        # numpy numbers become Python ones: the config is recorded as JSON (the CLI's run.json)
        return dataclasses.replace(self, frame_iterations=int(self.frame_iterations),
                                   temporal_weight=float(self.temporal_weight),
                                   long_term=tuple(sorted(int(j) for j in offsets)))

    def to_dict(self):
        return dataclasses.asdict(self)


def _whole(value):
    """An int or numpy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
