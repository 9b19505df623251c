"""Fleet messages (emoedge.fleet.payload) under hostile MQTT input: each refused with a logged reason and counted, a
device publishes only as itself, random messages never stop the store."""

from __future__ import annotations

import itertools
import json
import logging

import pytest
from fleet_data import HOSTILE, everything_works, good, raw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emoedge.fleet import FleetStore

KINDS = {"stored", "duplicate", "conflict", "status", "rejected"}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_message_is_refused_said_counted_and_the_store_keeps_storing(name, tmp_path, caplog):
    store = FleetStore(tmp_path / "fleet.sqlite")
    db = store.connect()
    caplog.set_level(logging.WARNING, logger="emoedge.fleet")
    assert store.ingest(db, "s/d1/intervals", HOSTILE[name]) == "rejected"
    said = [r.getMessage() for r in caplog.records if "message refused" in r.getMessage()]
    assert len(said) == 1 and "\n" not in said[0] and len(said[0]) < 600, said
    assert store.ingest(db, "s/d1/intervals", raw(good())) == "stored"
    db.close()
    s = store.summary()
    assert s["counters"] == {"rejected": 1, "stored": 1} and len(s["intervals"]) == 1
    assert list(s["devices"]) == ["d1"]
    everything_works(store, tmp_path)


def test_a_device_may_publish_only_as_itself(tmp_path):
    store = FleetStore(tmp_path / "fleet.sqlite")
    db = store.connect()
    assert store.ingest(db, "s/d2/intervals", raw(good("d1"))) == "rejected"       # d2's credentials, d1's name
    assert store.ingest(db, "s/d1/intervals", raw(good("d1"))) == "stored"
    assert store.ingest(db, "s/" + "x" * 300 + "/status", b"online") == "rejected"
    assert store.ingest(db, "s/d1/status", b"<script>") == "rejected"
    db.close()
    assert [r["device"] for r in store.rows()] == ["d1"] and list(store.summary()["devices"]) == ["d1"]


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


FIELDS = sorted(good())


@st.composite
def messages(draw) -> bytes:
    kind = draw(st.sampled_from(["any json", "a field changed", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "any json":
        return json.dumps(draw(JSON)).encode()
    m = good()
    for key in draw(st.lists(st.sampled_from(FIELDS + ["extra"]), min_size=1, max_size=3)):
        m[key] = draw(JSON)
    return json.dumps(m).encode()                                      # NaN / Infinity included (json.dumps allows)


@pytest.fixture(scope="module")
def one_store(tmp_path_factory):
    """One store for every example: what hostile messages leave behind accumulates."""
    store = FleetStore(tmp_path_factory.mktemp("p") / "fleet.sqlite")
    db = store.connect()
    yield store, db, itertools.count()
    db.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=st.lists(messages(), min_size=1, max_size=5))
def test_property_random_messages_never_stop_the_store(payloads, one_store):
    store, db, ids = one_store
    mine = [f"ok-{next(ids)}" for _ in payloads]
    batch = [m for p, i in zip(payloads, mine) for m in (p, raw(good(interval_id=i)))]   # one valid after each
    kinds = store.ingest_many(db, [("s/d1/intervals", m) for m in batch])               # one commit per example
    assert set(kinds) <= KINDS and kinds[1::2] == ["stored"] * len(mine)
    found = db.execute(f"SELECT COUNT(*) FROM intervals WHERE interval_id IN ({', '.join('?' * len(mine))})",
                       mine).fetchone()[0]
    assert found == len(mine)


def test_property_store_serves_after_the_random_messages(one_store, tmp_path):
    store, db, ids = one_store
    s = store.summary()
    assert len(s["intervals"]) >= next(ids) and s["counters"]["stored"] >= len(s["intervals"])
    everything_works(store, tmp_path)
