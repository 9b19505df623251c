"""Honest failures: only the project's own errors are exit 2-4 (a bug is exit 1 with its traceback,
so systemd restarts it), every refusal names its key or file, and the run summary counts only the
records that were written."""

import json
import math
import os
import subprocess
import typing
from pathlib import Path

import pytest
from fakes import FakeClassifier, FakeClock, FakeDetector, SyntheticSource, _tmpfs

from emoedge.cli import main
from emoedge.core.errors import BadInputError, ModelError, WriteError, exit_code_of
from emoedge.data.datasets import DatasetError
from emoedge.edge.faces.detect import Face
from emoedge.edge.outputs.sinks import Sink, SqliteSink, read_intervals
from emoedge.edge.runtime.config import ConfigError, Deployment, RuntimeConfig, _type_ok
from emoedge.edge.runtime.pipeline import Pipeline
from emoedge.edge.runtime.sources import SourceError

ROOT = Path(__file__).resolve().parents[2]


# -- exit codes ---------------------------------------------------------------------------------
def test_only_the_projects_own_errors_have_codes_2_to_4():
    own = (BadInputError("x"), ConfigError("x"), DatasetError("x"), ModelError("x"), SourceError("x"),
           WriteError("x"), KeyboardInterrupt())
    assert [exit_code_of(e) for e in own] == [2, 2, 2, 2, 3, 4, 130]
    assert [exit_code_of(e) for e in (ValueError("x"), RuntimeError("x"), OSError(5, "x"), FileNotFoundError("x"),
                                      KeyError("x"))] == [1, 1, 1, 1, 1]


