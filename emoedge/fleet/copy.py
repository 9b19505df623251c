"""Copying one fleet store into another (``emoedge fleet copy --from SRC --db DST``): a school's SQLite file
into the district's PostgreSQL, several schools into one, or back.

Every interval of the source is read back through the same checks as the page's (rows an older or a damaged
store holds that do not pass are skipped and counted), keeps the time the source received it, and is written
through the store's own batched, idempotent ingest (``INSERT ... ON CONFLICT DO NOTHING`` by ``interval_id``, the
rollups, runs and devices as increments in the same transaction): running the copy twice, or copying while the
target's workers store the same devices' new intervals, stores each interval once. Devices' online/offline
statuses are not copied (the devices' retained status messages bring them to the target's workers)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from emoedge.fleet.ingest import checked
from emoedge.fleet.schema import COLUMNS
from emoedge.fleet.store import FleetStore

BATCH_ROWS = 1000


@dataclass(frozen=True)
class CopyResult:
    """What a copy did: intervals read from the source and what became of them in the target."""
    read: int
    stored: int
    duplicate: int
    conflict: int
    skipped_invalid: int
    seconds: float


def source_rows(store: FleetStore, db, chunk: int = BATCH_ROWS) -> Iterator[dict | None]:
    """The source's intervals, streamed in storage order: each checked row with its ``received_unix_ns``, or None
    for a row that does not pass the checks."""
    sql = f"SELECT {', '.join(COLUMNS)}, share_json, received_unix_ns FROM intervals"
    for raw in store.backend.stream(db, sql, (), chunk):
        row = checked(raw[:-1])
        received = raw[-1]
        if row is not None and isinstance(received, int) and not isinstance(received, bool) and received >= 0:
            row["received_unix_ns"] = received
        yield row


def copy_store(source: FleetStore, target: FleetStore, batch_rows: int = BATCH_ROWS, progress=None) -> CopyResult:
    """Every interval of ``source`` into ``target``, ``batch_rows`` a transaction; ``progress(counts)`` after each."""
    t0 = time.monotonic()
    counts: Counter = Counter()
    src, dst = source.connect(), target.connect()
    try:
        batch: list[dict] = []
        for row in source_rows(source, src):
            counts["read"] += 1
            if row is None:
                counts["skipped_invalid"] += 1
                continue
            batch.append(row)
            if len(batch) >= batch_rows:
                counts.update(target.ingest_rows(dst, batch))
                batch = []
                if progress:
                    progress(dict(counts))
        if batch:
            counts.update(target.ingest_rows(dst, batch))
    finally:
        src.close()
        dst.close()
    return CopyResult(read=counts["read"], stored=counts["stored"], duplicate=counts["duplicate"],
                      conflict=counts["conflict"], skipped_invalid=counts["skipped_invalid"],
                      seconds=round(time.monotonic() - t0, 3))

