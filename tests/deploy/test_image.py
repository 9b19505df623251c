"""deploy/image/ without building or booting anything (fast): build.sh's and check.sh's usage errors
and their exit 77 paths (not root, no qemu-system-aarch64), the static facts the issue asks of them
(no loop devices or mounts in the assembly, SOURCE_DATE_EPOCH, niced heavy steps), and their Python
helpers: the manifest (ids, write, diff) and the check's assertions on console logs made up here.
The real build and boot test take 30+ minutes: deploy/image/README.md."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

IMAGE = Path(__file__).resolve().parents[2] / "deploy" / "image"
BUILD, CHECK = IMAGE / "build.sh", IMAGE / "check.sh"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"image_{name}", IMAGE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def fake_bin(tmp_path: Path, uid: int, keep: tuple[str, ...] = ("dirname", "sed", "head", "cat")) -> Path:
    """A PATH folder with an `id` that says ``uid`` and only the named real tools."""
    b = tmp_path / "bin"
    b.mkdir()
    (b / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (b / "id").chmod(0o755)
    for tool in keep:
        real = shutil.which(tool)
        if real:
            (b / tool).symlink_to(real)
    return b


def run(script: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run([shutil.which("bash") or "/bin/bash", str(script), *args], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.mark.parametrize("args, message", [
    ((), "--out DIR is required"),
    (("--out", "x", "--release", "bookworm"), "only trixie"),
    (("--out", "x", "--mirror", "ftp://m"), "--mirror must be an http(s) URL"),
    (("--out", "x", "--xz-level", "12"), "--xz-level must be 0-9"),
    (("--out", "x", "--root-free-mb", "lots"), "--root-free-mb must be a number"),
    (("--out", "x", "--bogus"), "unknown option --bogus"),
    (("--out",), "--out needs a folder"),
])
def test_build_usage_errors_exit_2(args, message):
    done = run(BUILD, *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def test_build_not_root_exits_77_with_the_reason(tmp_path):
    done = run(BUILD, "--out", str(tmp_path / "out"), path=str(fake_bin(tmp_path, 1000)))
    assert done.returncode == 77, done.stderr
    assert "SKIPPED: needs root" in done.stderr
    assert not (tmp_path / "out").exists()


def test_build_help_names_the_options():
    done = run(BUILD, "--help")
    assert done.returncode == 0
    for opt in ("--out", "--cache", "--release", "--mirror", "SOURCE_DATE_EPOCH", ".bmap", "raspi-firmware"):
        assert opt in done.stdout


@pytest.mark.parametrize("args, message", [
    ((), "the image to check is required"),
    (("disk.qcow2",), "not an .img or .img.xz file"),
    (("a.img", "b.img"), "one image only"),
    (("a.img.xz", "--timeout", "5"), "--timeout must be seconds >= 60"),
    (("a.img.xz", "--only", "ugly"), "--only must be good or bad"),
    (("a.img.xz", "--smp", "64"), "--smp must be 1-8"),
])
def test_check_usage_errors_exit_2(args, message):
    done = run(CHECK, *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def test_check_not_root_exits_77(tmp_path):
    done = run(CHECK, "x.img.xz", path=str(fake_bin(tmp_path, 1000)))
    assert done.returncode == 77, done.stderr
    assert "SKIPPED: needs root" in done.stderr


def test_check_without_qemu_exits_77_naming_it(tmp_path):
    done = run(CHECK, "x.img.xz", path=str(fake_bin(tmp_path, 0)))
    assert done.returncode == 77, done.stderr
    assert "no qemu-system-aarch64" in done.stderr and "qemu-system-arm" in done.stderr


def code(path: Path) -> str:
    """The script without its comment lines."""
    return "\n".join(x for x in path.read_text().splitlines() if not x.lstrip().startswith("#"))


def test_the_image_is_assembled_without_loop_devices_or_mounts():
    build = code(BUILD)
    for banned in ("losetup", "kpartx", "-o loop", "mount -o", "partprobe"):
        assert banned not in build
    mounts = [x for x in build.splitlines() if re.search(r"\bmount\b", x)]
    assert all("binfmt_misc" in x or "bind -t" in x or x.strip().startswith("bind()") for x in mounts), mounts
    for needed in ("mkfs.ext4", " -d ", "mkfs.vfat", "mcopy", "sfdisk", "conv=notrunc,sparse", "bmaptool", "xz -T2",
                   "SOURCE_DATE_EPOCH", "hash_seed=", "-U ", "--invariant", "nice -n 19", "set -euo pipefail"):
        assert needed in build, needed
    check = code(CHECK)
    for banned in ("losetup", "kpartx", "mount ", "chroot"):
        assert banned not in check
    for needed in ("qemu-system-aarch64", "-M virt", "-cpu cortex-a72", "mcopy", "debugfs", "nice -n 19"):
        assert needed in check, needed


def test_scripts_parse_and_pass_shellcheck():
    scripts = [BUILD, CHECK, IMAGE / "rootfs.sh", IMAGE / "rootfs-finish.sh", IMAGE / "check-hook.sh",
               IMAGE / "units" / "emoedge-growroot"]
    for s in scripts:
        done = subprocess.run(["bash", "-n", str(s)], capture_output=True, text=True)
        assert done.returncode == 0, f"{s.name}: {done.stderr}"
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed (apt-get install shellcheck): only bash -n was checked")
    done = subprocess.run(["shellcheck", "-S", "warning", *map(str, scripts)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_manifest_ids_are_fixed_by_the_epoch():
    m = load("manifest")
    a, b, c = m.ids(1767225600), m.ids(1767225600), m.ids(1767225601)
    assert a == b != c
    volid, root_uuid, seed, disk = a.split()
    assert re.fullmatch(r"[0-9a-f]{8}", volid) and re.fullmatch(r"[0-9a-f]{8}", disk)
    assert len(root_uuid) == 36 and len(seed) == 36 and root_uuid != seed


def fake_root(top: Path, version: str) -> Path:
    (top / "var/lib/dpkg").mkdir(parents=True)
    (top / "var/lib/dpkg/status").write_text(
        f"Package: python3\nStatus: install ok installed\nArchitecture: arm64\nVersion: {version}\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n")
    meta = top / "opt/emoedge/venv/lib/python3.13/site-packages/numpy-2.2.0.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: numpy\nVersion: 2.2.0\n")
    (top / "etc").mkdir()
    (top / "etc/hostname").write_text("emoedge\n")
    (top / "etc/localtime").symlink_to("/usr/share/zoneinfo/Etc/UTC")
    return top


def test_manifest_write_and_diff(tmp_path, capsys):
    m = load("manifest")
    fw = tmp_path / "fw"
    fw.mkdir()
    (fw / "config.txt").write_text("arm_64bit=1\n")
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    m.write(fake_root(tmp_path / "r1", "3.13.5-1"), fw, a)
    m.write(fake_root(tmp_path / "r2", "3.13.5-1"), fw, b)
    lines = a.read_text().splitlines()
    assert "deb python3 3.13.5-1 arm64" in lines and not any(x.startswith("deb gone") for x in lines)
    assert "pip numpy 2.2.0" in lines
    assert any(x.startswith("file /etc/localtime lrwxrwxrwx") and x.endswith("-> /usr/share/zoneinfo/Etc/UTC")
               for x in lines)
    assert any(x.startswith("file /boot/firmware/config.txt -rw") for x in lines)
    assert m.diff(a, b) == 0
    m.write(fake_root(tmp_path / "r3", "3.13.5-2"), fw, b)
    assert m.diff(a, b) == 1
    assert "package versions differing 1" in capsys.readouterr().out


def console(path: Path, *lines: str) -> None:
    path.write_text("[  OK  ] Started x.\n" + "".join(f"[  12.3] emoedge-check-hook[1]: EMOEDGE-CHECK {x}\n"
                                                     for x in lines))


def test_check_assertions_on_a_refused_file(tmp_path, capsys):
    ci = load("check_image")
    console(tmp_path / "bad.console", "boot boot_id=b1 uptime_s=20", "firstboot active_state=failed result=exit-code "
            "exit_status=2", "firstboot-journal: key 'colour': unknown key", "firstboot-journal: key 'mqtt.url': bad",
            "firstboot-journal: key 'purpose': is required", "sensor enabled=disabled active=inactive",
            "failed-units 1", "done")
    (tmp_path / "bad.firstboot.txt").write_text("key 'colour' ... key 'mqtt.url' ... key 'purpose'\n")
    (tmp_path / "bad.wants").write_text("ssh.service\n")
    assert ci.bad(tmp_path) == 0
    (tmp_path / "bad.firstboot.txt").write_text("key 'colour'\n")     # the report misses two of the three
    assert ci.bad(tmp_path) == 1
    assert "FAIL the bad MQTT URL ('mqtt.url') reported in emoedge-firstboot.txt" in capsys.readouterr().out


def test_check_assertions_want_wall_clock_records_and_the_sandbox(tmp_path):
    ci = load("check_image")
    t = 1_800_000_000
    lines = ["boot boot_id=b1 uptime_s=30", "firstboot active_state=inactive result=success exit_status=0",
             "sensor enabled=enabled active=active", "sensor process user=emoedge pid=42 NoNewPrivs: 1 Seccomp: 0",
             "sensor process-root-mount ro",
             "sensor process-data-mount rw", "sensor-show: User=emoedge", "sensor-show: ProtectSystem=strict",
             "sensor-show: ProtectHome=yes", "sensor-show: PrivateTmp=yes", "sensor-show: NoNewPrivileges=yes",
             "sensor-show: IPAddressDeny=0.0.0.0/0 ::/0", "sensor-show: Environment=EMOEDGE_MODELS=/opt/emoedge/models",
             f"interval start_unix_ns={(t + 100) * 10**9} end_unix_ns={(t + 102) * 10**9} frames=60 "
             f"face_observations=50 boot_id=b1 run_started_unix_ns={(t + 90) * 10**9}",
             "failed-units 0", f"clock unix_s={t + 200} utc=x", "done"]
    c = ci.Checks()
    ci.boot_checks(c, ci.marked(console(tmp_path / "c1", *lines) or tmp_path / "c1"), 1, (t, t + 300))
    assert c.failed == []
    stale = [x.replace(f"start_unix_ns={(t + 100) * 10**9}", "start_unix_ns=1000") for x in lines]   # a 1970 clock
    c = ci.Checks()
    ci.boot_checks(c, ci.marked(console(tmp_path / "c2", *stale) or tmp_path / "c2"), 1, (t, t + 300))
    assert any("wall-clock" in f for f in c.failed)
