"""``emoedge fleet serve|page|export`` (emoedge.cli.fleet): --db as a path or a postgresql:// URL, the worker and
mutual TLS flags handed to FleetSubscriber, bad input as exit 2 before anything connects."""

from __future__ import annotations

import pytest

from emoedge.cli import main


class _Sub:
    """Stands in for FleetSubscriber: records its arguments, connects to nothing."""
    seen: dict = {}

    def __init__(self, target, store, **kw):
        _Sub.seen = {"target": target, "store": store, **kw}
        self.counts = {"stored": 0, "duplicate": 0, "conflict": 0, "status": 0, "rejected": 0, "failed": 0}

    def start(self, timeout_s):
        pass

    def stop(self):
        pass


def test_serve_hands_the_worker_and_tls_flags_to_the_subscriber(tmp_path, monkeypatch, capsys):
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (pip install -e '.[fleet]')")
    import emoedge.fleet as fleet

    monkeypatch.setattr(fleet, "FleetSubscriber", _Sub)
    code = main(["fleet", "serve", "--mqtt", "mqtt://127.0.0.1:1883/school", "--db", str(tmp_path / "f.sqlite"),
                 "--share-group", "fleet", "--mqtt-cert-file", "c.pem", "--mqtt-key-file", "k.pem",
                 "--ca-file", "ca.pem", "--http-port", "0", "--seconds", "0.1", "--client-id", "w1"])
    assert code == 0
    kw = _Sub.seen
    assert (kw["share_group"], kw["cert_file"], kw["key_file"], kw["ca_file"], kw["client_id"]) == (
        "fleet", "c.pem", "k.pem", "ca.pem", "w1")
    assert kw["store"].dialect == "sqlite" and "shared subscription group fleet" in capsys.readouterr().out


@pytest.mark.parametrize("db", ["postgresql://u:secret@db/fleet", "postgresql://u@db:0x/fleet", "mysql://u@db/fleet"])
def test_serve_refuses_a_bad_db_with_exit_2_before_connecting(db, capsys):
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (pip install -e '.[fleet]')")
    assert main(["fleet", "serve", "--mqtt", "mqtt://127.0.0.1:1/school", "--db", db, "--seconds", "0.1"]) == 2
    assert "secret" not in capsys.readouterr().err


def test_page_and_export_say_a_missing_file_and_bad_dates(tmp_path, capsys):
    assert main(["fleet", "page", "--db", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "p.html")]) == 2
    assert "no such fleet store" in capsys.readouterr().err
    assert main(["fleet", "export", "--db", str(tmp_path / "f.sqlite"), "--csv", str(tmp_path / "x.csv")]) == 2
    assert not (tmp_path / "f.sqlite").exists()                         # reading creates no store
    (tmp_path / "f.sqlite").write_bytes(b"")
    assert main(["fleet", "export", "--db", str(tmp_path / "f.sqlite"), "--csv", str(tmp_path / "x.csv"),
                 "--from", "yesterday"]) == 2
    assert main(["fleet", "page", "--db", str(tmp_path / "f.sqlite"), "--out", str(tmp_path / "p.html"),
                 "--per-page", "100000"]) == 2
    assert main(["fleet", "page", "--db", str(tmp_path / "f.sqlite"), "--out", str(tmp_path / "p.html"),
                 "--per-page", "2", "--from", "2026-09-01", "--to", "2026-09-30"]) == 0
    assert "0 devices, 0 intervals" in (tmp_path / "p.html").read_text()
