"""The MQTT outbox (emoedge.edge.outputs.mqtt_outbox): unsent rows kept, old sent rows pruned."""

from __future__ import annotations

from emoedge.edge.outputs.mqtt import Outbox


def test_outbox_keeps_unsent_rows_and_prunes_old_sent_ones(tmp_path):
    box = Outbox(tmp_path / "o.sqlite")
    db = box.connect()
    for k in range(5):
        Outbox.add(db, f"i{k}", "{}")
    Outbox.add(db, "i0", "{}")                                   # the same interval twice: one row
    assert box.counts() == {"sent": 0, "unsent": 5}
    Outbox.mark_sent(db, [1, 2, 3])
    with db:
        db.execute("UPDATE outbox SET sent_unix_ns = 1 WHERE seq IN (1, 2)")   # acknowledged long ago
    assert Outbox.prune(db, 86400) == 2
    assert box.counts() == {"sent": 1, "unsent": 2}                            # unsent rows are never pruned
    assert [r[1] for r in Outbox.pending(db, 0, 10)] == ["i3", "i4"]
    db.close()


def test_the_outbox_page_cache_is_bounded_like_the_summaries_database(tmp_path):
    from emoedge.core.fileio import DEVICE_SQLITE_CACHE_KIB

    db = Outbox(tmp_path / "o.sqlite").connect()
    try:
        assert db.execute("PRAGMA cache_size").fetchone()[0] == -DEVICE_SQLITE_CACHE_KIB
    finally:
        db.close()
