"""One retry policy for every part that reconnects (a camera, the MQTT publisher, the fleet store's
broker connection): exponential backoff from ``first_s`` doubling up to ``max_s``, optionally a
limited number of attempts. Written by hand (a few lines) to keep the device install small."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays between attempts: ``first_s``, then doubled each failure, at most ``max_s``;
    ``attempts`` (None: unlimited) bounds how many are made. ``reset()`` after a success."""

    first_s: float = 0.5
    max_s: float = 15.0
    attempts: int | None = None
    failures: int = field(default=0, init=False)

    def __post_init__(self):
        if not (0 < self.first_s <= self.max_s):
            raise ValueError(f"backoff needs 0 < first_s <= max_s, got {self.first_s}, {self.max_s}")

    def next_delay_s(self) -> float:
        """Counts one failure and returns how long to wait before the next attempt."""
        self.failures += 1
        return min(self.max_s, self.first_s * 2 ** (self.failures - 1))

    @property
    def exhausted(self) -> bool:
        """True once ``attempts`` failures have been counted."""
        return self.attempts is not None and self.failures >= self.attempts

    def reset(self) -> None:
        self.failures = 0
