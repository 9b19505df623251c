"""What both HTTP servers of the package (the device's ``/metrics`` + ``/health``, the fleet page) do
about who may reach them. Standard library only.

- Bound to anything but loopback (``0.0.0.0``, ``""``, a LAN address), a warning names the address:
  anyone who can reach the machine can read what is served.
- DNS rebinding: a web page elsewhere can point its own name at 127.0.0.1 and read a local server
  through the visitor's browser; the request then carries that name in ``Host``. A request is
  answered only when its ``Host`` is an IP address (a browser never sends another site's name as
  one), ``localhost``, the bound name or this machine's host name; otherwise 421 (Misdirected Request).
  This is the rule Syncthing's GUI applies.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from http.server import BaseHTTPRequestHandler

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """``host`` (as given to bind) reaches loopback only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_if_exposed(host: str, port: int, what: str) -> bool:
    """Log a warning naming the address when ``host`` is not loopback; True when it was."""
    if is_loopback(host):
        return False
    where = f"{host or '0.0.0.0'}:{port}" + (" (every interface)" if host in ("", "0.0.0.0", "::") else "")
    log.warning("%s listens on %s, not only on loopback: anyone who can reach this machine can read it", what, where)
    return True


def allowed_names(host: str) -> frozenset[str]:
    """The host names a request's ``Host`` may carry (IP addresses are always allowed)."""
    me = socket.gethostname().lower()
    names = {"localhost", host.lower(), me, f"{me}.local"}      # .local: the name mDNS gives it on a LAN
    return frozenset(n for n in names if n)


def host_allowed(header: str | None, names: frozenset[str]) -> bool:
    """``header`` (``name[:port]``, ``[v6]:port``) names this server and not another site."""
    if not header:
        return False
    name = header.strip().lower()
    if name.startswith("["):                                  # [::1]:8090
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name.rstrip(".") in names


def refuse_foreign_host(handler: BaseHTTPRequestHandler, names: frozenset[str]) -> bool:
    """Answer 421 and return True when the request's ``Host`` is not this server's."""
    if host_allowed(handler.headers.get("Host"), names):
        return False
    handler.send_error(421, "Misdirected Request", "the Host header does not name this server")
    return True
