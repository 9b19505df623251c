"""``emoedge bench fleet --simulate`` (emoedge.benchmarks.fleet_load and its fleet_load_* modules): the
arithmetic on fixed numbers (percentiles, lag, exactly-once accounting, CPU from /proc), the simulated
devices' payloads as the store accepts them, and small real runs through a real Mosquitto into real
``emoedge fleet serve`` workers and SQLite: every interval stored exactly once (a worker SIGKILLed and
restarted on the way), the outage burst, the report with every field. No timing is asserted."""

from __future__ import annotations

import json
import random

import pytest
from mqtt_broker import need_mosquitto

from emoedge.benchmarks.fleet_load_devices import SimDevice, make_payload, read_side_table, write_side_table
from emoedge.benchmarks.fleet_load_report import REQUIRED, passed, render_markdown, targets, write_load_report
from emoedge.benchmarks.fleet_load_stats import account, lag_stats, per_interval_ms, percentile, proc_cpu_s, rate_per_s
from emoedge.core.errors import BadInputError
from emoedge.fleet.payload import parse_interval


def test_percentile_interpolates_between_closest_ranks_as_numpy_does():
    xs = [10.0, 1.0, 4.0, 3.0, 2.0]
    assert percentile(xs, 50) == 3.0
    assert percentile(xs, 0) == 1.0 and percentile(xs, 100) == 10.0
    assert percentile(xs, 95) == pytest.approx(8.8)          # numpy.percentile([1,2,3,4,10], 95)
    assert percentile(xs, 99) == pytest.approx(9.76)
    assert percentile([7.0], 99) == 7.0 and percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(xs, 101)


def test_lag_is_received_minus_published_over_ids_in_both():
    published = {f"r-{k}": 1_000_000_000 * k for k in range(1, 101)}
    received = {i: t + (k + 1) * 10_000_000 for k, (i, t) in enumerate(published.items())}   # 10 ms .. 1000 ms
    received["other-1"] = 5                                  # never published: not a lag
    lag = lag_stats(published, received)
    assert lag.count == 100
    assert lag.p50_s == pytest.approx(0.505) and lag.p95_s == pytest.approx(0.9505)
    assert lag.p99_s == pytest.approx(0.9901) and lag.max_s == pytest.approx(1.0)
    assert lag.mean_s == pytest.approx(0.505)
    empty = lag_stats({}, received)
    assert empty.count == 0 and empty.p99_s is None and set(empty.to_dict()) >= {"p50_s", "p95_s", "p99_s"}


def test_accounting_is_exactly_once_only_when_every_id_is_stored_once_and_nothing_else():
    ok = account({"a-1", "a-2"}, ["a-1", "a-2"])
    assert ok.exactly_once and ok.to_dict()["exactly_once"]
    twice = account({"a-1", "a-2"}, ["a-1", "a-2", "a-2"])
    assert not twice.exactly_once and twice.rows == 3 and twice.distinct == 2
    lost = account({"a-1", "a-2", "a-3"}, ["a-1"])
    assert not lost.exactly_once and lost.missing == 2 and lost.missing_examples == ("a-2", "a-3")
    extra = account({"a-1"}, ["a-1", "b-1"])
    assert not extra.exactly_once and extra.unexpected == 1


def test_rate_and_cpu_per_interval():
    assert rate_per_s(100, 0, 2_000_000_000) == 50.0
    assert rate_per_s(0, 0, 1) is None and rate_per_s(5, 3, 3) is None and rate_per_s(5, None, 3) is None
    assert per_interval_ms(2.0, 1000) == 2.0 and per_interval_ms(None, 5) is None and per_interval_ms(1.0, 0) is None


def test_proc_cpu_is_utime_plus_stime_and_children_on_request(tmp_path):
    import os

    ticks = os.sysconf("SC_CLK_TCK")
    (tmp_path / "42").mkdir()
    # pid (comm with ) and spaces) state ppid ... field 14 utime, 15 stime, 16 cutime, 17 cstime
    rest = ["S", "1"] + ["0"] * 9 + [str(3 * ticks), str(ticks), str(2 * ticks), str(ticks)] + ["0"] * 30
    (tmp_path / "42" / "stat").write_text("42 (a) b c) " + " ".join(rest) + "\n")
    assert proc_cpu_s(42, tmp_path) == pytest.approx(4.0)
    assert proc_cpu_s(42, tmp_path, children=True) == pytest.approx(7.0)
    assert proc_cpu_s(43, tmp_path) is None
    assert proc_cpu_s(os.getpid()) is not None


def test_simulated_payloads_are_what_the_store_accepts_with_run_seq_ids():
    dev = SimDevice("ld1-00001", "room-01", client=None)
    rng = random.Random(1)
    ids = []
    for _ in range(3):
        interval_id, body = make_payload(dev, "ferplus7", 1.0, rng, 1_700_000_000_000_000_000)
        row = parse_interval("ld1-00001", body)
        assert row["interval_id"] == interval_id and row["room"] == "room-01"
        assert sum(row["share"].values()) == pytest.approx(1.0, abs=1e-3)
        assert json.loads(body)["schema"] == 1
        ids.append(interval_id)
    assert ids == [f"{dev.run_id}-{k:06d}" for k in (1, 2, 3)]


