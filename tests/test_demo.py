"""jettag demo end to end at a small size: outputs, counts behind the figures, refusals."""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path

import pytest

from jettag.cli import build_parser, main
from jettag.generator import validation

#: 60 events per sample, one worker: about 35 s on the 2-core development machine.
SMALL = ["--events", "60", "--workers", "1"]


def _subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)


def _strict(text: str) -> dict:
    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One small demo, run once for the tests of this module."""
    out = tmp_path_factory.mktemp("demo") / "run"
    buf = io.StringIO()  # capsys is function-scoped; this output is shared by the module's tests
    start = time.perf_counter()
    with contextlib.redirect_stdout(buf):
        code = main(["demo", *SMALL, "--outdir", str(out), "--json", str(out / "figures.json")])
    return {"out": out, "code": code, "text": buf.getvalue(), "seconds": time.perf_counter() - start}


def test_demo_finishes_and_ends_with_where_its_outputs_are(first_run):
    assert first_run["code"] == 0, first_run["text"]
    assert first_run["seconds"] < 180  # about 35 s here; generous for a slow CI machine
    lines = first_run["text"].rstrip().splitlines()
    tail = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in lines[-4:]}
    assert set(tail) == {"samples", "tables", "plots", "figures (JSON)"}
    for what, paths in tail.items():
        for path in paths.split(", "):
            assert Path(path).is_absolute() and Path(path).is_file(), (what, path)
    out = first_run["out"].resolve()
    assert {Path(p).name for p in tail["samples"].split(", ")} >= {
        "qcd.root", "zbb.root", "xbb.root", "gbb_mu.root", "zbb_data.root", "zbb_data.truth.root"
    }
    assert str(out / "tagging" / "evaluation.md") in tail["tables"]
    assert str(out / "tagging" / "roc_Xbb_vs_QCD.png") in tail["plots"]


def test_demo_suggests_only_commands_that_exist(first_run):
    text = first_run["text"]
    commands = [line.split()[1] for line in text.splitlines() if line.startswith("  jettag ")]
    assert {"evaluate", "tag", "taggers"} <= set(commands)
    assert set(commands) <= _subcommands()
    assert "--tagger pnet-lite" in text and "--model pnet-lite" in text
    sf = [line.split() for line in text.splitlines() if line.startswith("  jettag sf ")]
    assert [words[2] for words in sf] == ["histogram", "histogram", "fit"]
    # the demo's own SF fit, redone by the command: same working points and pT bin
    histogram = sf[0]
    assert histogram[histogram.index("--pt-edges") + 1] == "300,1000"
    assert Path(histogram[histogram.index("--working-points") + 1]).is_file()


def test_demo_prints_the_counts_behind_its_figures(first_run):
    text, out = first_run["text"], first_run["out"]
    figures = _strict((out / "figures.json").read_text())
    # every generator check is printed with the jets behind it
    assert "jets behind it" in text
    for name, check in validation.CHECKS.items():
        assert check.counts and all(key in figures for key, _ in check.counts), name
        row = next(line for line in text.splitlines() if line.startswith(name + " "))
        assert row.endswith(check.jets_behind(figures))
    # on about 20 QCD jets the 1% and 0.1% mistag columns are statistics-limited and say so
    n_qcd = figures["tagger_pnet-lite_n_qcd_jets"]
    assert n_qcd < 100 and figures["tagger_pnet-lite_Xbb_eff_at_1pct_qcd_stat_limited"] is True
    assert f" / {n_qcd} |" in text
    assert "† statistics-limited: fewer than 10 QCD jets behind the figure" in text
    assert "0.1% QCD on" in text
    # 5% of so few QCD jets cannot be cut: the sculpting figure is n/a with the reason, not taken elsewhere
    assert "n/a (the nearest cut passes" in text
    evaluation = _strict((out / "tagging" / "evaluation.json").read_text())
    assert evaluation["pnet-lite"]["signals"]["Xbb"]["mass_sculpting"]["qcd_efficiency"] == 0.05


def test_demo_measures_zbb_scale_factors_beside_the_pseudodata_truth(first_run):
    text, out = first_run["text"], first_run["out"]
    figures = _strict((out / "figures.json").read_text())
    lines = text.splitlines()
    title = next(i for i, line in enumerate(lines) if line.startswith("Scale factors: the Z->bb"))
    assert "pseudo-data" in lines[title] and "one pT bin 300-1000 GeV" in lines[title]
    assert lines[title + 1].startswith("| proxy | WP | pT [GeV] | SF |")  # jettag sf fit's table
    fits = [line.split(" | ") for line in lines[title + 3 : title + 6]]
    assert [cells[1] for cells in fits] == ["L", "M", "T"]
    # each fitted SF beside the true SF of the pseudo-data (truth sidecar / MC bb jets)
    compared = next(i for i, line in enumerate(lines) if line.startswith("| WP | cut | fitted SF"))
    rows = {line.split(" | ")[0][2:]: line for line in lines[compared + 2 : compared + 5]}
    limited = []
    for wp, cut in (("L", 0.5), ("M", 0.8), ("T", 0.9)):
        assert figures[f"sf_zbb_{wp}_cut"] == cut and f"| {cut:g} |" in rows[wp]
        n_pass = figures[f"sf_zbb_{wp}_n_data_pass"]
        assert figures[f"sf_zbb_{wp}_stat_limited"] is (n_pass < validation.MIN_JETS)
        if n_pass < validation.MIN_JETS:
            limited.append(wp)
        true = figures[f"sf_zbb_{wp}_true"]
        assert true is None or f"{true:.3f} ± " in rows[wp]
        if figures[f"sf_zbb_{wp}_status"] == "ok":
            assert f"{figures[f'sf_zbb_{wp}']:.3f} +" in rows[wp]
        else:  # never a number for a failed fit
            assert figures[f"sf_zbb_{wp}"] is None and "| failed" in rows[wp]
            assert f"sf.json not written (no number for a failed fit): {wp}, 300-1000 GeV: " in text
    if limited:
        assert f"statistics-limited†: {', '.join(limited)}:" in lines[title]
        assert f"† statistics-limited: fewer than {validation.MIN_JETS} pseudo-data events" in text
    # sf.json exactly when every bin fits; the outputs are listed at the end
    failed = figures["sf_zbb_failed"]
    assert failed == [wp for wp in "LMT" if figures[f"sf_zbb_{wp}_status"] != "ok"]
    assert (out / "sf" / "sf.json").is_file() is (not failed)
    tables = lines[-3].split(": ", 1)[1].split(", ")
    assert str(out.resolve() / "sf" / "sf.md") in tables
    assert (str(out.resolve() / "sf" / "sf.json") in tables) is (not failed)
    assert "| WP | cut | fitted SF" in (out / "sf" / "sf.md").read_text()


def test_demo_refuses_a_previous_run_unless_forced(first_run, capsys):
    out = first_run["out"]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main(["demo", *SMALL, "--outdir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists and is not empty; give --force" in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # nothing touched
    assert main(["demo", *SMALL, "--outdir", str(out), "--force"]) == 0
    captured = capsys.readouterr()
    assert captured.out.rstrip().splitlines()[-1].startswith("plots: ")
    assert (out / "qcd.root").stat().st_mtime_ns > before[out / "qcd.root"]


def test_demo_needs_the_parent_folder(tmp_path, capsys):
    assert main(["demo", *SMALL, "--outdir", str(tmp_path / "missing" / "demo")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
    assert not (tmp_path / "missing").exists()


def test_a_check_says_which_jets_it_rests_on_and_when_they_are_too_few():
    check = validation.CHECKS["qcd_bb_fraction"]
    many = {"qcd_bb_fraction": 0.02, "qcd_n_bb_jets": 15, "qcd_n_jets": 740}
    few = {"qcd_bb_fraction": 0.004, "qcd_n_bb_jets": validation.MIN_JETS - 1, "qcd_n_jets": 2200}
    assert check.jets_behind(many) == "15 bb, 740 QCD" and not check.stat_limited(many)
    assert check.stat_limited(few)  # 9 bb jets: the fraction is statistics-limited, however many QCD jets
