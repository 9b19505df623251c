"""The first-boot file's own schema (emoedge.edge.deployment.firstboot_schema): the shipped example is valid,
unknown keys are refused by name with a suggestion, every problem is collected (never only the first), and
hostile values (host names, URLs, time zones, SSH keys, Wi-Fi, paths off the boot partition) are refused."""

import copy

import pytest
import yaml
from firstboot_cards import EXAMPLE, GOOD, ed25519_key, make_card

from emoedge.edge.deployment.firstboot_schema import parse_data


def parse(card, settings):
    return parse_data(settings, card.boot, card.root / "usr/share/zoneinfo", "emoedge.yaml")


def keys(problems):
    return [p.key for p in problems]


def test_the_shipped_example_is_valid_and_fully_read(tmp_path):
    card = make_card(tmp_path)
    fb, problems = parse(card, yaml.safe_load(EXAMPLE.read_text()))
    assert problems == []
    assert fb.profile == "classroom-sensor-rpi4" and fb.device_id == "room12-sensor" and fb.jurisdiction == "UK"
    assert fb.mqtt.url.startswith("mqtt://") and fb.mqtt.password_file == "mqtt-password.txt"
    assert fb.wifi.country == "GB" and len(fb.ssh_keys) == 1 and fb.retention_days == 120


def test_good_settings_become_a_frozen_dataclass(tmp_path):
    card = make_card(tmp_path)
    fb, problems = parse(card, GOOD)
    assert problems == []
    assert fb.extra == ("runtime.interval_s=60",)
    with pytest.raises(AttributeError):
        fb.device_id = "other"


def test_unknown_keys_are_refused_by_name_with_the_nearest_known_key(tmp_path):
    card = make_card(tmp_path)
    bad = copy.deepcopy(GOOD)
    bad["devcie_id"] = "x"
    bad["mqtt"]["passwrd_file"] = "p.txt"
    bad["wifi"]["channel"] = 6
    fb, problems = parse(card, bad)
    assert keys(problems) == ["devcie_id", "mqtt.passwrd_file", "wifi.channel"]
    assert "did you mean 'device_id'" in problems[0].fix and "emoedge.yaml" in problems[0].message
    assert "did you mean 'mqtt.password_file'" in problems[1].fix


def test_every_problem_is_collected_not_only_the_first(tmp_path):
    card = make_card(tmp_path)
    fb, problems = parse(card, {"device_id": "Room_12", "timezone": "Mars/Olympus",
                                "mqtt": {"url": "http://broker:1883"}, "wifi": {"country": "gb", "ssid": "x",
                                                                              "psk": "short"},
                                "ssh_keys": ["ssh-ed25519 notbase64!"], "retention_days": -1, "source": "../etc/x"})
    assert keys(problems) == ["profile", "device_id", "timezone", "retention_days", "source", "mqtt.url",
                              "wifi.country", "wifi.psk", "ssh_keys[0]"]
    assert all(p.fix for p in problems)


@pytest.mark.parametrize("device", ["Room12", "room_12", "-room", "room-", "a" * 64, "", "room 12", "rôom"])
def test_device_id_must_be_a_host_name(tmp_path, device):
    _, problems = parse(make_card(tmp_path), {**GOOD, "device_id": device})
    assert keys(problems) == ["device_id"]


@pytest.mark.parametrize("url", ["http://broker", "mqtt://", "broker:1883", "mqtt://h:99999", "mqtt://h/a+b",
                                 "mqtt://user:pw@192.0.2.1"])
def test_bad_mqtt_urls_are_refused(tmp_path, url):
    _, problems = parse(make_card(tmp_path), {**GOOD, "mqtt": {"url": url}})
    assert keys(problems) == ["mqtt.url"]
    assert "mqtt://HOST" in problems[0].fix or "password" in problems[0].message


def test_the_time_zone_must_exist_in_the_images_zoneinfo(tmp_path):
    card = make_card(tmp_path)
    assert parse(card, {**GOOD, "timezone": "America/New_York"})[1] == []
    for tz in ("Europe/Paris", "../../etc/passwd", "Europe/London/", "/Europe/London"):
        _, problems = parse(card, {**GOOD, "timezone": tz})
        assert keys(problems) == ["timezone"], tz


