"""The physics processes ``jettag generate`` knows, as Pythia 8 settings.

Each process is data: the Pythia settings strings that define it, what its
generator weights mean, and an optional event filter name (applied after
reconstruction). ``Process.pythia_settings(tune)`` appends the settings of a
tune (a :class:`~jettag.generator.tunes.Tune`, which lives in
:mod:`~jettag.generator.tunes`) and the process's weighting bias, which
applies to simulation only.
"""

from __future__ import annotations

from dataclasses import dataclass

from jettag.generator.tunes import Tune, get_tune

__all__ = ["COMMON_SETTINGS", "PROCESSES", "Process", "get_process"]

#: Settings shared by every process: LHC Run 3 energy, silent Pythia.
#: Long-lived hadrons (K0S, Lambda, ...) are decayed by Pythia with their true
#: lifetimes, so that V0 vertices appear at realistic radii; charged pions and
#: kaons are stable (the detector sees them as tracks).
COMMON_SETTINGS: tuple[str, ...] = (
    "Beams:eCM = 13600.",
    "Print:quiet = on",
    "Next:numberCount = 0",
    "Next:numberShowEvent = 0",
    "Next:numberShowInfo = 0",
    "Next:numberShowProcess = 0",
    "Check:event = off",
)

_Z_PLUS_JET = (
    "WeakBosonAndParton:qqbar2gmZg = on",
    "WeakBosonAndParton:qg2gmZq = on",
    "WeakZ0:gmZmode = 2",
    "PhaseSpace:pTHatMin = 250.",
    "23:onMode = off",
)

# A spin-0 resonance (Pythia's BSM H1 entry, PDG id 25) with a forced, very
# broad width so that one sample spans msoftdrop ~40-250 GeV; produced with a
# recoiling jet so it is boosted. Flat-mass weights are applied afterwards
# (``jettag.samples.flat_mass_weights``).
_WIDE_X_PLUS_JET = (
    "Higgs:useBSM = on",
    "HiggsBSM:gg2H1g(l:t) = on",
    "HiggsBSM:qg2H1q(l:t) = on",
    "HiggsBSM:qqbar2H1g(l:t) = on",
    # no WW/ZZ couplings, so that the bb/cc/qq branching ratio does not
    # collapse above 160 GeV
    "HiggsH1:coup2W = 0.",
    "HiggsH1:coup2Z = 0.",
    "PhaseSpace:pTHatMin = 250.",
    # a Breit-Wigner this wide, centred above the window, is nearly flat in
    # 30-270 GeV (measured: within +-15% before flattening)
    "25:m0 = 400.",
    "25:mWidth = 600.",
    "25:doForceWidth = on",
    "25:mMin = 30.",
    "25:mMax = 270.",
    "25:onMode = off",
)

# Heavy X (250 GeV) decays fit in one R=0.8 jet only above pT ~ 2m/R = 600 GeV:
# the x* samples are pT-hat biased so that every mass is covered by contained
# decays; their genWeight undoes the bias.
_X_PT_BIAS = (
    "PhaseSpace:bias2Selection = on",
    "PhaseSpace:bias2SelectionPow = 4.",
    "PhaseSpace:bias2SelectionRef = 250.",
)

_QCD = ("HardQCD:all = on", "PhaseSpace:pTHatMin = 200.")

# pT-hat biased sampling (flattens the steeply falling spectrum); the event
# weight genWeight compensates exactly. Simulation only: pseudo-data are
# unweighted, like data.
_PTHAT_BIAS = (
    "PhaseSpace:bias2Selection = on",
    "PhaseSpace:bias2SelectionPow = 4.",
    "PhaseSpace:bias2SelectionRef = 200.",
)


