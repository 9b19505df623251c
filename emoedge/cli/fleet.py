"""``emoedge fleet serve|page|export`` -> :mod:`emoedge.fleet` (open_store, FleetSubscriber, FleetWeb, render_page).
``--db`` is a SQLite file (the zero-setup default for one school) or ``postgresql://USER@HOST[:PORT]/DB``
(a password comes from ``--db-password-file`` or libpq's PGPASSFILE, never from the URL)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from urllib.parse import quote

from emoedge.cli._common import add_group, add_parser
from emoedge.core.errors import BadInputError

log = logging.getLogger("emoedge.fleet")


def cmd_fleet_serve(args) -> int:
    """Subscribe and store until interrupted (SIGINT/SIGTERM), serving the page meanwhile."""
    from emoedge.edge.outputs.mqtt import MqttTarget, with_credentials
    from emoedge.fleet import FleetSubscriber, FleetWeb, open_store

    target = with_credentials(MqttTarget.parse(args.mqtt), args.username, args.password_file)
    store = open_store(args.db, args.db_password_file)
    sub = FleetSubscriber(target, store, client_id=args.client_id, ca_file=args.ca_file, cert_file=args.mqtt_cert_file,
                          key_file=args.mqtt_key_file, share_group=args.share_group)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sub.start(args.connect_timeout)      # BrokerError (exit 3) when the broker cannot be reached or refuses
    if args.retire:
        return _retire(sub, target)
    try:
        web = FleetWeb(store, args.http_host, args.http_port).start() if args.http_port is not None else None
    except BaseException:
        sub.stop()
        raise
    print(f"emoedge fleet: storing {target.prefix}/+/intervals from {target} in {store.path}"
          + (f" (shared subscription group {args.share_group})" if args.share_group else "")
          + (f"; page on http://{args.http_host or '0.0.0.0'}:{web.port}/" if web else ""), flush=True)
    try:
        stop.wait(args.seconds) if args.seconds else stop.wait()
    finally:
        sub.stop()
        if web:
            web.stop()
    _say_counts(sub.counts)
    return 0


def _say_counts(c: dict) -> None:
    print(f"emoedge fleet: stored {c['stored']} interval(s), dropped {c['duplicate']} duplicate(s), "
          f"{c['conflict']} conflict(s), rejected {c['rejected']}, {c['status']} status message(s)"
          + (f", {c['failed']} not stored (see the log)" if c["failed"] else ""), flush=True)


def _retire(sub, target) -> int:
    """``--retire``: this worker's session stored to the end and closed (see FleetSubscriber.retire)."""
    from emoedge.fleet import BrokerError

    print(f"emoedge fleet: retiring {sub.client_id} from {target}: storing what its session holds", flush=True)
    done = sub.retire()
    _say_counts(sub.counts)
    if not done:
        raise BrokerError(f"fleet: {sub.client_id} was still receiving at the end of --retire's wait; its session "
                          "is kept: run --retire again (are the other workers' devices publishing to it?)")
    print(f"emoedge fleet: {sub.client_id} retired: its session is ended, the broker deals it nothing more", flush=True)
    return 0


def cmd_fleet_copy(args) -> int:
    """Every interval of one store into another (idempotent: a second run stores nothing twice)."""
    from emoedge.fleet import open_store
    from emoedge.fleet.backends import is_url
    from emoedge.fleet.copy import copy_store

    if args.source == args.db:
        raise BadInputError(f"fleet copy: --from and --db are the same store ({args.db[:200]})")
    if not is_url(args.source) and not Path(args.source).is_file():
        raise BadInputError(f"fleet copy: --from {args.source[:200]}: no such fleet store")
    source = open_store(args.source, args.from_password_file)
    target = open_store(args.db, args.db_password_file)
    res = copy_store(source, target, progress=lambda c: log.info("fleet copy: %s", c))
    print(f"emoedge fleet copy: read {res.read} interval(s) from {source.path} in {res.seconds:.1f} s: stored "
          f"{res.stored} in {target.path}, {res.duplicate} already there, {res.conflict} conflict(s) (the target's "
          f"copy kept), {res.skipped_invalid} invalid row(s) skipped", flush=True)
    return 0


def _existing_store(args, what: str):
    """The store of ``--db`` (a SQLite file must exist: reading does not create one); None after saying why."""
    from emoedge.fleet import open_store
    from emoedge.fleet.backends import is_url

    if not is_url(args.db) and not Path(args.db).is_file():
        print(f"emoedge fleet {what}: {args.db}: no such fleet store", file=sys.stderr)
        return None
    return open_store(args.db, args.db_password_file)


