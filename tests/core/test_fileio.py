"""Atomic writes and hashes (emoedge.core.fileio)."""

import pytest


def test_atomic_write_keeps_nothing_on_failure_and_hashes(tmp_path):
    import hashlib

    from emoedge.core.fileio import atomic_write_bytes, atomic_write_text, atomic_writer, sha256_file

    target = tmp_path / "sub" / "a.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_text(tmp_path / "b.txt", "two\n")
    assert target.read_bytes() == b"one" and (tmp_path / "b.txt").read_text() == "two\n"
    assert sha256_file(target) == hashlib.sha256(b"one").hexdigest()
    with pytest.raises(RuntimeError), atomic_writer(target) as fh:
        fh.write(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"one" and sorted(p.name for p in target.parent.iterdir()) == ["a.bin"]


def test_a_small_file_is_read_and_hostile_ones_are_refused_without_hanging(tmp_path):
    import os

    import pytest

    from emoedge.core.fileio import read_small_file

    ok = tmp_path / "pw"
    ok.write_bytes(b"secret\n")
    assert read_small_file(ok, "the password file", 100) == b"secret\n"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)                      # no writer: a blocking open would wait for ever
    with pytest.raises(ValueError, match="it is a FIFO"):
        read_small_file(fifo, "the password file", 100)
    with pytest.raises(ValueError, match="it is a device"):
        read_small_file("/dev/zero", "the password file", 100)
    with pytest.raises(ValueError, match="folder"):
        read_small_file(tmp_path, "the password file", 100)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 101)
    with pytest.raises(ValueError, match="longer than 100 bytes"):
        read_small_file(big, "the password file", 100)
    with pytest.raises(ValueError, match="cannot read the password file"):
        read_small_file(tmp_path / "missing", "the password file", 100)
