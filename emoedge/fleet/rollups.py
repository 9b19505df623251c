"""The page's rollups: per device per UTC hour and per day, the intervals, their weight (face observations,
at least 1 each), frames, faces seen and per label the weighted share sum, in the label's slot
(:mod:`emoedge.fleet.schema`). Summed in memory for a batch, then written as upsert increments
(``x = x + excluded.x``), so several writers add to the same bucket safely, in key order (no deadlock)."""

from __future__ import annotations

from emoedge.fleet.schema import NSLOTS, ROLLUPS, SLOTS

HEAD = ("device", "bucket_unix_ns", "room", "intervals", "weight", "frames", "faces_seen") + SLOTS
TYPES = "titirrr" + "r" * NSLOTS


def upsert_tail(table: str) -> str:
    sums = [f"{c} = {table}.{c} + excluded.{c}" for c in ("intervals", "weight", "frames", "faces_seen")]
    slots = [f"{s} = COALESCE({table}.{s} + excluded.{s}, {table}.{s}, excluded.{s})" for s in SLOTS]
    return (f"ON CONFLICT (device, bucket_unix_ns) DO UPDATE SET room = COALESCE(excluded.room, {table}.room), "
            + ", ".join(sums + slots))


def write_rows(backend, db, table: str, rows: list[tuple]) -> None:
    """Rollup rows (``HEAD``, in key order) added to ``table``."""
    backend.upsert(db, table, HEAD, TYPES, rows, upsert_tail(table))


class RollupSums:
    """Rollup increments of the intervals added, until ``write``."""

    def __init__(self):
        self.cells: dict[tuple[str, str, int], list] = {}

    def __len__(self) -> int:
        return len(self.cells)

    def add(self, row: dict, slots: dict[str, int | None]) -> None:
        """One stored interval (checked fields); ``slots``: label -> its rollup column (None: none)."""
        w = max(1, row["face_observations"] or 0)
        for table, size in ROLLUPS.items():
            key = (table, row["device"], row["start_unix_ns"] // size * size)
            c = self.cells.get(key)
            if c is None:
                c = self.cells[key] = [None, 0, 0.0, 0.0, 0.0, {}]
            if row["room"] is not None:
                c[0] = row["room"]
            c[1] += 1
            c[2] += w
            c[3] += row["frames"] or 0
            c[4] += row["faces_seen"] or 0
            for label, v in row["share"].items():
                s = slots.get(label)
                if s is not None:
                    c[5][s] = c[5].get(s, 0.0) + v * w

    def write(self, backend, db) -> None:
        """The increments as upserts, in key order; then empty."""
        for table in ROLLUPS:
            rows = [(dev, b, c[0], c[1], float(c[2]), float(c[3]), float(c[4]), *[c[5].get(k) for k in range(NSLOTS)])
                    for (t, dev, b), c in sorted(self.cells.items(), key=lambda kv: kv[0]) if t == table]
            write_rows(backend, db, table, rows)
        self.cells.clear()
