"""bayesdissect._io: a folder written through atomic_dir replaces an earlier one only when
the block finishes; a failure leaves the earlier one and no temporary folder behind."""

from __future__ import annotations

import stat

import pytest

from bayesdissect._io import REPORT_FILE, atomic_dir, check_out_dir
from bayesdissect.errors import BayesDissectError


def test_atomic_dir_replaces_only_on_success(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        assert tmp.parent == tmp_path and not target.exists()
        (tmp / "a.txt").write_text("first")
    assert (target / "a.txt").read_text() == "first"
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    with pytest.raises(RuntimeError, match="disk full"), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("second")
        raise RuntimeError("disk full")
    assert (target / "a.txt").read_text() == "first"
    with atomic_dir(target) as tmp:
        (tmp / "b.txt").write_text("third")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]  # the old folder is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left


def test_check_out_dir(tmp_path):
    assert check_out_dir(tmp_path / "new") == tmp_path / "new"
    assert check_out_dir(tmp_path) == tmp_path  # empty
    (tmp_path / REPORT_FILE).write_text("<html>")
    (tmp_path / "effects.csv").write_text("")
    assert check_out_dir(tmp_path) == tmp_path  # an earlier report folder
    other = tmp_path / "notes"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(BayesDissectError, match="not an earlier report folder"):
        check_out_dir(other)
    with pytest.raises(BayesDissectError, match="not an earlier report folder"):
        check_out_dir(tmp_path / REPORT_FILE)  # a file, not a folder
    assert check_out_dir(other, marker="notes.txt") == other
