"""The run's signs of life: systemd's notifications (ready, the watchdog petted at most once a
second while frames flow, stopping) and when the status line is due (every ``status_every_s``)."""

from __future__ import annotations

from emoedge.edge.runtime.sdnotify import Notifier

WATCHDOG_EVERY_NS = 1_000_000_000


class Heartbeat:
    def __init__(self, started_ns: int, status_every_s: float | None, notifier: Notifier | None = None):
        self.notifier = notifier or Notifier()
        self.status_every_s = status_every_s
        self._last_pet = self._last_status = started_ns

    def ready(self) -> None:
        self.notifier.notify("READY=1")

    def beat(self, now_ns: int) -> bool:
        """A frame ended at ``now_ns``: pet the watchdog when due; returns whether a status line is due."""
        if now_ns - self._last_pet >= WATCHDOG_EVERY_NS:  # systemd watchdog: frames are flowing
            self.notifier.notify("WATCHDOG=1")
            self._last_pet = now_ns
        if self.status_every_s and (now_ns - self._last_status) * 1e-9 >= self.status_every_s:
            self._last_status = now_ns
            return True
        return False

    def stopping(self) -> None:
        self.notifier.notify("STOPPING=1")
        self.notifier.close()
