"""The PostgreSQL fleet store's URL and credentials (emoedge.fleet.pg_store): what a --db URL may hold (no password),
exit 2 for a bad URL, exit 3 for a server that cannot be reached, a local socket, the CLI on a PostgreSQL store."""

from __future__ import annotations

import pg_server as pg
import pytest
from fleet_data import fill

from emoedge.cli import main
from emoedge.core.errors import BadInputError
from emoedge.fleet import FleetStore, StoreUnavailable, open_store
from emoedge.fleet.pg_store import parse_url, read_password

pg_server = pg.pg_server      # the fixture


def test_urls_become_libpq_parameters():
    assert parse_url("postgresql://fleet@db.school.lan:5433/emoedge") == {
        "dbname": "emoedge", "host": "db.school.lan", "user": "fleet", "port": "5433"}
    assert parse_url("postgres://fleet@localhost/emoedge?host=/run/postgresql&sslmode=require") == {
        "dbname": "emoedge", "host": "/run/postgresql", "user": "fleet", "sslmode": "require"}
    assert parse_url("postgresql://fleet@[::1]:5432/e")["host"] == "::1"
    assert parse_url("postgresql:///e?host=/tmp/pg") == {"dbname": "e", "host": "/tmp/pg"}


@pytest.mark.parametrize("url, why", [
    ("postgresql://fleet:secret@db/emoedge", "password"), ("postgresql://fleet@db/emoedge?password=x", "password"),
    ("postgresql://fleet@db:99999/emoedge", "Port"), ("postgresql://fleet@db:abc/emoedge", "Port"),
    ("postgresql://fleet@db/", "database name"), ("postgresql://fleet@db/a/b", "database name"),
    ("postgresql://fleet@db/e?options=-c%20x", "options"),
    ("postgresql://fleet@db/e?host=a&host=b&sslmode=", "sslmode"), ("postgresql://f:secret@db:5/e", "password"),
    ("postgresql://f@db/e?PASSWORD=secret", "PASSWORD"),
    ("postgresql://fleet@db/e#frag", "fragment"), ("postgresql://fleet@db/e\n", "control"),
    ("postgresql://fleet@/e", "no host"), ("postgresql://" + "a" * 3000, "characters"),
])
def test_bad_urls_are_refused_naming_why(url, why):
    with pytest.raises(BadInputError, match=why) as e:
        parse_url(url)
    assert e.value.exit_code == 2 and "secret" not in str(e.value)


def test_the_cli_refuses_a_bad_url_or_another_scheme_with_exit_2(tmp_path, capsys):
    assert main(["fleet", "export", "--db", "postgresql://u:pw@h/d", "--csv", str(tmp_path / "x.csv")]) == 2
    assert main(["fleet", "page", "--db", "mysql://u@h/d", "--out", str(tmp_path / "x.html")]) == 2
    assert main(["fleet", "page", "--db", str(tmp_path / "x.sqlite"), "--db-password-file", str(tmp_path / "pw"),
                 "--out", str(tmp_path / "x.html")]) == 2           # no such file: reading does not create one
    assert "password" in capsys.readouterr().err


def test_password_files(tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    assert read_password(tmp_path / "pw") == "s3cret"
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "big").write_bytes(b"x" * 10_000)
    for name in ("empty", "big", "missing"):
        with pytest.raises(BadInputError, match=name):
            read_password(tmp_path / name)
    import os

    os.mkfifo(tmp_path / "fifo")            # a FIFO hung, /dev/zero ate memory: both refused at once
    for path in (tmp_path / "fifo", "/dev/zero"):
        with pytest.raises(BadInputError, match="not a regular file"):
            read_password(path)


def test_a_server_that_cannot_be_reached_is_exit_3():
    from mqtt_broker import free_port

    pg.need_postgresql()
    with pytest.raises(StoreUnavailable, match="cannot connect") as e:
        open_store(f"postgresql://nobody@127.0.0.1:{free_port()}/x?connect_timeout=2")
    assert e.value.exit_code == 3


def test_a_store_over_the_local_socket_and_the_cli(pg_server, tmp_path):
    pg_server.new_db()
    url = pg_server.new_db()
    store = FleetStore(url.rsplit("/", 1)[0].replace("127.0.0.1", "localhost") + "/" + url.rsplit("/", 1)[1]
                       + f"?host={pg_server.folder}")
    assert store.dialect == "postgresql"
    fill(store)
    assert main(["fleet", "page", "--db", url, "--out", str(tmp_path / "p.html"), "--per-page", "2"]) == 0
    html = (tmp_path / "p.html").read_text()
    assert "3 devices, 60 intervals" in html and "devices page 1 of 2" in html
    assert main(["fleet", "export", "--db", url, "--csv", str(tmp_path / "f.csv"), "--from", "2026-09-21",
                 "--to", "2026-09-21"]) == 0
    assert len((tmp_path / "f.csv").read_text().splitlines()) == 61
    assert main(["fleet", "export", "--db", url, "--csv", str(tmp_path / "g.csv"), "--from", "2027-01-01"]) == 0
    assert len((tmp_path / "g.csv").read_text().splitlines()) == 1
    assert main(["fleet", "export", "--db", url, "--csv", str(tmp_path / "h.csv"), "--from", "2027-02-30"]) == 2
