"""One place to look at a fleet: ``emoedge fleet serve`` subscribes to the broker the devices publish
to (``emoedge run --mqtt``), keeps every device's interval summaries in one SQLite file or in
PostgreSQL (several workers sharing one subscription; :func:`open_store` picks by ``--db``), and serves
a small page on 127.0.0.1: label shares over time per room and per device, each device's health
(online/offline from its retained status and last will, when it last reported, intervals missing
from its sequence) and drift (how far its recent label mix is from the fleet's). ``/intervals.csv``
exports the store; ``/summary.json`` is the same data for scripts. Prometheus metrics stay on each
device (``--metrics-port``) for Grafana.

- :mod:`~emoedge.fleet.payload`: what is accepted from the broker (everything else is refused, logged,
  counted and acknowledged);
- :mod:`~emoedge.fleet.store`: the store (duplicates and conflicts by ``interval_id``, gaps in each
  device's ``<run>-<seq>`` sequence) over :mod:`~emoedge.fleet.backends` (SQLite) or
  :mod:`~emoedge.fleet.pg_store` (PostgreSQL); :mod:`~emoedge.fleet.schema` and
  :mod:`~emoedge.fleet.migrations` (the versioned schema), :mod:`~emoedge.fleet.ingest` and
  :mod:`~emoedge.fleet.rollups` (batched writes), :mod:`~emoedge.fleet.queries` (the page aggregated in
  the database), :mod:`~emoedge.fleet.exports` (streamed CSV and JSON), :mod:`~emoedge.fleet.prefill`
  (a school year, and the page's render time);
- :mod:`~emoedge.fleet.subscriber`: the persistent QoS 1 session, batched writes, manual acknowledgement;
- :mod:`~emoedge.fleet.page` and :mod:`~emoedge.fleet.web`: the page (inline SVG, no scripts, nothing
  fetched from the internet) and its HTTP server (Host header checked).

Layer 3: imports paho-mqtt and psycopg 3 (the ``[fleet]`` extra; psycopg only for a PostgreSQL store),
the standard library and the one drift measure
(:func:`emoedge.core.divergence.js_divergence`, the device monitor's too: numpy only), no TensorFlow.
"""

from emoedge.core.divergence import js_divergence
from emoedge.fleet.backends import StoreError, StoreUnavailable
from emoedge.fleet.page import mean_share, render_page
from emoedge.fleet.payload import PayloadError
from emoedge.fleet.queries import PageQuery, PageView, QueryError, parse_query
from emoedge.fleet.store import FleetStore, open_store, sequence_gaps
from emoedge.fleet.subscriber import BrokerError, FleetSubscriber
from emoedge.fleet.web import FleetWeb

__all__ = ["BrokerError", "FleetStore", "FleetSubscriber", "FleetWeb", "PageQuery", "PageView", "PayloadError",
           "QueryError", "StoreError", "StoreUnavailable", "js_divergence", "mean_share", "open_store", "parse_query",
           "render_page", "sequence_gaps"]
