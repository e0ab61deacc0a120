"""The jettag program as a whole: help texts, the shipped-tagger list, one-line errors."""

from __future__ import annotations

import json

import pytest

from jettag import taggers
from jettag.cli import build_parser, main


def test_help_lists_commands_and_marks_plans(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in (
        "generate", "demo", "tag", "taggers", "train", "evaluate", "imbalance-study", "ddt", "flatten",
        "sf",
    ):
        assert command in text
    assert "Planned:" in text
    # nothing planned is offered as a command
    choices = build_parser()._subparsers._group_actions[0].choices
    assert "run" not in set(choices)


def test_taggers_lists_the_shipped_models(capsys):
    assert main(["taggers"]) == 0
    text = capsys.readouterr().out
    for name in taggers.available():
        assert name in text
    assert "Xbb, Xcc, Xqq, QCD" in text
    assert main(["taggers", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(taggers.available())
    for row in rows:
        assert row["model_bytes"] > 0 and row["directory_bytes"] >= row["model_bytes"]


def test_errors_are_one_line(tmp_path, capsys):
    code = main(["evaluate", str(tmp_path / "nosuch.root"), "--tagger", "pnet-lite", "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("jettag evaluate: error: ") and err.count("\n") == 1
    assert "nosuch.root" in err

    code = main(["evaluate", str(tmp_path / "x.root"), "--tagger", "pnet-lite", "--out", str(tmp_path / "a" / "b")])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and err.count("\n") == 1

    code = main(["evaluate", str(tmp_path / "x.root"), "--tagger", "no-such-tagger", "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert code == 2 and "pnet-lite" in err and err.count("\n") == 1
