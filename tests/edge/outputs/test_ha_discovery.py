"""Home Assistant MQTT discovery (issue 30, part 4): the device discovery config a box publishes with
``--ha-discovery``, checked field by field against Home Assistant's documented schema (written out
here: the device discovery payload, the MQTT sensor's options, the documented abbreviations), and
round-tripped through a real Mosquitto: retained, re-published when Home Assistant says ``online``,
the box's retained status ``offline`` after it stops or is killed (availability), ``expire_after``
sane. Value templates are rendered with jinja2 where it is installed, else checked for their form
and evaluated from it, against real interval payloads."""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mqtt_broker import Broker, Subscriber, need_mosquitto

from emoedge.core.errors import BadInputError
from emoedge.edge.outputs.ha_discovery import (
    MAX_CONFIG_BYTES,
    MIN_EXPIRE_S,
    check_labels,
    check_prefix,
    discovery_config,
    discovery_message,
    expire_after_s,
    object_id,
)
from emoedge.edge.outputs.mqtt import MqttSink, MqttTarget, interval_payload
from emoedge.edge.outputs.records import IntervalSummary, RunInfo

LABELS = ("anger", "happy", "neutral", "sad", "surprise")

# -- Home Assistant's documented schema (MQTT integration: "Device discovery payload", the supported
#    abbreviations; MQTT sensor: its configuration variables) -------------------------------------------
ABBREVIATIONS = {          # component and shared level (those a sensor may use)
    "avty": "availability", "avty_mode": "availability_mode", "avty_t": "availability_topic",
    "avty_tpl": "availability_template", "dev_cla": "device_class", "e": "encoding", "en": "enabled_by_default",
    "ent_cat": "entity_category", "exp_aft": "expire_after", "frc_upd": "force_update", "ic": "icon",
    "json_attr_t": "json_attributes_topic", "json_attr_tpl": "json_attributes_template", "obj_id": "object_id",
    "p": "platform", "pl_avail": "payload_available", "pl_not_avail": "payload_not_available",
    "stat_cla": "state_class", "stat_t": "state_topic", "t": "topic", "uniq_id": "unique_id",
    "unit_of_meas": "unit_of_measurement", "val_tpl": "value_template", "dev": "device", "o": "origin",
    "cmps": "components",
}
DEVICE_ABBREVIATIONS = {"cns": "connections", "cu": "configuration_url", "ids": "identifiers", "mf": "manufacturer",
                        "mdl": "model", "mdl_id": "model_id", "sw": "sw_version", "hw": "hw_version",
                        "sn": "serial_number", "sa": "suggested_area", "via_device": "via_device"}
