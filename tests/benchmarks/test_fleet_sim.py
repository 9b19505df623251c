"""The fleet benchmark (emoedge.benchmarks.fleet_sim): two devices through a real Mosquitto, every interval arrives
once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mqtt_broker import need_mosquitto


@pytest.mark.skipif(not (Path(os.environ.get("EMOEDGE_SHARED", Path(__file__).resolve().parents[3] / "shared"))
                         / "media" / "short_hamilton_clip.mp4").is_file(), reason="the shared clip is absent")
def test_bench_fleet_two_devices_every_interval_arrives_once(tmp_path):
    need_mosquitto()
    from emoedge.benchmarks.fleet_sim import bench_fleet, write_fleet_report
    from emoedge.benchmarks.soak import default_source

    res = bench_fleet(tmp_path, devices=2, seconds=5, source=default_source())
    md = write_fleet_report(res, tmp_path).read_text()
    assert res["intervals_in"] >= 6 and res["intervals_in"] == res["intervals_out"] and not res["missing"]
    assert all(d["exit_code"] == 0 and d["mqtt"]["unsent"] == 0 for d in res["per_device"].values())
    assert "every one, once" in md and res["publisher_cpu_ms_per_interval_mean"] > 0