@pytest.mark.parametrize("exc", [RuntimeError("tflite: Invoke failed"), ValueError("a bug"), OSError(5, "EIO")])
def test_a_bug_mid_run_exits_1_with_its_traceback(exc, monkeypatch, capsys):
    def boom(self):
        raise exc

    monkeypatch.setattr(Pipeline, "run", boom)
    assert main(["run", "--source", "demo", "--max-frames", "1", "--threads", "1"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and str(exc) in err and "unexpected error" in err


def test_the_sensor_unit_restarts_on_exit_1():
    unit = (ROOT / "deploy/systemd/emoedge-sensor.service").read_text()
    assert "RestartPreventExitStatus=2\n" in unit and "Restart=always" in unit


# -- refused before the first frame: exit 2 ---------------------------------------------------------
def test_an_unusable_mqtt_outbox_is_bad_input(tmp_path, capsys):
    pytest.importorskip("paho.mqtt")
    (tmp_path / "file").write_text("not a folder")
    outbox = tmp_path / "file" / "outbox.sqlite"
    code = main(["run", "--source", "demo", "--max-frames", "1", "--threads", "1", "--mqtt", "mqtt://127.0.0.1:1/x",
                 "--mqtt-outbox", str(outbox)])
    err = capsys.readouterr().err
    assert code == 2 and f"{outbox}: cannot use as the MQTT outbox" in err and "Traceback" not in err


def test_a_valid_database_on_a_read_only_file_system_is_not_called_corrupt(tmp_path):
    d = _tmpfs(tmp_path / "ro", "1m")
    try:
        SqliteSink(d / "s.sqlite").db.close()
        subprocess.run(["mount", "-o", "remount,ro", str(d)], check=True)
        with pytest.raises(BadInputError) as info:
            SqliteSink(d / "s.sqlite")
        assert "cannot open the summaries database" in str(info.value) and "read-only" in str(info.value)
        assert "not a SQLite database" not in str(info.value)
    finally:
        if subprocess.run(["umount", str(d)], check=False).returncode:
            subprocess.run(["umount", "-l", str(d)], check=False)


@pytest.mark.parametrize("args,key", [
    (["--retention-days", "inf"], "retention_days"),
    (["--events-max-mb", "inf"], "events_max_mb"),
    (["--min-free-mb", "inf"], "min_free_mb"),
    (["--profile", "x86-dev", "--set", "deployment.export_every_min=.inf"], "export_every_min"),
    (["--profile", "x86-dev", "--set", "runtime.retention_days=.nan"], "retention_days"),
])
def test_infinity_is_refused_naming_the_key(args, key, capsys):
    assert main(["run", "--source", "demo", "--max-frames", "1", *args]) == 2
    err = capsys.readouterr().err
    assert f"key '{key}' must be a finite number" in err and "Traceback" not in err


def test_the_type_check_refuses_what_it_does_not_handle():
    assert _type_ok({"a": 1.0}, dict[str, float]) and not _type_ok([1], dict) and _type_ok(None, float | None)
    with pytest.raises(TypeError, match="does not handle"):
        _type_ok("a", typing.Literal["a"])
    with pytest.raises(ConfigError, match="export_every_min"):
        Deployment(export_every_min=math.inf)
    with pytest.raises(ConfigError, match="retention_days"):
        RuntimeConfig(retention_days=math.inf)


# -- the summary counts what was written ---------------------------------------------------------
class _Broken(Sink):
    """A sink whose every write fails (an outbox or an events file on a failing disk)."""
    path = Path("/broken/outbox.sqlite")

    def on_event(self, event):
        raise WriteError(f"{self.path}: event not written")

    def on_interval(self, summary):
        raise WriteError(f"{self.path}: interval not written")


def test_the_summary_counts_records_written_not_records_made(tmp_path):
    clock = FakeClock()
    cfg = RuntimeConfig(budget_ms=1000, interval_s=0.01, status_every_s=0, min_free_mb=0)
    db = tmp_path / "s.sqlite"
    s = Pipeline(cfg, source=SyntheticSource(clock, 30), detector=FakeDetector(clock, [Face(5, 5, 50, 50)], 1),
                 classifier=FakeClassifier(), clock=clock, sinks=[SqliteSink(db), _Broken()]).run()
    stored = read_intervals(db)
    assert stored and s.intervals_written == len(stored)       # the database holds them: not "intervals 0"
    assert s.events_written == 0 and s.records_lost >= len(stored) + 1 and s.exit_code == 4


def test_broker_drops_add_no_unbounded_problem_list(tmp_path):
    pytest.importorskip("paho.mqtt")
    from emoedge.edge.outputs.mqtt import MAX_PROBLEMS, MqttSink, MqttTarget

    sink = MqttSink(MqttTarget.parse("mqtt://127.0.0.1:1/x"), tmp_path / "o.sqlite", device="d1")
    try:
        for i in range(1000):
            sink._problem("cannot connect: [Errno 111] Connection refused")
            sink._last_problem = None                           # connected again in between
            sink._problem(f"the broker refused the connection: code {i}")
            sink._last_problem = None
        assert len(sink.problems) == MAX_PROBLEMS and sink.outages == 2000
        assert sink.stats(0)["outages"] == 2000
    finally:
        sink.close()


# -- deployment ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("url,allowed", [("mqtt://192.168.7.20:1883/school", "192.168.7.20"),
                                          ("mqtts://localhost/school", "127.0.0.1")])
