"""The fleet page (emoedge.fleet.page): rooms, devices, health and drift (on SQLite and PostgreSQL), and the page in a
real headless Chromium."""

from __future__ import annotations

import shutil
import subprocess

import pg_server as pg
import pytest
from fleet_data import T0, fill

from emoedge.fleet import FleetStore, FleetWeb, render_page

pg_server, store_spec = pg.pg_server, pg.store_spec      # the fixtures: a PostgreSQL server, then a store on each
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_page_shows_rooms_devices_health_and_drift(store_spec):
    store = FleetStore(store_spec)
    fill(store)
    page = render_page(store.summary(), now_ns=T0 + 20 * 60_000_000_000)
    assert "3 devices, 60 intervals" in page and "room room-a" in page and "room room-b" in page
    assert page.count("<svg") == 1 + 2 + 3                                # the fleet, 2 rooms, 3 devices
    assert page.count('<polyline data-label="sad"') == 6
    rows = {d: page.split(f'data-device="{d}"')[1].split("</tr>")[0] for d in ("a1", "a2", "b1")}
    assert 'class="off">offline' in rows["a2"] and 'class="on">online' in rows["a1"]
    drift = {d: float(r.split("<td>")[-1].split("<")[0]) for d, r in rows.items()}
    assert drift["b1"] > 3 * drift["a1"]                                  # the drifting device stands out
    with pytest.raises(Exception):                                        # noqa: B017 (no script at all)
        page.index("<script")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium; .ci/run does)")
def test_page_in_a_real_headless_browser(tmp_path):
    store = FleetStore(tmp_path / "fleet.sqlite")
    fill(store)
    web = FleetWeb(store, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{web.port}/"
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars"]
    try:
        dom = subprocess.run(common + ["--dump-dom", url], capture_output=True, text=True, timeout=90)
        shot = tmp_path / "fleet.png"
        subprocess.run(common + [f"--screenshot={shot}", "--window-size=1200,1400", url], capture_output=True,
                       timeout=90)
    finally:
        web.stop()
    assert "3 devices, 60 intervals" in dom.stdout, dom.stderr[-1000:]
    assert dom.stdout.count("<polyline") == 6 * 4                         # 6 charts x 4 labels, as rendered
    assert shot.is_file() and shot.stat().st_size > 20_000
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (1400, 1200)
    assert (img < 250).any(axis=2).mean() > 0.02                          # something was drawn, not a blank page
