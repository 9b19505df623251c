"""What a :class:`~emoedge.edge.runtime.pipeline.Pipeline` builds once, at start, from its config
and deployment: the sinks the config asks for, the MQTT sink, the deployment's rotated log file
and the path its CSV export goes to. A problem is said here, at start, not after a day of frames."""

from __future__ import annotations

import logging
import logging.handlers
from collections.abc import Sequence
from pathlib import Path

from emoedge.core.errors import BadInputError, WriteError
from emoedge.edge.outputs.kiosk_screen import parse_size_px
from emoedge.edge.outputs.overlay import DisplaySink, VideoSink
from emoedge.edge.outputs.sinks import DiskFloor, JsonlSink, Sink, SqliteSink
from emoedge.edge.runtime.config import Deployment, RuntimeConfig
from emoedge.edge.runtime.frames import FrameSource

log = logging.getLogger("emoedge.edge.runtime.pipeline")   # said as the pipeline's, as before


def add_configured_sinks(sinks: list[Sink], c: RuntimeConfig, source: FrameSource,
                         labels: Sequence[str] = ()) -> None:
    """Append the sinks ``c`` asks for to ``sinks`` one by one (so those made before a failure are
    there to be closed); ``labels``: the model's class names (Home Assistant's sensors)."""
    floor = DiskFloor(c.min_free_mb)
    if c.events:
        sinks.append(JsonlSink(c.events, floor, int(c.events_max_mb * 2**20), c.events_keep))
    if c.db:
        sinks.append(SqliteSink(c.db, floor, c.retention_days))
    if c.mqtt:
        sinks.append(make_mqtt_sink(c, labels))
    if c.video_out:
        fps = source.fps or c.fps or 15.0
        sinks.append(VideoSink(c.video_out, fps=fps, timed=not source.independent_frames,
                               screen="kiosk" if c.screen == "kiosk" else "debug", labels=labels))
    if c.display or c.fullscreen:
        sinks.append(DisplaySink(fullscreen=c.fullscreen, screen=display_screen(c), labels=labels,
                                 screen_size_px=parse_size_px(c.screen_size) if c.screen_size else None))


def display_screen(c: RuntimeConfig) -> str:
    """What the window shows: the kiosk screen full-screen (the kiosk profile) or when asked for
    (``screen: kiosk``), else the debug overlay."""
    return "kiosk" if c.screen == "kiosk" or (c.screen == "auto" and c.fullscreen) else "debug"


def make_mqtt_sink(c: RuntimeConfig, labels: Sequence[str] = ()):
    """Interval summaries to the broker through a store-and-forward outbox (emoedge.edge.outputs.mqtt),
    with a client certificate (mutual TLS) and Home Assistant discovery of ``labels`` when configured."""
    from emoedge.edge.outputs.mqtt import MqttSink, MqttTarget, default_outbox, with_credentials

    target = with_credentials(MqttTarget.parse(c.mqtt), c.mqtt_username, c.mqtt_password_file)
    outbox = Path(c.mqtt_outbox) if c.mqtt_outbox else default_outbox(c.db)
    sink = MqttSink(target, outbox, device=c.mqtt_device, room=c.mqtt_room, ca_file=c.mqtt_ca_file,
                    flush_timeout_s=c.mqtt_flush_s, cert_file=c.mqtt_cert_file, key_file=c.mqtt_key_file,
                    ha_prefix=c.mqtt_ha_discovery, labels=labels, interval_s=c.interval_s)
    log.info("MQTT: interval summaries to %s as device %r (topics %s, %s), outbox %s%s%s", target, sink.device,
             sink.intervals_topic, sink.status_topic, outbox,
             f", client certificate {c.mqtt_cert_file}" if c.mqtt_cert_file else "",
             f", Home Assistant discovery on {sink.ha.topic}" if sink.ha else "")
    return sink


def open_log_file(d: Deployment | None) -> logging.Handler | None:
    """The deployment's rotated log file (warnings and errors) in its data folder."""
    if d is None or not d.log_file:
        return None
    path = Path(d.data_dir) / d.log_file
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        h = logging.handlers.RotatingFileHandler(path, maxBytes=int(d.log_max_mb * 2**20),
                                                 backupCount=d.log_keep, encoding="utf-8")
    except OSError as exc:
        raise WriteError(f"{path}: cannot open the log file (deployment.log_file): {exc.strerror or exc}") from exc
    h.setLevel(logging.INFO)
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("emoedge").addHandler(h)
    if logging.getLogger("emoedge").level == logging.NOTSET or logging.getLogger("emoedge").level > logging.INFO:
        logging.getLogger("emoedge").setLevel(logging.INFO)
    return h


def close_log_file(h: logging.Handler | None) -> None:
    if h is not None:
        logging.getLogger("emoedge").removeHandler(h)
        h.close()


def csv_export_path(d: Deployment | None, c: RuntimeConfig) -> Path | None:
    """Where the deployment's CSV of the summaries goes (its data folder is made now), if it wants one."""
    if d is None or not d.export_csv:
        return None
    if not c.db:
        raise BadInputError("deployment.export_csv: the CSV is exported from the SQLite summaries: set runtime.db")
    path = Path(d.data_dir) / "summaries.csv"
    try:  # a data folder that cannot be written is said at start, not after a day of frames
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"{path.parent}: cannot create the data folder (deployment.data_dir): "
                         f"{exc.strerror or exc}") from exc
    return path
