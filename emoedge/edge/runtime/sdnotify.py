"""systemd notifications (READY, WATCHDOG, STOPPING) over $NOTIFY_SOCKET; a no-op elsewhere."""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, env: dict | None = None):
        addr = (env if env is not None else os.environ).get("NOTIFY_SOCKET")
        self.addr = None
        self.sock = None
        if addr:
            self.addr = "\0" + addr[1:] if addr.startswith("@") else addr
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def notify(self, state: str) -> bool:
        if self.sock is None:
            return False
        try:
            self.sock.sendto(state.encode(), self.addr)
            return True
        except OSError:
            return False

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
