"""The temperature curriculum τ(t) for hard-negative sampling (CoRNStack, section 3.3).

At a high τ the softmax over negative scores is nearly uniform, so early
training sees a mix of easy and hard negatives; as τ falls the sampler
concentrates on the most similar candidates. The schedule maps training
progress t ∈ [0, 1] (step / total steps) to τ, from ``start`` down to ``end``:

- ``linear``:      τ = start + (end - start) · t
- ``cosine``:      τ = end + (start - end) · (1 + cos(π t)) / 2  (slow at both ends)
- ``exponential``: τ = start · (end / start) ** t               (geometric: equal
                   ratios per unit of progress, which matches how τ acts as a
                   divisor of the logits)
- ``constant``:    τ = start (``--no-curriculum``)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("linear", "cosine", "exponential", "constant")


@dataclass(frozen=True)
class Curriculum:
    start: float = 1.0
    end: float = 0.05
    schedule: str = "exponential"

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r} (one of {', '.join(SCHEDULES)})")
        if self.start <= 0 or self.end <= 0:
            raise ValueError(f"temperatures must be positive (start={self.start}, end={self.end})")

    def tau(self, progress: float) -> float:
        return temperature(progress, self.start, self.end, self.schedule)


def temperature(progress: float, start: float, end: float, schedule: str) -> float:
    """τ at training progress ``progress`` (clamped to [0, 1])."""
    t = min(1.0, max(0.0, float(progress)))
    if schedule == "constant":
        return start
    if schedule == "linear":
        return start + (end - start) * t
    if schedule == "cosine":
        return end + (start - end) * (1.0 + math.cos(math.pi * t)) / 2.0
    if schedule == "exponential":
        return start * (end / start) ** t
    raise ValueError(f"unknown schedule {schedule!r} (one of {', '.join(SCHEDULES)})")