@dataclass(frozen=True)
class Process:
    """A generator process: Pythia settings plus how to read its output."""

    name: str
    description: str
    settings: tuple[str, ...]
    #: settings that make events weighted; applied to simulation (``Tune.is_mc``) only
    bias: tuple[str, ...] = ()
    #: name of the reconstruction-level filter, see ``jettag.generator.pipeline``
    event_filter: str | None = None
    #: PDG id of the hard resonance whose decay labels the signal jet
    resonance: int | None = None
    #: fraction of events generated with every weakly decaying B hadron forced
    #: into its decay channels with a muon (see ``jettag.pythia``); 0 = natural
    forced_muon_fraction: float = 0.0
    #: a mixture of other processes in fixed proportions: ((name, fraction), ...)
    components: tuple[tuple[str, float], ...] = ()
    #: the tunes this process may be generated with
    tunes: tuple[str, ...] = ("mc", "data")

    def check_tune(self, tune: str | Tune) -> Tune:
        """``tune`` resolved, once it is one this process may be generated with."""
        tune = get_tune(tune)
        if tune.name not in self.tunes:
            raise ValueError(
                f"process {self.name!r} is generated with tune {' or '.join(self.tunes)}, "
                f"not {tune.name!r}"
            )
        return tune

    def pythia_settings(self, tune: str | Tune) -> tuple[str, ...]:
        """Every Pythia setting for this process under ``tune`` (a Tune or its name)."""
        tune = self.check_tune(tune)
        bias = self.bias if tune.is_mc else ()
        return (*COMMON_SETTINGS, *self.settings, *bias, *tune.pythia_settings)


PROCESSES: dict[str, Process] = {
    "qcd": Process(
        "qcd",
        "hard QCD 2->2, pT-hat > 200 GeV, pT-hat^4 biased (weighted)",
        _QCD,
        bias=_PTHAT_BIAS,
    ),
    "zbb": Process("zbb", "Z(->bb)+jet, pT-hat > 250 GeV", (*_Z_PLUS_JET, "23:onIfAny = 5"), resonance=23),
    "zcc": Process("zcc", "Z(->cc)+jet, pT-hat > 250 GeV", (*_Z_PLUS_JET, "23:onIfAny = 4"), resonance=23),
    "zqq": Process(
        "zqq", "Z(->uu,dd,ss)+jet, pT-hat > 250 GeV", (*_Z_PLUS_JET, "23:onIfAny = 1 2 3"), resonance=23
    ),
    "xbb": Process(
        "xbb",
        "wide spin-0 X(30-270 GeV ->bb)+jet, pT-hat > 250 GeV",
        (*_WIDE_X_PLUS_JET, "25:onIfAny = 5"),
        bias=_X_PT_BIAS,
        resonance=25,
    ),
    "xcc": Process(
        "xcc",
        "wide spin-0 X(30-270 GeV ->cc)+jet, pT-hat > 250 GeV",
        (*_WIDE_X_PLUS_JET, "25:onIfAny = 4"),
        bias=_X_PT_BIAS,
        resonance=25,
    ),
    "xqq": Process(
        "xqq",
        "wide spin-0 X(30-270 GeV ->uu,dd,ss)+jet, pT-hat > 250 GeV",
        (*_WIDE_X_PLUS_JET, "25:onIfAny = 1 2 3"),
        bias=_X_PT_BIAS,
        resonance=25,
    ),
    "zqq_all": Process(
        "zqq_all",
        "Z(->qq, all five flavours, natural branching ratios)+jet, pT-hat > 250 GeV",
        (*_Z_PLUS_JET, "23:onIfAny = 1 2 3 4 5"),
        resonance=23,
    ),
    "zmix": Process(
        "zmix",
        "pseudo-data for the Z->bb proxy: unweighted QCD (95%) and Z(->qq)+jet (5%) events, "
        "mixed in fixed proportions (the Z enhancement over nature is in the metadata)",
        (),
        components=(("qcd", 0.95), ("zqq_all", 0.05)),
        tunes=("data",),
    ),
    "gbb_mu": Process(
        "gbb_mu",
        "muon-enriched hard QCD: events with a fat jet holding a muon above 5 GeV (weighted)",
        _QCD,
        bias=_PTHAT_BIAS,
        event_filter="fatjet_muon5",
        forced_muon_fraction=0.8,
    ),
}


def get_process(name: str) -> Process:
    """Look up a process by name, with an error that lists the known ones."""
    try:
        return PROCESSES[name]
    except KeyError:
        known = ", ".join(sorted(PROCESSES))
        raise ValueError(f"unknown process {name!r}; known processes: {known}") from None
