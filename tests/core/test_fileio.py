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
