"""Writing a run's records (its start, events, interval summaries, the CSV export) to the sinks
without losing any silently: a sink that cannot write (disk full, below the free-space floor, an
I/O error) loses that record, which is counted (``records_lost``, the /metrics counter) and said
once per outage, with the first problem per file kept for the summary; the run goes on and the
sink is tried again with the next record."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from emoedge.core.errors import WriteError
from emoedge.edge.outputs.records import IntervalSummary
from emoedge.edge.outputs.sinks import DiskFloor, Sink, SqliteSink, export_csv

log = logging.getLogger("emoedge.edge.runtime.pipeline")   # said as the pipeline's, as before


class RecordWriter:
    def __init__(self, sinks: list[Sink]):
        self.sinks = sinks                       # the pipeline's list (sinks added to it are written to)
        self.records_lost = 0
        self.failing: dict[int, str] = {}        # sink id -> its current write problem (for /health)
        self.write_errors: dict[str, str] = {}   # file -> first problem, for the summary
        self.lost_counter = None                 # the /metrics counter of lost records, when it is on
        self.csv: Path | None = None             # the deployment's CSV export of the summaries database
        self._db = self._min_free_mb = self._export_every_ns = None
        self._next_export_ns = 0

    def export_csv_to(self, path: Path | None, db: str | None, min_free_mb: float, every_min: float) -> None:
        """Export the summaries database ``db`` to ``path`` at most every ``every_min`` (and at the end)."""
        self.csv, self._db, self._min_free_mb = path, db, min_free_mb
        self._export_every_ns = int(every_min * 60e9) if path is not None else None

    def deliver(self, method: str, item) -> bool:
        """Give ``item`` to every sink that takes it (``method``: on_start, on_event, on_interval).
        Returns whether the record of truth holds it (the summaries database where one takes such
        records, else any sink that takes them), so a count of records written is true of that file
        (no sink takes it: True, the count is of records made)."""
        takers = [s for s in self.sinks if getattr(type(s), method, None) is not getattr(Sink, method)]
        truth = [s for s in takers if s.record_of_truth] or takers
        written = False
        for s in takers:
            try:
                getattr(s, method)(item)
            except (WriteError, OSError, sqlite3.Error) as exc:
                self.write_failed(s, exc)
                continue
            written = written or s in truth
            if id(s) in self.failing:
                log.warning("%s: writing again (%d record(s) lost in all so far)", getattr(s, "path", s),
                            self.records_lost)
                del self.failing[id(s)]
        return written or not takers

    def lost_record(self) -> None:
        self.records_lost += 1
        if self.lost_counter is not None:
            self.lost_counter.inc()

    def write_failed(self, sink: Sink, exc: BaseException) -> None:
        self.lost_record()
        msg = str(exc) if isinstance(exc, WriteError) else f"{getattr(sink, 'path', type(sink).__name__)}: {exc}"
        where = str(getattr(sink, "path", type(sink).__name__))
        self.write_errors.setdefault(where, msg)
        if id(sink) not in self.failing:
            self.failing[id(sink)] = msg
            log.error("%s; records are not written until this is fixed (the run goes on; /health says so)", msg)

    def prune(self, now: int) -> None:
        """The summaries database drops what is past its retention."""
        for s in self.sinks:
            if isinstance(s, SqliteSink):
                try:
                    s.prune(now)
                except WriteError as exc:
                    self.write_failed(s, exc)

    def interval(self, summary: IntervalSummary, now: int) -> int:
        """A finished interval (wall time ``now``): 1 when the record of truth holds it, else 0."""
        self.prune(now)
        stored = self.deliver("on_interval", summary)
        if self.csv is not None and now >= self._next_export_ns:
            self.export_csv(now)
        return int(stored)

    def export_csv(self, now: int) -> None:
        self._next_export_ns = now + self._export_every_ns
        try:
            DiskFloor(self._min_free_mb).check(self.csv)
            export_csv(self._db, self.csv)
        except (WriteError, OSError, sqlite3.Error) as exc:
            self.lost_record()
            self.write_errors.setdefault(str(self.csv), str(exc))
            log.error("%s", exc)

    def close_sinks(self) -> None:
        for s in self.sinks:
            try:
                s.close()
            except (WriteError, OSError, sqlite3.Error) as exc:  # keep closing the others; counted and said
                self.write_failed(s, exc)