def test_the_sensor_unit_allows_exactly_its_broker(url, allowed, capsys):
    template = ROOT / "deploy/systemd/emoedge-sensor.service"
    assert main(["profile", "unit", "classroom-sensor-rpi4", "--template", str(template),
                 "--set", f"runtime.mqtt={url}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    allow = [ln for ln in lines if ln.startswith("IPAddressAllow=")]
    assert allow and allow[0].split("=", 1)[1].split()[:2] == ["localhost", allowed]
    assert "IPAddressDeny=any" in lines
    assert main(["profile", "unit", "classroom-sensor-rpi4", "--template", str(template)]) == 0
    assert "IPAddressAllow=localhost" in capsys.readouterr().out.splitlines()      # no broker: loopback only


def _stub(folder: Path, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(f"#!/bin/sh\n{body}\n")
    (folder / name).chmod(0o755)


def test_install_script_does_not_say_done_after_a_failing_doctor(tmp_path):
    """A real (not dry) run with every system command stubbed: doctor exits 2, so does the script."""
    bin_, prefix, data = tmp_path / "bin", tmp_path / "opt", tmp_path / "data"
    for name in ("id", "chown", "install", "systemctl", "mkdir", "sh", "useradd", "apt-get"):
        _stub(bin_, name, "exit 0")
    _stub(bin_, "dpkg-query", "echo 'install ok installed'")
    venv = prefix / "venv" / "bin"
    _stub(venv, "python", "echo numpy 2 opencv 4")
    _stub(venv, "pip", "exit 0")
    _stub(venv, "emoedge", 'case "$1" in doctor) echo "FAIL camera"; exit 2;; *) echo "[Service]";; esac')
    osr = tmp_path / "os-release"
    osr.write_text("VERSION_CODENAME=trixie\n")
    r = subprocess.run(["bash", str(ROOT / "deploy/install.sh"), "--board", "rpi", "--mode", "sensor", "--prefix",
                        str(prefix), "--data", str(data), "--purpose", "study", "--jurisdiction", "UK"],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "EMOEDGE_OS_RELEASE": str(osr)})
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "FAIL camera" in r.stdout and "done:" not in r.stdout and "'emoedge doctor' failed (exit 2" in r.stderr


# -- calibration never makes probabilities worse ---------------------------------------------------------------
def test_calibrate_keeps_1_when_the_fitted_temperature_makes_ece_worse(tmp_path, monkeypatch):
    import numpy as np

    from emoedge.evaluate import temperature as tmod

    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]] * 25, np.float32)
    labels = np.array([0, 0, 1, 1] * 25)
    run = type("Run", (), {"probs": probs, "labels": labels})()
    monkeypatch.setattr(tmod, "evaluate_model", lambda *a, **k: run)
    monkeypatch.setattr(tmod, "fit_temperature", lambda p, y: 5.0)          # a T that flattens everything
    model = tmp_path / "m.tflite"
    model.write_bytes(b"")
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"temperature": 1.7}))
    monkeypatch.setattr(tmod, "manifest_path", lambda p: manifest)
    r = tmod.calibrate(model, dataset=None)
    assert r["temperature"] == 1.0 and r["ece_after"] == r["ece_before"] and "kept at 1.0" in r["note"]
    written = json.loads(manifest.read_text())
    assert written["temperature"] == 1.0 and "T = 5.000 made ECE worse" in written["calibration_of_probabilities"][
        "note"]


# -- bad input deep in training, evaluation and conversion is exit 2, not a traceback ----------------
def _bad_training_option():
    from emoedge.train.config_file import load_train_config
    load_train_config("default", ["epochs=-1"])


def _bad_architecture():
    from emoedge.train.zoo import build
    build("no-such-net", 7)


def _bad_photo_pad():
    import numpy as np

    from emoedge.evaluate.photos import pad_image
    pad_image(np.zeros((8, 8, 3), np.uint8), -0.5)


def _bad_calibration_size():
    import numpy as np

    from emoedge.convert.calibration import from_dataset
    from emoedge.data.datasets import FaceDataset
    n = 4
    ds = FaceDataset(np.zeros((n, 48, 48), np.uint8), np.zeros(n, np.int64), ("a", "b"), np.array(["train"] * n),
                     np.arange(n).astype(str), "4 blank faces")
    from_dataset(ds, size=0)


def _bad_class_balance():
    import numpy as np

    from emoedge.data.balance import class_weights
    class_weights(np.array([0, 1, 1]), 2, "loudest")


@pytest.mark.parametrize("bad", [_bad_training_option, _bad_architecture, _bad_photo_pad, _bad_calibration_size,
                                 _bad_class_balance])
def test_bad_input_deep_in_train_evaluate_convert_is_exit_2(bad):
    with pytest.raises(BadInputError) as info:
        bad()
    assert exit_code_of(info.value) == 2 and str(info.value)


def test_a_bad_training_option_on_the_command_line_exits_2(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "none.csv"), "--out", str(tmp_path / "out"), "--set", "epochs=-1"])
    assert code == 2
    assert "epochs" in capsys.readouterr().err
