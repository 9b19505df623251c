"""One fleet ingest worker in its own process, for the tests that kill one (SIGKILL: no goodbye, nothing acknowledged
after the kill): ``python tests/fleet_worker.py URL DB CLIENT_ID GROUP [CA CERT KEY]``. Prints ``ready`` once
subscribed; on SIGTERM it stops and prints its counts as one JSON line. ``Worker`` runs and reads it from a test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    from emoedge.edge.outputs.mqtt_broker import MqttTarget
    from emoedge.fleet import FleetStore, FleetSubscriber

    url, db, client_id, group, *tls = argv
    ca, cert, key = tls or (None, None, None)
    sub = FleetSubscriber(MqttTarget.parse(url), FleetStore(db), client_id=client_id, share_group=group or None,
                          ca_file=ca, cert_file=cert, key_file=key)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sub.start()
    print("ready", flush=True)
    stop.wait()
    sub.stop()
    print(json.dumps(sub.counts), flush=True)
    return 0


class Worker:
    """``fleet_worker.py`` as a child process; ``kill()`` is SIGKILL, ``stop()`` SIGTERM and the counts it printed."""

    def __init__(self, url: str, db: Path, client_id: str, group: str, tls: tuple = ()):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, __file__, url, str(db), client_id, group, *map(str, tls)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"fleet worker {client_id} did not start: {line}{self.proc.stderr.read()[-2000:]}")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        if self.proc.returncode:
            raise RuntimeError(f"fleet worker exited {self.proc.returncode}: {err[-2000:]}")
        return json.loads(out.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
