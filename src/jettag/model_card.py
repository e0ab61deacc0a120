"""Model cards: what a trained tagger is, how it was made, and how well it does on held-out jets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jettag.evaluate import markdown_table
from jettag.tagger.phase_space import PHASE_SPACE_FILE, PhaseSpace

__all__ = ["model_card", "phase_space_section", "write_model_card"]


def model_card(training: dict[str, Any], evaluation: dict[str, Any] | None = None) -> str:
    """The MODEL_CARD.md text of a model directory's training.json (+ evaluation.json)."""
    name = training["name"]
    lines = [
        f"# {name}",
        "",
        f"{training['description']}.",
        "",
        "## Use",
        "",
        "```python",
        "from jettag import taggers",
        f'tagger = taggers.load("{name}")',
        "scores = tagger(events)  # per fat jet: " + ", ".join(training["classes"]),
        "```",
        "",
        "Discriminant for a signal class X: `X / (X + QCD)`.",
        "",
        *phase_space_section(training),
        "## Training",
        "",
        f"- classes: {', '.join(training['classes'])}; outputs {', '.join(training['output_names'])}",
        f"- jets: pT > {training['selection']['pt_min']:g} GeV, |eta| < {training['selection']['abs_eta_max']:g}, "
        f"{training['selection']['msd_min']:g} <= msoftdrop < {training['selection']['msd_max']:g} GeV; "
        f"signal jets contain both decay quarks (dR < {training['selection']['match_dr']:g})",
        f"- mass decorrelation: `{training['mass_weighting']}` "
        "(signal classes reweighted to the QCD msoftdrop shape)"
        if training["mass_weighting"] != "none"
        else "- mass decorrelation: none",
        "- training jets: " + ", ".join(f"{c} {n}" for c, n in training["training_jets"].items()),
        f"- model file: {training['model_bytes'] / 1024:.0f} kB",
        f"- training time: {training['seconds']:.0f} s on {training['platform']['machine']}",
    ]
    if "parameters" in training:
        cfg = training["train_config"]
        lines.append(
            f"- network: `{training['architecture']}`, {training['parameters']} parameters; "
            f"{cfg['epochs']} epochs, batch {cfg['batch_size']}, AdamW lr {cfg['learning_rate']:g} (one-cycle), "
            f"loss {cfg['loss']}, class weights {cfg['class_weights']}, sampling {cfg['sampling']}, seed {cfg['seed']}"
        )
    if "bdt" in training:
        lines.append(
            f"- XGBoost {training['bdt']}, {training['rounds_kept']} rounds kept (early stopping), "
            f"classes balanced in weight, seed {training['seed']}; "
            f"inputs: {', '.join(training['hl_features'])}"
        )
    lines += ["", "Samples (generated with `jettag generate`):", ""]
    lines += [
        f"- `{f['file']}`: process {f.get('process')}, seed {f.get('seed')}, {f.get('n_events')} events, tune {f.get('tune')}"
        for f in training["training_files"]
    ]
    if training.get("command"):
        lines += ["", "Reproduce with:", "", "```sh", training["command"], "```"]
    if evaluation:
        lines += ["", "## Held-out performance", ""]
        files = evaluation.get("files", [])
        if files:
            lines += ["Held-out samples (seeds never used in training):", ""]
            lines += [f"- `{f['file']}`: process {f.get('process')}, seed {f.get('seed')}" for f in files]
            lines.append("")
        lines.append(
            "Jets count one each; 1/JSD at "
            f"{evaluation['signals'].get('Xbb', {}).get('mass_sculpting', {}).get('qcd_efficiency', 0.05):.0%} "
            "QCD efficiency (the last column: the same for a random cut, the ceiling with these many jets)."
        )
        lines += ["", markdown_table({name: evaluation})]
    return "\n".join(lines) + "\n"


def phase_space_section(training: dict[str, Any]) -> list[str]:
    """The card's "Phase space" section (lines, ending with a blank one)."""
    space = PhaseSpace.from_selection(training.get("phase_space") or training["selection"])
    return [
        "## Phase space",
        "",
        f"Trained on jets with {space.describe()} "
        f"(machine-readable in `{PHASE_SPACE_FILE}`, read by `Tagger.load`). Outside it the "
        "scores are extrapolations, often confident ones: do not cut on the scores of jets the "
        "tagger never saw. Select them first:",
        "",
        "```python",
        "ok = tagger.in_phase_space(events)  # boolean, shaped like events.FatJet",
        "```",
        "",
    ]


def write_model_card(model_dir: str | Path, training: dict[str, Any], evaluation: dict[str, Any] | None) -> Path:
    """Write ``model_dir/MODEL_CARD.md``."""
    path = Path(model_dir) / "MODEL_CARD.md"
    path.write_text(model_card(training, evaluation))
    return path