def _query(args):
    from emoedge.fleet import parse_query

    given = (("from", args.date_from), ("to", args.date_to), ("page", getattr(args, "page", None)),
             ("per_page", getattr(args, "per_page", None)))
    return parse_query("&".join(f"{k}={quote(str(v))}" for k, v in given if v is not None))   # QueryError: exit 2


def cmd_fleet_page(args) -> int:
    from emoedge.fleet import render_page

    store = _existing_store(args, "page")
    if store is None:
        return 2
    Path(args.out).write_text(render_page(store.view(_query(args))))
    print(f"wrote {args.out}")
    return 0


def cmd_fleet_export(args) -> int:
    store = _existing_store(args, "export")
    if store is None:
        return 2
    query = _query(args)
    with open(args.csv, "w", newline="") as fh:
        n = store.export_csv(fh, query)
    print(f"wrote {n} interval(s) to {args.csv}")
    return 0


DB_HELP = ("the fleet store: a SQLite file (the default for one school) or postgresql://USER@HOST[:PORT]/DB "
           "(?host=/socket/dir for a local socket; no password in the URL)")


def _db_args(p, required_help: str) -> None:
    p.add_argument("--db", required=True, help=f"{DB_HELP}{required_help}")
    p.add_argument("--db-password-file", help="file holding the PostgreSQL password (else libpq's PGPASSFILE or "
                   "~/.pgpass)")


def _range_args(p) -> None:
    p.add_argument("--from", dest="date_from", help="first UTC day YYYY-MM-DD (default: the first stored)")
    p.add_argument("--to", dest="date_to", help="last UTC day YYYY-MM-DD, included (default: the last stored)")


def register(sub) -> None:
    fleet = add_group(sub, "fleet", "a fleet's interval summaries from MQTT in SQLite or PostgreSQL, and a page",
                      dest="fleet_command")
    p = add_parser(fleet, "serve", "subscribe to PREFIX/+/intervals and /status, store them, serve the page")
    p.add_argument("--mqtt", required=True, help="mqtt://host:port[/prefix] the devices publish to (mqtts:// for TLS)")
    _db_args(p, "; a SQLite file is created if missing")
    p.add_argument("--username", help="broker user name")
    p.add_argument("--password-file", help="file holding the broker password")
    p.add_argument("--ca-file", help="CA certificate(s) to verify the broker's TLS")
    p.add_argument("--mqtt-cert-file", help="client certificate (PEM) for mutual TLS with the broker")
    p.add_argument("--mqtt-key-file", help="the client certificate's private key (PEM, not encrypted)")
    p.add_argument("--share-group", help="MQTT shared subscription group: several `fleet serve` workers with the "
                   "same GROUP share $share/GROUP/PREFIX/+/intervals (each message to one of them)")
    p.add_argument("--client-id", default="emoedge-fleet",
                   help="MQTT client id: the broker keeps this session's queue while the store is down")
    p.add_argument("--http-host", default="127.0.0.1",
                   help="address of the page (default: loopback only; any other address is warned about)")
    p.add_argument("--http-port", type=int, default=8090, help="port of the page (default 8090)")
    p.add_argument("--seconds", type=float, help="stop after this long (default: until SIGINT/SIGTERM)")
    p.add_argument("--connect-timeout", type=float, default=10.0,
                   help="seconds to wait for the broker at start before giving up with exit 3 (default 10)")
    p.add_argument("--retire", action="store_true",
                   help="take this worker (its --client-id) out of service: unsubscribe, store what its session "
                        "still holds, end the session, exit (a worker merely stopped keeps being dealt its share)")
    p.set_defaults(func=cmd_fleet_serve)

    p = add_parser(fleet, "page", "write the fleet page (HTML, inline SVG) from a fleet store")
    _db_args(p, "")
    p.add_argument("--out", required=True, help="HTML file to write")
    _range_args(p)
    p.add_argument("--page", help="page of the device list (from 1)")
    p.add_argument("--per-page", dest="per_page", help="devices a page (default 50, at most 500)")
    p.set_defaults(func=cmd_fleet_page)

    p = add_parser(fleet, "export", "a fleet store's intervals as CSV (one share column per label)")
    _db_args(p, "")
    p.add_argument("--csv", required=True, help="CSV file to write")
    _range_args(p)
    p.set_defaults(func=cmd_fleet_export)

    p = add_parser(fleet, "copy", "copy every interval of one fleet store into another (a school's SQLite file "
                   "into the district's PostgreSQL; idempotent)")
    p.add_argument("--from", dest="source", required=True, help="the store to read: a SQLite file or postgresql://...")
    p.add_argument("--from-password-file", help="file holding the source PostgreSQL's password")
    _db_args(p, " (the store written; created if missing)")
    p.set_defaults(func=cmd_fleet_copy)
