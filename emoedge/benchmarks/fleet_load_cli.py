"""``emoedge bench fleet --simulate N``'s options and command (registered by the bench command's fleet
parser): the district's load (:mod:`emoedge.benchmarks.fleet_load`). Only argparse at import; the bench
is imported when it runs."""

from __future__ import annotations

import sys
from pathlib import Path

DEFAULT_OUT = "docs/benchmarks/fleet-load"


def add_load_options(p) -> None:
    g = p.add_argument_group("simulated devices (--simulate)")
    g.add_argument("--simulate", type=int, metavar="N",
                   help="N simulated devices (one MQTT connection each, a few processes) instead of emoedge run")
    g.add_argument("--rate-hz", type=float, default=1.0, help="intervals per second per simulated device")
    g.add_argument("--workers", type=int, default=1, help="emoedge fleet serve workers (a shared subscription)")
    g.add_argument("--db", default="auto", help="the store: a SQLite path, postgresql://..., or auto (a PostgreSQL "
                                               "started here when installed, else SQLite)")
    g.add_argument("--burst", type=int, default=0, help="after the steady run: workers stopped, this many intervals "
                                                      "queued in the broker, workers restarted, the drain timed")
    g.add_argument("--kill-worker-at", type=float, metavar="S",
                   help="SIGKILL worker 0 this many seconds into the steady run (restarted --restart-after s later)")
    g.add_argument("--restart-after", type=float, default=3.0, metavar="S",
                   help="seconds the killed worker stays down")
    g.add_argument("--prefill-rows", type=int, default=0, help="pre-fill the store with this many rows before "
                                                             "(emoedge.fleet.prefill) and time the page on it")
    g.add_argument("--device-processes", type=int, help="processes driving the simulated devices "
                                                        "(default: one per 250 devices, at most one per core)")


LOAD_DEFAULTS = {"rate_hz": 1.0, "workers": 1, "db": "auto", "burst": 0, "kill_worker_at": None, "restart_after": 3.0,
                 "prefill_rows": 0, "device_processes": None}


def check_options(args) -> None:
    """Options of one mode given to the other are refused (BadInputError, exit 2), not silently ignored."""
    from emoedge.core.errors import BadInputError

    if args.simulate is None:
        given = [k for k, v in LOAD_DEFAULTS.items() if getattr(args, k) != v]
        if given:
            raise BadInputError(f"--{given[0].replace('_', '-')} is an option of --simulate N (simulated devices)")
    elif args.mqtt:
        raise BadInputError("--mqtt: --simulate starts its own Mosquitto on 127.0.0.1 (its queues sized for the "
                            "burst); leave --mqtt out")


def run_load(args) -> int:
    """Run the bench from parsed options, write fleet-load.json/.md in --out, print the Markdown; exit 1 when a
    target is missed or a part failed, 0 otherwise (bad options: BadInputError, exit 2)."""
    from emoedge.benchmarks.fleet_load import LoadConfig, bench_fleet_load
    from emoedge.benchmarks.fleet_load_report import passed, write_load_report

    cfg = LoadConfig(devices=args.simulate, rate_hz=args.rate_hz,
                     seconds=300.0 if args.seconds is None else args.seconds, workers=args.workers, db=args.db,
                     burst=args.burst, kill_worker_at_s=args.kill_worker_at,
                     restart_after_s=args.restart_after, prefill_rows=args.prefill_rows,
                     device_processes=args.device_processes)
    res = bench_fleet_load(cfg)
    command = ("emoedge " + " ".join(sys.argv[1:]) if "bench" in sys.argv[1:3]
               else f"emoedge bench fleet --simulate {cfg.devices}")
    md = write_load_report(res, Path(args.out or DEFAULT_OUT), command)
    print(md.read_text())
    for err in res["errors"]:
        print(f"emoedge bench fleet --simulate: {err}", file=sys.stderr)
    return 0 if passed(res) else 1
