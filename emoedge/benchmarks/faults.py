"""Fault checks of the runtime's records (issue 14): SIGKILL mid-run, a really full disk (a small
tmpfs, needs root) and the free-space floor; each runs the real ``emoedge run`` in a subprocess and
checks what the files hold against what the run reported written."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from emoedge.benchmarks.childproc import python_env, run_command


def _ro(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2.0)


def db_intervals(db: Path, read_only: bool = True) -> dict[str, int]:
    """interval_id -> its number of label shares; {} while the file or its schema is not there."""
    if not Path(db).is_file():
        return {}
    con = _ro(db) if read_only else sqlite3.connect(str(db), timeout=2.0)
    try:
        rows = con.execute("SELECT i.interval_id, (SELECT COUNT(*) FROM interval_shares s WHERE s.interval_id = i.id)"
                           " FROM intervals i").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise
    finally:
        con.close()
    return dict(rows)


def db_counts(db: Path) -> dict:
    con = sqlite3.connect(str(db), timeout=2.0)
    try:
        return {"integrity": con.execute("PRAGMA integrity_check").fetchone()[0],
                "runs": con.execute("SELECT COUNT(*) FROM runs").fetchone()[0],
                "intervals": con.execute("SELECT COUNT(*) FROM intervals").fetchone()[0]}
    finally:
        con.close()


def jsonl_check(path: Path) -> dict:
    """Every line of a JSON Lines file parses (no half line); counts per record type."""
    if not Path(path).is_file():
        return {"exists": False, "lines": 0, "bad_lines": 0, "ends_with_newline": True, "types": {},
                "interval_ids": []}
    data = Path(path).read_bytes()
    bad, types, ids = 0, {}, []
    lines = data.split(b"\n")
    tail = lines.pop()             # b"" when the file ends with a newline
    for ln in lines + ([tail] if tail else []):
        try:
            d = json.loads(ln)
        except ValueError:
            bad += 1
            continue
        types[d.get("type", "?")] = types.get(d.get("type", "?"), 0) + 1
        if d.get("type") == "interval":
            ids.append(d["interval_id"])
    return {"exists": True, "bytes": len(data), "lines": len(lines) + (1 if tail else 0), "bad_lines": bad,
            "ends_with_newline": not tail, "types": types, "interval_ids": ids}


def _seq(interval_id: str) -> int:
    return int(interval_id.rsplit("-", 1)[1])


def _labels_of_model(model: str) -> int | None:
    """Labels per interval share (the model's classes + 'uncertain'), from its manifest."""
    try:
        from emoedge.core.shipped import read_manifest, resolve_model

        names = (read_manifest(resolve_model(model)) or {}).get("class_names")
        return len(names) + 1 if names else None
    except Exception:
        return None


# -- SIGKILL --------------------------------------------------------------------------------------
def sigkill_check(workdir: str | Path, source: str = "demo", model: str = "fast", interval_s: float = 0.5,
                  min_intervals: int = 3, timeout_s: float = 120.0) -> dict:
    """SIGKILL an ``emoedge run --loop --db`` once the DB holds ``min_intervals`` intervals."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    db, events = work / "kill.sqlite", work / "kill.jsonl"
    args = ["--source", source, "--loop", "--model", model, "--db", str(db), "--events", str(events),
            "--interval-s", f"{interval_s:g}", "--no-display"]
    cmd = run_command(args)
    res: dict = {"command": "emoedge run " + " ".join(args), "status": "fail"}
    with open(work / "kill.stderr", "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=python_env())
        t0 = time.monotonic()
        before: dict[str, int] = {}
        try:
            while time.monotonic() - t0 < timeout_s:
                if proc.poll() is not None:
                    res["reason"] = f"the run ended by itself (exit {proc.returncode}) before the kill"
                    return res
                try:
                    if len(db_intervals(db)) >= min_intervals:
                        break
                except sqlite3.Error:
                    pass  # the schema is being made, or a write is in progress: poll again
                time.sleep(0.05)
            else:
                res["reason"] = f"fewer than {min_intervals} intervals after {timeout_s:g} s"
                return res
            proc.send_signal(signal.SIGSTOP)      # freeze it, read what is committed, then kill it
            time.sleep(0.1)
            before = db_intervals(db)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            res["seconds_to_kill"] = round(time.monotonic() - t0, 2)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    res["returncode"] = proc.returncode
    files_left = sorted(p.name for p in work.iterdir() if p.name.startswith("kill.sqlite"))
    after = db_intervals(db, read_only=False)    # opening recovers the WAL, as the next run would
    counts = db_counts(db)
    jl = jsonl_check(events)
    labels = _labels_of_model(model)
    seqs = sorted(_seq(i) for i in after)
    # a second run on the same files: opens them and appends after the killed run's records
    args2 = ["--source", source, "--model", model, "--db", str(db), "--events", str(events),
             "--interval-s", f"{interval_s:g}", "--max-frames", "30", "--no-display"]
    r2 = subprocess.run(run_command(args2), capture_output=True, text=True, env=python_env(), timeout=300)
    after2 = db_intervals(db, read_only=False)
    jl2 = jsonl_check(events)
    res.update({
        "wal_files_left": files_left,
        "intervals_before_kill": len(before), "intervals_after_kill": len(after),
        "same_intervals": set(before) == set(after), "integrity_check": counts["integrity"],
        "contiguous": seqs == list(range(1, len(seqs) + 1)),
        "complete_rows": all(n == labels for n in after.values()) if labels else all(after.values()),
        "jsonl_lines": jl["lines"], "jsonl_bad_lines": jl["bad_lines"],
        "jsonl_intervals": len(jl["interval_ids"]),
        "jsonl_has_db_intervals": set(after) <= set(jl["interval_ids"]),
        "rerun_command": "emoedge run " + " ".join(args2), "rerun_exit": r2.returncode,
        "intervals_after_rerun": len(after2), "rerun_kept_old": set(after) <= set(after2),
        "jsonl_bad_lines_after_rerun": jl2["bad_lines"], "integrity_after_rerun": db_counts(db)["integrity"],
    })
    _verdict(res, {
        "killed with >= min intervals": len(before) >= min_intervals,
        "same intervals after the kill": res["same_intervals"], "integrity ok": counts["integrity"] == "ok",
        "contiguous, complete rows": res["contiguous"] and res["complete_rows"],
        "JSONL: no half line": jl["bad_lines"] == 0, "JSONL holds the DB's intervals": res["jsonl_has_db_intervals"],
        "next run: exit 0, appends, keeps the old": (r2.returncode == 0 and res["rerun_kept_old"]
                                                     and len(after2) > len(after)),
        "next run: integrity ok, no half line": res["integrity_after_rerun"] == "ok" and jl2["bad_lines"] == 0})
    return res


def _verdict(res: dict, checks: dict[str, bool]) -> None:
    res["checks"] = {k: bool(v) for k, v in checks.items()}
    res["failed_checks"] = [k for k, v in checks.items() if not v]
    res["status"] = "fail" if res["failed_checks"] else "pass"


# -- disk full (tmpfs) and the floor -------------------------------------------------------------------
LEDGER_RUN = r"""
import json, sys
from emoedge.edge.outputs import sinks as S
ledger = open(sys.argv[1], "a", buffering=1)
def wrap(cls, name):
    orig = getattr(cls, name)
    def method(self, item, _orig=orig, _cls=cls.__name__, _name=name):
        _orig(self, item)   # raised: not written (the pipeline counts it); returned: reported written
        ledger.write(json.dumps({"sink": _cls, "kind": _name, "id": getattr(item, "interval_id", None)}) + "\n")
    setattr(cls, name, method)
for cls in (S.JsonlSink, S.SqliteSink):
    for name in ("on_start", "on_event", "on_interval"):
        if name in cls.__dict__:
            wrap(cls, name)
import runpy; sys.argv = ["emoedge", "run", *sys.argv[2:]]; runpy.run_module("emoedge", run_name="__main__")
"""


def _ledger(path: Path) -> dict:
    recs = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.is_file() else []
    out = {"sqlite_intervals": [r["id"] for r in recs if r["sink"] == "SqliteSink" and r["kind"] == "on_interval"],
           "sqlite_runs": sum(r["sink"] == "SqliteSink" and r["kind"] == "on_start" for r in recs),
           "jsonl_intervals": [r["id"] for r in recs if r["sink"] == "JsonlSink" and r["kind"] == "on_interval"],
           "jsonl_lines": sum(r["sink"] == "JsonlSink" for r in recs)}
    return out


def mount_tmpfs(path: Path, size: str) -> str | None:
    """Mount a tmpfs of ``size`` at ``path``; None when done, else why not."""
    if not sys.platform.startswith("linux"):
        return "not Linux"
    if os.geteuid() != 0:
        return "mount -t tmpfs needs root (this process is not)"
    path.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                           text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"mount failed: {exc}"
    if r.returncode != 0:
        return f"mount -t tmpfs not permitted: {r.stderr.strip() or f'exit {r.returncode}'}"
    return None


def umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True, timeout=60)


def _check_written(db: Path, events: Path, ledger: dict, stderr: str, returncode: int, summary: dict,
                   names: tuple[Path, Path] | None = None) -> dict:
    """What a run that lost records must still get right (``names``: the paths the run used, when
    ``db`` and ``events`` are copies)."""
    db_name, events_name = names or (db, events)
    counts = db_counts(db) if db.is_file() else {"integrity": "no file", "runs": 0, "intervals": 0}
    in_db = set(db_intervals(db, read_only=False)) if db.is_file() else set()
    jl = jsonl_check(events)
    reported = set(ledger["sqlite_intervals"])
    return {
        "exit_code": returncode, "records_lost": summary.get("records_lost"),
        "intervals_stored_by_all": summary.get("intervals_written"), "write_errors": summary.get("write_errors"),
        "stderr_names_db": str(db_name) in stderr, "stderr_names_events": str(events_name) in stderr,
        "integrity_check": counts["integrity"],
        "db_intervals": len(in_db), "db_intervals_reported_written": len(reported),
        "db_missing_reported": sorted(reported - in_db), "db_unreported_extra": sorted(in_db - reported),
        "jsonl_lines": jl["lines"], "jsonl_bad_lines": jl["bad_lines"],
        "jsonl_ends_with_newline": jl["ends_with_newline"],
        "jsonl_lines_reported_written": ledger["jsonl_lines"],
        "jsonl_intervals": len(jl["interval_ids"]),
        "jsonl_intervals_reported_written": len(ledger["jsonl_intervals"]),
        "jsonl_matches_reported": jl["interval_ids"] == ledger["jsonl_intervals"],
    }


def _ledger_run(args: list[str], ledger: Path, timeout_s: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LEDGER_RUN, str(ledger), *args], capture_output=True, text=True,
                          env=python_env(), timeout=timeout_s)


def disk_full_check(workdir: str | Path, size: str = "1m", source: str = "demo", model: str = "fast",
                    interval_s: float = 0.05, max_frames: int = 1500, timeout_s: float = 600) -> dict:
    """The run on a ``size`` tmpfs with ``--min-free-mb 0`` until the disk fills (then on to max_frames)."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    mnt = work / "tmpfs"
    why = mount_tmpfs(mnt, size)
    if why:
        return {"status": "skipped", "reason": why}
    db, events, ledger, summ = mnt / "full.sqlite", mnt / "full.jsonl", work / "full.ledger", work / "full.summary.json"
    args = ["--source", source, "--loop", "--model", model, "--db", str(db), "--events", str(events),
            "--interval-s", f"{interval_s:g}", "--min-free-mb", "0", "--max-frames", str(max_frames),
            "--no-display", "--summary-json", str(summ)]
    res: dict = {"command": f"mount -t tmpfs -o size={size} tmpfs {mnt}; emoedge run " + " ".join(args),
                 "tmpfs_size": size}
    try:
        r = _ledger_run(args, ledger, timeout_s)
        (work / "full.stderr").write_text(r.stderr)
        du = shutil.disk_usage(mnt)
        res["tmpfs_free_bytes_after"] = du.free
        res["files"] = {p.name: p.stat().st_size for p in sorted(mnt.iterdir())}
        summary = json.loads(summ.read_text()) if summ.is_file() else {}
        # check copies on the normal disk: opening the DB in place would try to checkpoint into a full disk
        copy = work / "full-copy"
        copy.mkdir(exist_ok=True)
        for p in mnt.iterdir():
            if p.name.startswith("full.sqlite") and not p.name.endswith("-shm"):
                shutil.copy2(p, copy / p.name)
        shutil.copy2(events, copy / events.name) if events.is_file() else None
        chk = _check_written(copy / db.name, copy / events.name, _ledger(ledger), r.stderr, r.returncode, summary,
                             names=(db, events))
        res.update(chk)
        res["stderr_tail"] = [ln for ln in r.stderr.splitlines() if "ERROR" in ln or "exit" in ln or "LOST" in ln][:8]
        res["frames"] = summary.get("frames")
        filled = du.free < 64 * 1024 or res["records_lost"]
        _verdict(res, {
            "the disk filled": filled, "exit code 4": r.returncode == 4,
            "stderr names the file": chk["stderr_names_db"] or chk["stderr_names_events"],
            "integrity ok": chk["integrity_check"] == "ok",
            "DB holds every interval reported written": not chk["db_missing_reported"],
            "DB holds nothing unreported": not chk["db_unreported_extra"],
            "JSONL: no half line": chk["jsonl_bad_lines"] == 0 and chk["jsonl_ends_with_newline"],
            "JSONL intervals = those reported written": chk["jsonl_matches_reported"]})
    finally:
        umount(mnt)
        res["unmounted"] = not os.path.ismount(mnt)
    return res


def floor_check(workdir: str | Path, source: str = "demo", model: str = "fast", interval_s: float = 0.2,
                max_frames: int = 40, timeout_s: float = 300) -> dict:
    """``--min-free-mb`` above the free space of a normal disk: nothing written, exit 4, a clear message."""
    work = Path(workdir) / "floor"
    work.mkdir(parents=True, exist_ok=True)
    free_mb = shutil.disk_usage(work).free / 2**20
    floor = int(free_mb + 1024)
    db, events, ledger, summ = work / "floor.sqlite", work / "floor.jsonl", work / "floor.ledger", work / "s.json"
    args = ["--source", source, "--model", model, "--db", str(db), "--events", str(events),
            "--interval-s", f"{interval_s:g}", "--min-free-mb", str(floor), "--max-frames", str(max_frames),
            "--no-display", "--summary-json", str(summ)]
    r = _ledger_run(args, ledger, timeout_s)
    summary = json.loads(summ.read_text()) if summ.is_file() else {}
    chk = _check_written(db, events, _ledger(ledger), r.stderr, r.returncode, summary)
    counts = db_counts(db) if db.is_file() else {"runs": 0, "intervals": 0}
    msg = [ln for ln in r.stderr.splitlines() if "below the floor" in ln]
    res = {"command": "emoedge run " + " ".join(args), "free_mb": round(free_mb), "min_free_mb": floor, **chk,
           "db_runs": counts["runs"], "message": msg[0] if msg else None,
           "files_made": sorted(p.name for p in work.iterdir()
                                if p.name.startswith("floor.") and p.suffix != ".ledger")}
    _verdict(res, {"exit code 4": r.returncode == 4, "no JSONL line": chk["jsonl_lines"] == 0,
                   "no DB record": counts["intervals"] == 0 and counts["runs"] == 0,
                   "a message naming the floor": bool(msg),
                   "integrity ok": chk["integrity_check"] in ("ok", "no file")})
    return res