def test_side_table_round_trip_keeps_the_first_publish_of_an_id(tmp_path):
    p = tmp_path / "published-0.run"
    write_side_table([("a-1", 5), ("a-2", 6)], p)
    write_side_table([("a-1", 9)], p)
    assert read_side_table([p, tmp_path / "absent"]) == {"a-1": 5, "a-2": 6}


def _fake_result(lag_p99=0.5, exactly=True, killed=True, errors=()):
    acc = {"published": 10, "rows": 10 if exactly else 9, "distinct": 10 if exactly else 9, "missing": 0 if exactly
           else 1, "unexpected": 0, "missing_examples": [], "exactly_once": exactly}
    cpu = {k: 0.1 for k in ("workers_s", "broker_s", "postgresql_s", "devices_s", "workers_ms_per_interval",
                            "broker_ms_per_interval", "postgresql_ms_per_interval", "devices_ms_per_interval")}
    lag = {"count": 10, "p50_s": 0.1, "p95_s": 0.2, "p99_s": lag_p99, "max_s": lag_p99, "mean_s": 0.1}
    res = {"machine": {"cpu": "x", "cores": 2, "git_revision": "abc"}, "date": "d",
           "config": {"devices": 2, "rate_hz": 1.0, "seconds": 5.0, "workers": 1, "burst": 0, "prefill_rows": 0},
           "connected": 2, "errors": list(errors), "prefill": None, "burst": None, "page": None,
           "steady": {"accounting": acc, "cpu": cpu, "lag": lag, "ingest_rate_per_s": 2.0, "seconds": 5.0,
                      "killed": {"worker": 0, "at_s": 2, "exit_code": -9, "restarted_at_s": 5} if killed else None},
           "store": {"kind": "sqlite", "size_bytes": 1000, "counters": {}},
           "workers": {"share_group": None, "lives": [2], "exit_codes": [[-9, 0]]}}
    res["targets"] = targets(res)
    return res


def test_targets_and_the_exit_status_follow_the_issue():
    good = _fake_result()
    assert good["targets"]["steady_exactly_once"] and good["targets"]["killed_worker_lost_nothing"]
    assert good["targets"]["lag_p99_under_5_s"] and good["targets"]["burst_exactly_once"] is None
    assert passed(good)
    assert not passed(_fake_result(lag_p99=5.5)) and not passed(_fake_result(exactly=False))
    assert not passed(_fake_result(errors=["devices failed"]))
    assert _fake_result(killed=False)["targets"]["killed_worker_lost_nothing"] is None
    md = render_markdown(_fake_result(exactly=False), "emoedge bench fleet --simulate 2")
    assert "NOT exactly once" in md and "**MISSED**" in md


def test_bad_options_are_refused_naming_the_option():
    from emoedge.benchmarks.fleet_load import LoadConfig

    with pytest.raises(BadInputError, match="--simulate"):
        LoadConfig(devices=0).check()
    with pytest.raises(BadInputError, match="--rate-hz"):
        LoadConfig(devices=2, rate_hz=0).check()
    with pytest.raises(BadInputError, match="--kill-worker-at"):
        LoadConfig(devices=2, seconds=5, kill_worker_at_s=9).check()


def test_cli_parses_the_simulate_options():
    from emoedge.cli import build_parser

    args = build_parser().parse_args(["bench", "fleet", "--simulate", "20", "--rate-hz", "2", "--seconds", "5",
                                      "--workers", "2", "--db", "auto", "--burst", "50", "--kill-worker-at", "2",
                                      "--prefill-rows", "100", "--out", "x"])
    assert (args.simulate, args.rate_hz, args.seconds, args.workers, args.db, args.burst, args.kill_worker_at,
            args.prefill_rows) == (20, 2.0, 5.0, 2, "auto", 50, 2.0, 100)
    plain = build_parser().parse_args(["bench", "fleet"])
    assert plain.simulate is None and plain.seconds is None


def _run(tmp_path, **kw):
    need_mosquitto()
    from emoedge.benchmarks.fleet_load import LoadConfig, bench_fleet_load
    from emoedge.benchmarks.fleet_load_workers import has_share_group

    workers = kw.pop("workers", 2 if has_share_group() else 1)
    res = bench_fleet_load(LoadConfig(db=str(tmp_path / "fleet.sqlite"), workers=workers, **kw))
    md = write_load_report(res, tmp_path / "out", "emoedge bench fleet --simulate test").read_text()
    assert not res["errors"], res["errors"]
    assert set(REQUIRED) <= set(res) and (tmp_path / "out" / "fleet-load.json").is_file()
    return res, md


