"""The fleet store (emoedge.fleet.store): duplicates, conflicts, sequence gaps, stores written before the checks,
each on SQLite and on a real PostgreSQL (tests/pg_server.py)."""

from __future__ import annotations

import json

import pg_server as pg
from fleet_data import everything_works, good, raw, summary

from emoedge.edge.outputs.mqtt import interval_payload
from emoedge.fleet import FleetStore, render_page
from emoedge.fleet.web import summary_json

pg_server, store_spec = pg.pg_server, pg.store_spec      # the fixtures: a PostgreSQL server, then a store on each


def test_store_drops_duplicates_and_rejects_bad_messages(store_spec, tmp_path):
    store = FleetStore(store_spec)
    db = store.connect()
    p = json.dumps(interval_payload(summary("a1", 0), "a1", "fast", "room-a")).encode()
    assert store.ingest(db, "s/a1/intervals", p) == "stored"
    assert store.ingest(db, "s/a1/intervals", p) == "duplicate"            # a resend: same interval id
    assert store.ingest(db, "s/a1/intervals", b"{not json") == "rejected"
    assert store.ingest(db, "s/a1/intervals", b'{"interval_id": "x"}') == "rejected"
    assert store.ingest(db, "s/a1/status", b"online") == "status"
    db.close()
    s = store.summary()
    assert len(s["intervals"]) == 1 and s["counters"] == {"stored": 1, "duplicate": 1, "rejected": 2}
    assert store.counts() == {"stored": 1, "duplicate": 1, "rejected": 2, "intervals": 1}
    assert s["devices"]["a1"]["status"] == "online" and s["devices"]["a1"]["room"] == "room-a"


def test_the_same_id_with_other_content_is_a_conflict_not_a_duplicate(store_spec, tmp_path):
    store = FleetStore(store_spec)
    db = store.connect()
    assert store.ingest(db, "s/d1/intervals", raw(good())) == "stored"
    assert store.ingest(db, "s/d1/intervals", raw(good())) == "duplicate"
    assert store.ingest(db, "s/d1/intervals", raw(good(frames=1))) == "conflict"
    db.close()
    s = store.summary()
    assert s["counters"] == {"stored": 1, "duplicate": 1, "conflict": 1} and s["intervals"][0]["frames"] == 900
    assert "1 conflicts" in render_page(s)


def test_gaps_in_each_devices_sequence_are_counted_and_shown(store_spec, tmp_path):
    store = FleetStore(store_spec)
    db = store.connect()
    for k in (1, 2, 4, 7):                                           # 3, 5 and 6 never arrived
        store.ingest(db, "s/d1/intervals", raw(good("d1", k)))
    for k in (1, 2, 3):
        store.ingest(db, "s/d2/intervals", raw(good("d2", k)))
    assert store.ingest_many(db, [("s/d3/intervals", raw(good("d3", k))) for k in (2, 3)]) == ["stored"] * 2
    db.close()
    seq = json.loads(summary_json(store))["sequence"]
    assert seq["d1"] == {"runs": 1, "received": 4, "missing": 3}
    assert seq["d2"]["missing"] == 0 and seq["d3"]["missing"] == 1
    page = render_page(store.summary())
    assert ">4 missing<" in page
    assert page.split('data-device="d1"')[1].split("</tr>")[0].count('<td class="off">3</td>') == 1


def test_a_store_written_before_the_checks_still_serves(store_spec, tmp_path):
    """Rows an older version stored (share as a list, faces_seen "many", device null, Infinity) are left
    out of the page and the CSV instead of breaking them; /summary.json stays strict JSON."""
    store = FleetStore(store_spec)
    db = store.connect()
    store.ingest(db, "s/d1/intervals", raw(good()))
    cols = "interval_id, device, start_utc, end_utc, start_unix_ns, end_unix_ns, faces_seen, duration_s, share_json, " \
           "received_unix_ns"
    for i, (dev, faces, dur, share) in enumerate([("d1", 1, 1.0, "[0.5]"), ("d1", "many", 1.0, '{"happy": 1}'),
                                                  (None, 1, 1.0, '{"happy": 1}'), ("d1", 1, 1.0, '{"happy": NaN}')]):
        if store.dialect == "postgresql" and faces == "many":
            continue                                                  # a BIGINT column: PostgreSQL refuses it
        db.execute(store.backend.q(f"INSERT INTO intervals ({cols}) VALUES (?, ?, 'a', 'b', 1, 2, ?, ?, ?, 0)"),
                   (f"old-{i}", dev or "", faces, dur, share))
    inf = "'Infinity'" if store.dialect == "postgresql" else "9e999"
    db.execute(f"INSERT INTO intervals ({cols}) VALUES ('old-inf', 'd1', 'a', 'b', 1, 2, 1, {inf}, '{{}}', 0)")
    db.commit()
    db.close()
    assert [r["interval_id"] for r in store.rows()] == [good()["interval_id"]]
    everything_works(store, tmp_path)