def test_files_named_must_be_on_the_boot_partition(tmp_path):
    card = make_card(tmp_path)
    for name in ("/etc/shadow", "../root/x", "missing.mp4"):
        _, problems = parse(card, {**GOOD, "source": name})
        assert keys(problems) == ["source"], name
    (card.boot / "clip.mp4").write_bytes(b"\0" * 10)
    fb, problems = parse(card, {**GOOD, "source": "clip.mp4"})
    assert problems == [] and fb.source == "clip.mp4"
    (card.boot / "big.txt").write_bytes(b"x" * 5000)
    _, problems = parse(card, {**GOOD, "mqtt": {**GOOD["mqtt"], "password_file": "big.txt"}})
    assert keys(problems) == ["mqtt.password_file"]


def test_ssh_keys_are_checked_line_by_line(tmp_path):
    card = make_card(tmp_path)
    fb, problems = parse(card, {**GOOD, "ssh_keys": ed25519_key()})     # one line, not a list
    assert problems == [] and len(fb.ssh_keys) == 1
    rsa_labelled = ed25519_key().replace("ssh-ed25519", "ssh-rsa", 1)   # the type in the blob differs
    bad = ["ssh-dss AAAA", 'command="x" ' + ed25519_key(), rsa_labelled, "ssh-ed25519 AAAA\nssh-rsa", 5]
    _, problems = parse(card, {**GOOD, "ssh_keys": bad})
    assert keys(problems) == [f"ssh_keys[{i}]" for i in range(5)]
    _, problems = parse(card, {**GOOD, "ssh_keys": [ed25519_key(seed=i) for i in range(33)]})
    assert keys(problems) == ["ssh_keys"]


def test_wifi_settings(tmp_path):
    card = make_card(tmp_path)
    fb, problems = parse(card, {**GOOD, "wifi": {"country": "DE", "ssid": "Café Wi-Fi", "psk": "a" * 64,
                                                 "hidden": True}})
    assert problems == [] and fb.wifi.hidden and fb.wifi.ssid == "Café Wi-Fi"
    for wifi, key in (({"country": "GB", "ssid": "x" * 33, "psk": "password1"}, "wifi.ssid"),
                      ({"country": "GB", "ssid": "x", "psk": "p" * 64}, "wifi.psk"),        # 64, not hex
                      ({"country": "GB", "ssid": "x", "psk": "pässword1"}, "wifi.psk"),     # not ASCII
                      ({"country": "GB", "psk": "password1"}, "wifi.ssid"),
                      ({"country": "GB", "ssid": "x", "psk": "password1", "hidden": "yes"}, "wifi.hidden")):
        _, problems = parse(card, {**GOOD, "wifi": wifi})
        assert keys(problems) == [key], wifi


def test_extra_takes_a_list_or_a_mapping_like_set(tmp_path):
    card = make_card(tmp_path)
    fb, _ = parse(card, {**GOOD, "extra": ["runtime.interval_s=30", "runtime.loop=true"]})
    assert fb.extra == ("runtime.interval_s=30", "runtime.loop=true")
    fb, _ = parse(card, {**GOOD, "extra": {"runtime": {"interval_s": 30, "class_prior": "balanced"}}})
    assert fb.extra == ("runtime.interval_s=30", 'runtime.class_prior="balanced"')
    _, problems = parse(card, {**GOOD, "extra": ["interval_s=30", "x"]})
    assert keys(problems) == ["extra[1]", "extra.interval_s"]
    _, problems = parse(card, {**GOOD, "extra": "runtime.interval_s=30"})
    assert keys(problems) == ["extra"]


@pytest.mark.parametrize("data", [None, [], "profile: x", 5])
def test_a_file_that_is_not_a_mapping(tmp_path, data):
    fb, problems = parse(make_card(tmp_path), data)
    assert fb is None and keys(problems) == ["(top level)"]


def test_hostile_text_values_are_bounded(tmp_path):
    card = make_card(tmp_path)
    _, problems = parse(card, {**GOOD, "purpose": "x" * 10_000, "room": "a\nb", "jurisdiction": {"a": 1}})
    assert keys(problems) == ["room", "purpose", "jurisdiction"]
    assert all(len(p.line()) < 400 for p in problems)