def test_small_run_every_interval_stored_exactly_once_with_a_worker_killed(tmp_path):
    res, md = _run(tmp_path, devices=20, rate_hz=2.0, seconds=5.0, kill_worker_at_s=2.0, restart_after_s=1.0)
    s = res["steady"]
    assert res["connected"] == 20
    assert s["accounting"]["exactly_once"] and s["accounting"]["published"] >= 150, s["accounting"]
    d = s["device_stats"]
    assert d["unacknowledged"] == 0 and d["acknowledged"] == s["accounting"]["published"]
    assert s["killed"]["exit_code"] == -9 and res["workers"]["lives"][0] == 2
    assert s["lag"]["count"] == s["accounting"]["published"] and s["lag"]["p50_s"] <= s["lag"]["p99_s"]
    assert s["ingest_rate_per_s"] > 0 and s["cpu"]["workers_s"] > 0 and s["cpu"]["workers_ms_per_interval"] > 0
    assert res["store"]["size_bytes"] > 0 and res["store"]["counters"]["stored"] == s["accounting"]["published"]
    assert set(res["page"]["pages"]) == {"/", "/summary.json"}
    assert res["targets"]["steady_exactly_once"] and res["targets"]["killed_worker_lost_nothing"]
    assert "every one, exactly once" in md and "SIGKILLed" in md and "p99" in md
    saved = json.loads((tmp_path / "out" / "fleet-load.json").read_text())
    assert saved["steady"]["accounting"] == s["accounting"]


def test_burst_after_an_outage_all_stored_none_twice(tmp_path):
    res, md = _run(tmp_path, devices=10, seconds=0.0, burst=300)        # 2 workers in a shared group where it exists
    b = res["burst"]
    assert res["steady"] is None
    assert b["accounting"]["published"] == 300 and b["accounting"]["exactly_once"], b["accounting"]
    assert b["drain_s"] >= 0 and res["targets"]["burst_exactly_once"]
    assert "Burst of 300" in md and "Drained in" in md


def test_db_auto_starts_a_postgresql_and_every_interval_is_stored_once_there(tmp_path):
    need_mosquitto()
    from pg_server import need_postgresql

    from emoedge.benchmarks.fleet_load import LoadConfig, bench_fleet_load
    from emoedge.benchmarks.fleet_load_workers import has_postgres

    need_postgresql()
    if not has_postgres():
        pytest.skip("this revision's fleet store has no postgresql backend")
    res = bench_fleet_load(LoadConfig(devices=10, rate_hz=2.0, seconds=3.0, burst=100, db="auto"))
    assert not res["errors"], res["errors"]
    assert res["store"]["kind"] == "postgresql" and res["store"]["started_here"] and res["store"]["size_bytes"] > 0
    assert res["steady"]["accounting"]["exactly_once"] and res["burst"]["accounting"]["exactly_once"]
    assert res["steady"]["cpu"]["postgresql_s"] > 0


def test_prefill_shape_makes_whole_school_days_at_up_to_a_thousand_devices():
    from emoedge.benchmarks.fleet_load_page import prefill_shape

    assert prefill_shape(17_000_000) == (1000, 177)           # 16.99 million intervals
    assert prefill_shape(100_000) == (1000, 1) and prefill_shape(200) == (2, 1) and prefill_shape(1) == (1, 1)


def test_a_prefilled_store_is_timed_and_its_rows_do_not_count_as_unexpected(tmp_path):
    import importlib.util

    res, md = _run(tmp_path, devices=5, rate_hz=2.0, seconds=2.0, prefill_rows=200, workers=1)
    if importlib.util.find_spec("emoedge.fleet.prefill") is None:
        assert not res["prefill"]["done"] and "prefill" in res["prefill"]["reason"]
    else:
        assert res["prefill"]["done"] and res["prefill"]["result"]["intervals"] > 0
        assert f"intervals ({res['prefill']['devices']} devices x" in md
    assert res["steady"]["accounting"]["exactly_once"], res["steady"]["accounting"]
    assert set(res["page"]["pages"]) == {"/", "/summary.json"} and not res["page"].get("errors")
    assert res["targets"]["page_p95_under_1_s"] is not None and "## Page" in md


def test_options_of_one_mode_are_refused_in_the_other(tmp_path):
    from emoedge.cli import main

    assert main(["bench", "fleet", "--burst", "5", "--out", str(tmp_path)]) == 2          # no --simulate
    assert main(["bench", "fleet", "--simulate", "2", "--mqtt", "mqtt://127.0.0.1:1/x", "--out", str(tmp_path)]) == 2
    assert main(["bench", "fleet", "--simulate", "0", "--out", str(tmp_path)]) == 2
    assert not (tmp_path / "fleet-load.json").exists()


def test_the_command_writes_the_report_and_exits_0_when_every_target_measured_is_met(tmp_path, capsys):
    need_mosquitto()
    from emoedge.cli import main

    code = main(["bench", "fleet", "--simulate", "5", "--rate-hz", "2", "--seconds", "2", "--db",
                 str(tmp_path / "fleet.sqlite"), "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr()
    saved = json.loads((tmp_path / "out" / "fleet-load.json").read_text())
    assert saved["steady"]["accounting"]["exactly_once"] and saved["command"].startswith("emoedge")
    assert "# A district's load on the fleet path: 5 simulated devices" in capsys.readouterr().out
