"""The apply step of the first boot (emoedge.edge.deployment.firstboot_apply): a plan executed all at once,
and the system files' contents (hosts, WPA key, wpa_supplicant, authorized_keys)."""

import os

import pytest
from firstboot_cards import ed25519_key

from emoedge.core.errors import WriteError
from emoedge.edge.deployment.firstboot_apply import (
    Link,
    Plan,
    authorized_keys_text,
    execute,
    hosts_text,
    plan_system,
    user_ids,
    wpa_conf,
    wpa_psk,
)
from emoedge.edge.deployment.firstboot_schema import WifiSettings


def test_the_wpa_key_is_what_wpa_passphrase_computes():
    # IEEE 802.11i-2004, annex H.4.1 test vectors (as wpa_passphrase prints them)
    assert wpa_psk("IEEE", "password") == "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
    assert wpa_psk("ThisIsASSID", "ThisIsAPassword") == \
        "0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af"
    assert wpa_psk("x", "A" * 64) == "a" * 64                      # a key given as 64 hex digits is kept


def test_wpa_supplicant_conf_never_holds_the_passphrase_and_quotes_nothing():
    ssid = 'Café "Wi-Fi"\\'
    text = wpa_conf("GB", ssid, "correct horse", hidden=True)
    assert "correct horse" not in text and "country=GB" in text and "scan_ssid=1" in text
    assert "ssid=" + ssid.encode().hex() in text


def test_hosts_keeps_other_lines_and_sets_one_127_0_1_1():
    old = "127.0.0.1 localhost\n127.0.1.1 debian # old\n::1 localhost\n10.0.0.5 nas\n"
    new = hosts_text(old, "room12-sensor")
    assert new.splitlines() == ["127.0.0.1 localhost", "127.0.1.1\troom12-sensor", "::1 localhost", "10.0.0.5 nas"]
    assert hosts_text("", "a").splitlines() == ["127.0.0.1\tlocalhost", "127.0.1.1\ta"]


def test_authorized_keys_keeps_keys_added_by_hand():
    k1, k2, hand = ed25519_key("a", 1), ed25519_key("b", 2), ed25519_key("by-hand", 3)
    first = authorized_keys_text(hand + "\n", [k1])
    assert first.splitlines()[0] == hand and k1 in first
    second = authorized_keys_text(first, [k2])
    assert hand in second and k2 in second and k1 not in second
    assert authorized_keys_text(second, []) == hand + "\n"


def test_execute_writes_links_and_removes_under_the_root(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/old").write_text("x")
    plan = Plan()
    plan.write("/etc/a/b.conf", "hello\n", 0o600)
    plan.links.append(Link("/etc/localtime", "/usr/share/zoneinfo/UTC"))
    plan.removes.append("/etc/old")
    plan.dirs.append(("/data/emoedge", None, 0o750))
    execute(plan, tmp_path)
    assert (tmp_path / "etc/a/b.conf").read_text() == "hello\n"
    assert (tmp_path / "etc/a/b.conf").stat().st_mode & 0o777 == 0o600
    assert os.readlink(tmp_path / "etc/localtime") == "/usr/share/zoneinfo/UTC"
    assert not (tmp_path / "etc/old").exists() and (tmp_path / "data/emoedge").is_dir()
    execute(plan, tmp_path)                                          # again: links replaced, not refused
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == ["a", "localtime"]


def test_an_owner_the_image_lacks_is_refused_before_anything_moves(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nemoedge:x:999:998::/:/bin/false\n")
    assert user_ids(tmp_path, "emoedge") == (999, 998) and user_ids(tmp_path, "nobody") is None
    if os.geteuid() != 0:
        pytest.skip("ownership is set only when run as root (on the box)")
    plan = Plan()
    plan.write("/etc/x", "1")
    plan.write("/etc/emoedge/pw", "2", 0o600, "nosuchuser")
    with pytest.raises(WriteError, match="nosuchuser"):
        execute(plan, tmp_path)
    assert not (tmp_path / "etc/x").exists() and list((tmp_path / "etc/emoedge").iterdir()) == []


def test_plan_system_removes_wifi_the_file_no_longer_sets(tmp_path):
    plan = Plan()
    plan_system(plan, tmp_path, "box", "UTC", WifiSettings("GB", "net", "password1"), ())
    execute(plan, tmp_path)
    assert (tmp_path / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf").stat().st_mode & 0o777 == 0o600
    network = (tmp_path / "etc/systemd/network/50-emoedge-wlan0.network").read_text().split()
    assert {"DHCP=yes", "MulticastDNS=yes"} <= set(network)          # DEVICE.local over Wi-Fi too
    wants = tmp_path / "etc/systemd/system/multi-user.target.wants"
    assert os.readlink(wants / "wpa_supplicant@wlan0.service") == "/lib/systemd/system/wpa_supplicant@.service"
    plan = Plan()
    plan_system(plan, tmp_path, "box", None, None, ())
    execute(plan, tmp_path)
    assert not (tmp_path / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf").exists()
    assert not (wants / "wpa_supplicant@wlan0.service").exists()
    assert os.readlink(tmp_path / "etc/localtime") == "/usr/share/zoneinfo/UTC"   # not in the file: kept
    assert not (tmp_path / "root/.ssh").exists()                      # no keys, none before: nothing written
