"""``emoedge fleet serve|page|export`` -> :mod:`emoedge.fleet` (FleetStore, FleetSubscriber, FleetWeb, render_page)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

from emoedge.cli._common import add_group, add_parser

log = logging.getLogger("emoedge.fleet")


def cmd_fleet_serve(args) -> int:
    """Subscribe and store until interrupted (SIGINT/SIGTERM), serving the page meanwhile."""
    from emoedge.edge.outputs.mqtt import MqttTarget, with_credentials
    from emoedge.fleet import FleetStore, FleetSubscriber, FleetWeb

    target = with_credentials(MqttTarget.parse(args.mqtt), args.username, args.password_file)
    store = FleetStore(args.db)
    sub = FleetSubscriber(target, store, client_id=args.client_id, ca_file=args.ca_file)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sub.start(args.connect_timeout)      # BrokerError (exit 3) when the broker cannot be reached or refuses
    try:
        web = FleetWeb(store, args.http_host, args.http_port).start() if args.http_port is not None else None
    except BaseException:
        sub.stop()
        raise
    print(f"emoedge fleet: storing {target.prefix}/+/intervals from {target} in {store.path}"
          + (f"; page on http://{args.http_host or '0.0.0.0'}:{web.port}/" if web else ""), flush=True)
    try:
        stop.wait(args.seconds) if args.seconds else stop.wait()
    finally:
        sub.stop()
        if web:
            web.stop()
    c = sub.counts
    print(f"emoedge fleet: stored {c['stored']} interval(s), dropped {c['duplicate']} duplicate(s), "
          f"{c['conflict']} conflict(s), rejected {c['rejected']}, {c['status']} status message(s)"
          + (f", {c['failed']} not stored (see the log)" if c["failed"] else ""), flush=True)
    return 0


def cmd_fleet_page(args) -> int:
    from emoedge.fleet import FleetStore, render_page

    if not Path(args.db).is_file():
        print(f"emoedge fleet page: {args.db}: no such fleet store", file=sys.stderr)
        return 2
    Path(args.out).write_text(render_page(FleetStore(args.db).summary()))
    print(f"wrote {args.out}")
    return 0


def cmd_fleet_export(args) -> int:
    from emoedge.fleet import FleetStore

    if not Path(args.db).is_file():
        print(f"emoedge fleet export: {args.db}: no such fleet store", file=sys.stderr)
        return 2
    with open(args.csv, "w", newline="") as fh:
        n = FleetStore(args.db).export_csv(fh)
    print(f"wrote {n} interval(s) to {args.csv}")
    return 0


def register(sub) -> None:
    fleet = add_group(sub, "fleet", "a fleet's interval summaries from an MQTT broker in one SQLite file, and a page",
                      dest="fleet_command")
    p = add_parser(fleet, "serve", "subscribe to PREFIX/+/intervals and /status, store them, serve the page")
    p.add_argument("--mqtt", required=True, help="mqtt://host:port[/prefix] the devices publish to (mqtts:// for TLS)")
    p.add_argument("--db", required=True, help="the fleet's SQLite file (created if missing)")
    p.add_argument("--username", help="broker user name")
    p.add_argument("--password-file", help="file holding the broker password")
    p.add_argument("--ca-file", help="CA certificate(s) to verify the broker's TLS")
    p.add_argument("--client-id", default="emoedge-fleet",
                   help="MQTT client id: the broker keeps this session's queue while the store is down")
    p.add_argument("--http-host", default="127.0.0.1",
                   help="address of the page (default: loopback only; any other address is warned about)")
    p.add_argument("--http-port", type=int, default=8090, help="port of the page (default 8090)")
    p.add_argument("--seconds", type=float, help="stop after this long (default: until SIGINT/SIGTERM)")
    p.add_argument("--connect-timeout", type=float, default=10.0,
                   help="seconds to wait for the broker at start before giving up with exit 3 (default 10)")
    p.set_defaults(func=cmd_fleet_serve)

    p = add_parser(fleet, "page", "write the fleet page (HTML, inline SVG) from a fleet store")
    p.add_argument("--db", required=True, help="the fleet's SQLite file")
    p.add_argument("--out", required=True, help="HTML file to write")
    p.set_defaults(func=cmd_fleet_page)

    p = add_parser(fleet, "export", "a fleet store's intervals as CSV (one share column per label)")
    p.add_argument("--db", required=True, help="the fleet's SQLite file")
    p.add_argument("--csv", required=True, help="CSV file to write")
    p.set_defaults(func=cmd_fleet_export)
