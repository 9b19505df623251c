"""Both HTTP servers (the fleet page, a device's /metrics and /health) against DNS rebinding and wide
binds (issue 28): a request whose Host names another site is answered 421; bound to anything but
loopback (`fleet serve --http-host ""` or 0.0.0.0, `runtime.metrics_host=0.0.0.0`), a warning names
the address."""

from __future__ import annotations

import http.client
import logging
import socket

import pytest
from prometheus_client import CollectorRegistry

from emoedge.core.httpguard import host_allowed, is_loopback
from emoedge.edge.runtime.monitor import MetricsServer
from emoedge.fleet import FleetStore, FleetWeb


def _get(port: int, path: str, host: str | None) -> int:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.putrequest("GET", path, skip_host=True)
    if host is not None:
        c.putheader("Host", host)
    c.endheaders()
    status = c.getresponse().status
    c.close()
    return status


def _metrics(host: str = "127.0.0.1") -> MetricsServer:
    return MetricsServer(lambda: {"problems": [], "frames": 1}, CollectorRegistry(), host=host, port=0)


def test_host_rule():
    names = frozenset({"localhost", "sensor-1"})
    for ok in ("localhost", "localhost:8090", "127.0.0.1:9108", "[::1]:8090", "192.168.1.20", "sensor-1:80",
               "LOCALHOST", "localhost."):
        assert host_allowed(ok, names), ok
    for bad in ("evil.example", "evil.example:8090", "127.0.0.1.evil.example", "", None, "localhost.evil"):
        assert not host_allowed(bad, names), bad
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("") and not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")


@pytest.mark.parametrize("server", ["fleet", "metrics"])
def test_a_foreign_host_header_is_refused(server, tmp_path):
    if server == "fleet":
        web = FleetWeb(FleetStore(tmp_path / "f.sqlite"), "127.0.0.1", 0).start()
        port, paths, stop = web.port, ["/", "/summary.json", "/intervals.csv"], web.stop
    else:
        m = _metrics()
        port, paths, stop = m.address[1], ["/metrics", "/health"], m.close
    try:
        for path in paths:
            assert _get(port, path, f"127.0.0.1:{port}") == 200
            assert _get(port, path, f"localhost:{port}") == 200
            assert _get(port, path, f"rebind.evil.example:{port}") == 421      # DNS rebinding
            assert _get(port, path, None) == 421
    finally:
        stop()


@pytest.mark.parametrize("host", ["", "0.0.0.0"])
def test_the_fleet_page_on_every_interface_is_warned_about(host, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="emoedge")
    web = FleetWeb(FleetStore(tmp_path / "f.sqlite"), host, 0)
    web.server.server_close()
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"0.0.0.0:{web.port} (every interface)" in s and "fleet page" in s for s in said), said


def test_the_metrics_endpoint_on_every_interface_is_warned_about(caplog):
    caplog.set_level(logging.WARNING, logger="emoedge")
    m = _metrics("0.0.0.0")
    m.close()
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"0.0.0.0:{m.address[1]}" in s and "runtime.metrics_host" in s for s in said), said


def test_loopback_is_not_warned_about(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="emoedge")
    FleetWeb(FleetStore(tmp_path / "f.sqlite"), "127.0.0.1", 0).server.server_close()
    _metrics().close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_machines_own_name_is_allowed(tmp_path):
    web = FleetWeb(FleetStore(tmp_path / "f.sqlite"), "127.0.0.1", 0).start()
    try:
        assert _get(web.port, "/", f"{socket.gethostname()}:{web.port}") == 200
    finally:
        web.stop()