ORIGIN_ABBREVIATIONS = {"sw": "sw_version", "url": "support_url"}
DEVICE_KEYS = {"identifiers", "connections", "manufacturer", "model", "model_id", "name", "hw_version",
               "serial_number", "sw_version", "via_device", "suggested_area", "configuration_url"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
SHARED_KEYS = {"availability", "availability_mode", "availability_template", "availability_topic",
               "command_topic", "payload_available", "payload_not_available", "state_topic"}
TOP_KEYS = {"device", "origin", "components", "qos", "encoding"} | SHARED_KEYS
SENSOR_KEYS = {"platform", "name", "unique_id", "state_topic", "value_template", "unit_of_measurement",
               "state_class", "expire_after", "icon", "qos", "device_class", "force_update", "enabled_by_default",
               "entity_category", "json_attributes_topic", "json_attributes_template", "encoding",
               "suggested_display_precision"} | SHARED_KEYS
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
TOPIC_MATCHER = re.compile(r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config")


def _expand(d: dict, abbreviations: dict, where: str) -> dict:
    """Home Assistant's expansion of abbreviated keys; an abbreviation and its full name both given is a bug."""
    out = {}
    for k, v in d.items():
        full = abbreviations.get(k, k)
        assert full not in out, f"{where}: {full} given twice"
        out[full] = v
    return out


def _topic_ok(topic) -> bool:
    return isinstance(topic, str) and 0 < len(topic.encode()) <= 65535 and not set("+#\0") & set(topic)


def _check_device_and_origin(dev: dict, origin: dict) -> None:
    assert set(dev) <= DEVICE_KEYS, set(dev) - DEVICE_KEYS
    ids = dev.get("identifiers")
    assert isinstance(ids, (str, list)) and ids and all(isinstance(i, str) and i for i in
                                                       ([ids] if isinstance(ids, str) else ids))
    assert all(isinstance(dev[k], str) for k in dev if k != "identifiers")
    assert set(origin) <= ORIGIN_KEYS and isinstance(origin.get("name"), str) and origin["name"]


def _check_sensor(cid: str, c: dict) -> None:
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", cid), cid
    assert set(c) <= SENSOR_KEYS, f"{cid}: unknown keys {set(c) - SENSOR_KEYS}"
    assert c["platform"] == "sensor" and isinstance(c["unique_id"], str) and c["unique_id"]
    assert _topic_ok(c["state_topic"]) and isinstance(c["value_template"], str)
    assert isinstance(c["name"], str) and c["name"]
    assert c.get("state_class") in STATE_CLASSES
    assert isinstance(c.get("unit_of_measurement"), str)
    assert isinstance(c.get("expire_after"), int) and c["expire_after"] > 0       # cv.positive_int
    assert c.get("qos", 0) in (0, 1, 2)
    assert re.fullmatch(r"[a-z0-9_-]+:[a-z0-9-]+", c.get("icon", "mdi:x"))
    for a in c.get("availability", []):
        assert set(a) <= {"topic", "payload_available", "payload_not_available", "value_template"}
        assert _topic_ok(a["topic"]) and all(isinstance(a.get(k, ""), str) for k in a)


def ha_components(topic: str, payload: bytes, prefix: str = "homeassistant") -> dict[str, dict]:
    """Check a device discovery message as Home Assistant reads it (topic, JSON object, abbreviations,
    DEVICE_DISCOVERY_SCHEMA, the sensor schema of each component after the shared options are merged
    in); returns the components with full key names."""
    assert topic.startswith(prefix + "/") and (m := TOPIC_MATCHER.fullmatch(topic[len(prefix) + 1:]))
    assert m["component"] == "device" and m["node_id"] is None
    config = _expand(json.loads(payload), ABBREVIATIONS, "config")
    assert isinstance(config, dict) and set(config) <= TOP_KEYS, set(config) - TOP_KEYS
    dev = _expand(config["device"], DEVICE_ABBREVIATIONS, "device")
    _check_device_and_origin(dev, _expand(config["origin"], ORIGIN_ABBREVIATIONS, "origin"))
    assert config.get("qos", 0) in (0, 1, 2) and isinstance(config["components"], dict) and config["components"]
    avty = [_expand(a, ABBREVIATIONS, "availability") for a in config.get("availability", [])]
    shared = {k: v for k, v in config.items() if k in SHARED_KEYS} | ({"availability": avty} if avty else {})
    out = {}
    for cid, comp in config["components"].items():
        c = _expand(comp, ABBREVIATIONS, cid)
        c = {**shared, **c}                                        # the component's own value wins
        _check_sensor(cid, c)
        out[cid] = c
    uids = [c["unique_id"] for c in out.values()]
    assert len(set(uids)) == len(uids), "unique ids repeat"
    return out


# -- value templates: jinja2 when installed, else their one documented form, evaluated -------------------
SHARE_FORM = re.compile(r"\{\{ \((?:value_json\.share\[(?P<label>\"[^\"]+\")\]|value_json\.(?P<unc>uncertain_share))"
                        r" \* 100\) \| round\(1\) if value_json\.face_observations else None \}\}")


def render(template: str, payload: dict) -> str:
    try:
        import jinja2
    except ImportError:
        jinja2 = None
    if jinja2 is not None:
        return jinja2.Environment().from_string(template).render(value_json=payload)
    if template == "{{ value_json.faces_seen }}":
        return str(payload["faces_seen"])
    m = SHARE_FORM.fullmatch(template)
    assert m, f"a value template of an unknown form: {template}"
    if not payload["face_observations"]:
        return "None"
    share = payload["uncertain_share"] if m["unc"] else payload["share"][json.loads(m["label"])]
    return str(round(share * 100, 1))


def summary(k: int, share: dict[str, float], faces: int = 2, obs: int = 40) -> IntervalSummary:
    t0 = 1_790_000_000_000_000_000 + k * 1_000_000_000
    return IntervalSummary(f"r1-{k:05d}", "r1", t0, t0 + 999_000_000, 1.0, 15, faces, obs, share, 0.7)


SHARE = {"anger": 0.05, "happy": 0.4567, "neutral": 0.25, "sad": 0.0, "surprise": 0.1, "uncertain": 0.1433}


def test_the_config_passes_home_assistants_schema_and_its_templates_read_the_interval():
    msg = discovery_message("homeassistant", "kiosk-7", LABELS, "school/kiosk-7/intervals", "school/kiosk-7/status",
                            60.0, room="Hall B", model="ferplus7", sw_version="0.1.0")
    assert msg.topic == "homeassistant/device/emoedge_kiosk-7/config" and msg.ha_status_topic == "homeassistant/status"
    comps = ha_components(msg.topic, msg.payload)
    assert set(comps) == {f"share_{lb}" for lb in LABELS} | {"uncertain_share", "faces"}
    dev = json.loads(msg.payload)["dev"]
    assert dev == {"ids": ["emoedge_kiosk-7"], "name": "kiosk-7", "mf": "emoedge", "mdl": "emoedge (ferplus7)",
                   "sw": "0.1.0", "sa": "Hall B"}
    for c in comps.values():
        assert c["state_topic"] == "school/kiosk-7/intervals" and c["expire_after"] == 180 and c["qos"] == 1
        assert c["availability"] == [{"topic": "school/kiosk-7/status", "payload_available": "online",
                                      "payload_not_available": "offline"}]
        assert c["unit_of_measurement"] == ("faces" if c is comps["faces"] else "%")
    payload = json.loads(json.dumps(interval_payload(summary(1, SHARE, faces=3), "kiosk-7", "ferplus7", "Hall B")))
    got = {cid: render(c["value_template"], payload) for cid, c in comps.items()}
    assert got == {"share_anger": "5.0", "share_happy": "45.7", "share_neutral": "25.0", "share_sad": "0.0",
                   "share_surprise": "10.0", "uncertain_share": "14.3", "faces": "3"}
    empty = json.loads(json.dumps(interval_payload(summary(2, dict.fromkeys(SHARE, 0.0), faces=0, obs=0), "k", "m")))
    got = {cid: render(c["value_template"], empty) for cid, c in comps.items()}
    assert got.pop("faces") == "0" and set(got.values()) == {"None"}     # no faces: the shares are unknown


def test_ids_are_sanitised_unique_and_the_sizes_bounded():
    assert object_id("kiosk-7_a") == "kiosk-7_a"
    assert object_id("a.b") != object_id("a_b") and re.fullmatch(r"[a-zA-Z0-9_-]+", object_id("Raum 1.OG/ä"))
    comps = ha_components(*(lambda m: (m.topic, m.payload))(discovery_message(
        "ha/site-1", "box.1", ["a b", "a.b", "a_b", "Überraschung"], "p/box.1/intervals", "p/box.1/status", 1.0)),
        prefix="ha/site-1")
    assert len(comps) == 6 and all(c["expire_after"] == MIN_EXPIRE_S for c in comps.values())
    assert check_labels(["happy", "uncertain", "happy", "sad"]) == ("happy", "sad")
    for bad in ([], [f"l{i}" for i in range(65)], ['say "hi"'], ["{{ 7*7 }}"], ["a\nb"], ["x" * 65]):
        with pytest.raises(BadInputError, match="--ha-discovery"):
            check_labels(bad)
    for bad in ("", "a/#", "a/+/b", "/a", "a/", "a//b", "$SYS", "a\0b", "x" * 129):
        with pytest.raises(BadInputError, match=r"key 'mqtt_ha_discovery' \(--ha-discovery\)"):
            check_prefix(bad)
    with pytest.raises(BadInputError, match="room"):
        discovery_config("box", LABELS, "t/box/intervals", "t/box/status", 60, room="x" * 129)
    big = discovery_message("homeassistant", "d" * 128, [f"{'l' * 60}{i:02d}" for i in range(64)],
                            "p" * 200 + "/intervals", "p" * 200 + "/status", 60, room="r" * 128, model="m" * 500)
    assert len(big.payload) <= MAX_CONFIG_BYTES and big.components == 66
    assert json.loads(big.payload)["dev"]["mdl"] == f"emoedge ({'m' * 128})"
    with pytest.raises(BadInputError, match="bytes, over"):
        discovery_message("homeassistant", "box", LABELS, "p" * MAX_CONFIG_BYTES + "/intervals", "p/status", 60)


@pytest.mark.parametrize("interval_s,want", [(0.5, 60), (1, 60), (20, 60), (20.2, 61), (60, 180), (300, 900)])
def test_expire_after_is_three_intervals_and_at_least_a_minute(interval_s, want):
    assert expire_after_s(interval_s) == want and want >= math.ceil(interval_s)


# -- through a real Mosquitto ----------------------------------------------------------------------------
def ha_sink(broker: Broker, tmp_path: Path, **kw) -> MqttSink:
    kw.setdefault("flush_timeout_s", 5.0)
    return MqttSink(MqttTarget.parse(broker.url), tmp_path / "outbox.sqlite", device="box1", room="room-a",
                    model="fast", retry_max_s=1.0, ha_prefix="homeassistant", labels=LABELS, interval_s=2.0, **kw)


def configs(sub: Subscriber) -> list[tuple[str, bytes, bool]]:
    with sub.lock:
        return [m for m in sub.messages if m[0].endswith("/config")]


def wait(pred, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not pred():
        time.sleep(0.05)
    return pred()


def ha_online(broker: Broker, payload: str = "online", retain: bool = False) -> None:
    """Home Assistant's birth message on homeassistant/status."""
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="home-assistant")
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    c.publish("homeassistant/status", payload, qos=1, retain=retain).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()


def test_a_subscriber_receives_the_retained_config_and_home_assistant_online_gets_it_again(tmp_path):
    broker = Broker(tmp_path / "b").start()
    try:
        sink = ha_sink(broker, tmp_path)
        sink.on_start(RunInfo.new(model="fast"))
        sink.on_interval(summary(0, SHARE))
        assert wait(lambda: sink.published == 1)                       # acknowledged: the config went before it
        late = Subscriber(broker.port, topic="homeassistant/device/#", client_id="late")
        assert wait(lambda: len(configs(late)) == 1), "no retained config"
        topic, payload, retained = configs(late)[0]
        assert retained and topic == "homeassistant/device/emoedge_box1/config"     # retained: HA finds it later
        comps = ha_components(topic, payload)
        assert {c["state_topic"] for c in comps.values()} == {sink.intervals_topic}
        watch = Subscriber(broker.port, topic="#", client_id="watch")
        wait(lambda: len(configs(watch)) == 1)
        n = len(configs(watch))
        ha_online(broker)                                              # Home Assistant (re)started
        assert wait(lambda: len(configs(watch)) == n + 1), "not re-published on HA's online"
        ha_online(broker, "offline")                                   # its last will: nothing to do
        time.sleep(0.5)
        assert len(configs(watch)) == n + 1 and sink.ha_published == 2
        sink.on_interval(summary(1, SHARE))
        assert wait(lambda: watch.intervals())
        interval = watch.intervals()[0]
        assert render(comps["share_happy"]["value_template"], interval) == "45.7"
        sink.close()
        assert wait(lambda: ("test/box1/status", "offline", False) in watch.statuses())
        late.close()
        watch.close()
        after = Subscriber(broker.port, topic="#", client_id="after")   # what Home Assistant sees now
        assert wait(lambda: ("test/box1/status", "offline", True) in after.statuses())    # unavailable
        assert [t for t, _, r in configs(after) if r] == [topic]      # the box stays known
        after.close()
    finally:
        broker.stop()


def test_the_config_is_published_again_on_every_reconnect(tmp_path):
    broker = Broker(tmp_path / "b").start()
    try:
        sink = ha_sink(broker, tmp_path)
        sink.on_start(RunInfo.new(model="fast"))
        assert wait(lambda: sink.ha_published == 1)
        broker.kill()
        time.sleep(0.5)
        broker.start()
        assert wait(lambda: sink.ha_published == 2, 15), sink.problems
        sub = Subscriber(broker.port, topic="homeassistant/#")
        assert wait(lambda: len(configs(sub)) == 1)
        sub.close()
        sink.close()
    finally:
        broker.stop()


KILLED_BOX = """
import sys, time
from emoedge.edge.outputs.mqtt import MqttSink, MqttTarget
from emoedge.edge.outputs.records import RunInfo
sink = MqttSink(MqttTarget.parse(sys.argv[1]), sys.argv[2], device="box9", retry_max_s=1.0,
                ha_prefix="homeassistant", labels=["happy", "sad"], interval_s=1.0)
sink.on_start(RunInfo.new(model="fast"))
while sink.ha_published < 1:
    time.sleep(0.05)
print("up", flush=True)
time.sleep(600)
"""


def test_a_killed_box_shows_unavailable_by_its_last_will(tmp_path):
    broker = Broker(tmp_path / "b").start()
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BOX, broker.url, str(tmp_path / "o.sqlite")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up", proc.stderr.read()[-2000:]
        sub = Subscriber(broker.port, topic="#")
        assert wait(lambda: any(s[1] == "online" for s in sub.statuses()) and configs(sub))
        comps = ha_components(*configs(sub)[0][:2])
        assert {c["expire_after"] for c in comps.values()} == {MIN_EXPIRE_S}   # and HA expires a silent one
        proc.send_signal(signal.SIGKILL)                                # no goodbye: the broker says it
        proc.wait(10)
        assert wait(lambda: ("test/box9/status", "offline", False) in sub.statuses(), 60), sub.statuses()
        sub.close()
        after = Subscriber(broker.port, topic="test/+/status", client_id="after")
        assert wait(lambda: after.statuses() == [("test/box9/status", "offline", True)])   # retained
        after.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        broker.stop()


def test_emoedge_run_announces_the_models_labels(tmp_path):
    need_mosquitto()
    clip = Path(__file__).resolve().parents[4] / "shared" / "media" / "short_hamilton_clip.mp4"
    if not clip.is_file():
        pytest.skip(f"the shared clip is absent ({clip})")
    broker = Broker(tmp_path / "b").start()
    sub = Subscriber(broker.port, topic="#")
    try:
        done = subprocess.run([sys.executable, "-m", "emoedge", "-v", "run", "--source", str(clip), "--interval-s", "1",
                               "--model", "fast", "--mqtt", broker.url, "--mqtt-device", "kiosk-7", "--mqtt-room",
                               "hall", "--ha-discovery", "--db", str(tmp_path / "s.sqlite")],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert wait(lambda: len(configs(sub)) >= 1)
        topic, payload, _ = configs(sub)[0]
        comps = ha_components(topic, payload)
        dev = json.loads(payload)["dev"]
        assert dev["sa"] == "hall" and dev["mdl"] == "emoedge (fast)" and "Home Assistant discovery" in done.stderr
        intervals = sub.intervals()
        assert intervals and set(intervals[0]["share"]) == {k[len("share_"):] for k in comps if
                                                            k.startswith("share_")} | {"uncertain"}
        for m in intervals:                                    # every template renders a number (or unknown)
            for c in comps.values():
                v = render(c["value_template"], m)
                assert v == "None" or 0 <= float(v) <= (100 if c["unit_of_measurement"] == "%" else 1e6)
    finally:
        sub.close()
        broker.stop()
