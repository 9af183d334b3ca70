"""Bad input: one ``BayesDissectError`` line naming file, row, field and the expectation;
the CLI exits 2 with that one line and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_features import base_row

from bayesdissect import load
from bayesdissect.cli.main import main
from bayesdissect.errors import BayesDissectError


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def rows3() -> list[dict[str, Any]]:
    return [base_row() for _ in range(3)]


def fails(source: Any, *needles: str, **kw: Any) -> str:
    """``load`` must raise one line containing every needle; the CLI must exit 2 with it."""
    with pytest.raises(BayesDissectError) as info:
        load(source, **kw)
    msg = str(info.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


def cli_fails(capsys: pytest.CaptureFixture[str], source: str, *needles: str) -> None:
    assert main(["info", source]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err
    for needle in needles:
        assert needle in lines[0]


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "nope.parquet")
    fails(path, path, "file not found")
    cli_fails(capsys, path, "file not found")


def test_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fails(tmp_path, str(tmp_path), "directory")
    bad = tmp_path / "garbage.parquet"
    bad.write_bytes(b"this is not parquet at all")
    fails(bad, str(bad), "cannot read parquet")
    cli_fails(capsys, str(bad), "cannot read parquet")
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"a": "\xe9"}\n')
    fails(latin, str(latin), "cannot read")
    fails(tmp_path / "data.xlsx", "file not found")
    (tmp_path / "data.xlsx").write_text("x")
    fails(tmp_path / "data.xlsx", "unknown file type", ".parquet")


def test_truncated_json_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", rows3())
    text = path.read_text()
    path.write_text(text[: len(text) - 40])  # cut inside the last row
    fails(path, str(path), "line 3", "row 2", "not valid JSON")
    cli_fails(capsys, str(path), "line 3")


def test_missing_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = rows3()
    del rows[2]["scenario_group"]
    path = write_jsonl(tmp_path / "m.jsonl", rows)
    fails(path, str(path), "row 2", "'scenario_group'", "missing", "expected")
    cli_fails(capsys, str(path), "row 2", "scenario_group")
    rows = rows3()
    del rows[1]["response_2"]["num_words"]
    fails(write_jsonl(tmp_path / "w.jsonl", rows), "row 1", "response_2.num_words")
    rows = rows3()
    del rows[0]["errors_response_1"]["accuracy check"]
    fails(write_jsonl(tmp_path / "e.jsonl", rows), "row 0",
          "errors_response_1.accuracy check")
    rows = rows3()
    rows[1]["basic_response_1"] = "3"
    fails(write_jsonl(tmp_path / "s.jsonl", rows), "row 1", "basic_response_1", "struct")
    rows[1]["basic_response_1"] = '{"polite": 3'
    fails(write_jsonl(tmp_path / "s.jsonl", rows), "row 1", "basic_response_1", "JSON text")


def test_missing_property_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = rows3()
    del rows[1]["basic_response_2"]["polite"]
    path = write_jsonl(tmp_path / "k.jsonl", rows)
    fails(path, str(path), "row 1", "basic_response_2.polite", "rating 0-3")
    cli_fails(capsys, str(path), "basic_response_2.polite")


@pytest.mark.parametrize("label", ["C", "tie", 3, True, "response_3", ["A"]])
def test_bad_label(tmp_path: Path, label: Any) -> None:
    rows = rows3()
    rows[2]["preference_labels"]["human"] = label
    path = write_jsonl(tmp_path / "l.jsonl", rows)
    fails(path, str(path), "row 2", "preference_labels.human", "response_1")


def test_bad_label_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = rows3()
    rows[0]["preference_labels"]["human"] = "C"
    cli_fails(capsys, str(write_jsonl(tmp_path / "l.jsonl", rows)), "row 0", "'C'")


@pytest.mark.parametrize("words, ok", [(-1, False), (-0.0, True), (12.0, True), (12.5, False),
                                       ("12", False), (None, False)])
def test_word_counts(tmp_path: Path, words: Any, ok: bool) -> None:
    rows = rows3()
    rows[1]["response_1"]["num_words"] = words
    path = write_jsonl(tmp_path / "n.jsonl", rows)
    if ok:
        assert load(path).sizes["pair"] == 3
    else:
        fails(path, str(path), "row 1", "response_1.num_words", "non-negative integer")


def test_negative_word_count_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = rows3()
    rows[2]["response_2"]["num_words"] = -5
    cli_fails(capsys, str(write_jsonl(tmp_path / "n.jsonl", rows)), "row 2", "-5")


def test_empty_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("e.jsonl", "e.csv"):
        (tmp_path / name).write_text("  \n" if name.endswith("jsonl") else "")
        fails(tmp_path / name, name, "empty")
        cli_fails(capsys, str(tmp_path / name), "empty")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"query": pa.array([], pa.string())}), tmp_path / "e.parquet")
    fails(tmp_path / "e.parquet", "no rows")
    (tmp_path / "h.csv").write_text("label:human,clear\n")
    fails(tmp_path / "h.csv", "no rows")


def test_tidy_non_numeric_feature(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.csv"
    path.write_text("label:human,clear,lengthy\nA,1,0\nB,abc,1\n")
    fails(path, str(path), "row 1", "'clear'", "'abc'", "finite number")
    cli_fails(capsys, str(path), "row 1", "clear")
    path.write_text("label:human,clear\nA,1\nB,\n")
    fails(path, "row 1", "'clear'", "empty")
    path.write_text("label:human,clear\nA,1\nB,inf\n")
    fails(path, "row 1", "finite number")


def test_tidy_other_bad_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("label:human,clear\nA,1\nmaybe,0\n")
    fails(path, "row 1", "'label:human'", "'maybe'", "A/B")
    path.write_text("clear,lengthy\n1,0\n")
    fails(path, "no label:<judge> column")
    path.write_text("label:human\nA\n")
    fails(path, "no property columns")
    path.write_text("pair,label:human,clear\n0,A,1\n0,B,1\n")
    fails(path, "row 1", "repeats pair id")
    path.write_text("pair,label:human,clear\n0,A,1\nx,B,1\n")
    fails(path, "row 1", "'pair'", "non-negative integer")
    path.write_text("label:human,clear,case:long\nA,1,perhaps\n")
    fails(path, "row 0", "'case:long'", "boolean")
    path.write_text("group,label:human,clear\n,A,1\n")
    fails(path, "row 0", "'group'")


def test_bad_rating_values_are_not_errors_in_gair_rows(tmp_path: Path) -> None:
    # §5.2: an unparseable GAIR rating is 0 by the paper's rule, not an error
    rows = rows3()
    rows[0]["basic_response_1"]["polite"] = "N/A"
    rows[0]["basic_response_2"]["polite"] = 2.5
    assert load(write_jsonl(tmp_path / "r.jsonl", rows))["x"].values[0].sum() == 0


def test_bad_field_map() -> None:
    fails("demo", "field_map", field_map={"scenario_group": 3})


def test_unknown_hf_id_fails_fast_offline(capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.perf_counter()
    msg = fails("hf:no-such-owner/no-such-dataset", "hf:no-such-owner/no-such-dataset",
                "local file")
    assert time.perf_counter() - t0 < 10
    assert "unreachable" in msg or "not found" in msg or "access" in msg
    cli_fails(capsys, "hf:no-such-owner/x", "hf:no-such-owner/x")
    fails("hf:", "not a valid dataset id")
    fails("hf:bad id with spaces", "not a valid dataset id")


def test_hf_access_missing_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    import bayesdissect.data.loaders as loaders

    class GatedRepoError(Exception):
        pass

    def gated(*a: Any, **k: Any) -> Any:
        raise GatedRepoError("401 Client Error: access to dataset is restricted")

    monkeypatch.setattr(loaders, "_probe_hub", lambda: "")
    monkeypatch.setattr(datasets, "load_dataset", gated)
    fails("hf:GAIR/preference-dissection", "access is missing", "HF_TOKEN", "local file")


def test_cli_subprocess_has_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("label:human,clear\nA,one\n")
    proc = subprocess.run([sys.executable, "-m", "bayesdissect", "info", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "row 0" in proc.stderr
