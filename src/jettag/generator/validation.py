"""Physics checks of generated samples: the figures issue 2 holds the generator to.

Each function takes sample files and returns plain numbers (dicts of floats),
so that the tests assert on them, ``jettag demo`` prints them and a benchmark
can record them. Each also returns the numbers of jets its figures rest on
(``*_n_jets`` keys); each :class:`Check` names the counts behind its figure
and says when fewer than :data:`MIN_JETS` stand behind it (statistics-limited).
The thresholds live in ``CHECKS``; nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np

from jettag.samples import flat_mass_weights, read_fatjets, resonance_mass

__all__ = [
    "CHECKS",
    "MIN_JETS",
    "SIMPLE_TAG_IPSIG2",
    "Check",
    "flat_mass_coverage",
    "gbb_muon_purity",
    "heavy_flavour_visibility",
    "pseudodata_shift",
    "qcd_bb_fraction",
    "zbb_mass_peak",
]


#: A figure resting on fewer jets than this is statistics-limited (about 30% or
#: more relative uncertainty); the same threshold as ``jettag.performance.MIN_BACKGROUND_JETS``.
MIN_JETS = 10


@dataclass(frozen=True)
class Check:
    """A named figure with its accepted range and the jet counts behind it.

    ``counts``: (key of the figures dict holding a jet count, what is counted),
    for every sample of jets the figure rests on.
    """

    name: str
    low: float
    high: float
    what: str
    counts: tuple[tuple[str, str], ...] = ()

    def passes(self, value: float) -> bool:
        return bool(self.low <= value <= self.high)

    def jets_behind(self, figures: dict[str, float]) -> str:
        """The counts behind the figure, e.g. ``"212 bb, 180 light"``."""
        return ", ".join(f"{int(figures[key])} {what}" for key, what in self.counts if key in figures)

    def stat_limited(self, figures: dict[str, float]) -> bool:
        """Fewer than :data:`MIN_JETS` jets in one of the counts behind the figure."""
        return any(figures[key] < MIN_JETS for key, _ in self.counts if key in figures)


CHECKS: dict[str, Check] = {
    c.name: c
    for c in (
        Check(
            "zbb_median_msoftdrop", 80.0, 100.0, "Z->bb, pT>300, >=2 B: median msoftdrop [GeV]",
            (("zbb_n_jets", "bb"),),
        ),
        Check("bb_sv_fraction", 0.5, 1.0, "bb jets with an associated SV", (("bb_n_jets", "bb"),)),
        Check("light_sv_fraction", 0.0, 0.2, "light jets with an associated SV", (("light_n_jets", "light"),)),
        Check(
            "ipsig2_ratio_bb_light", 3.0, np.inf, "median 2nd-largest IP sig., bb / light",
            (("bb_n_jets", "bb"), ("light_n_jets", "light")),
        ),
        Check(
            "qcd_bb_fraction", 0.005, 0.05, "QCD pT>300: bb-labelled fraction",
            (("qcd_n_bb_jets", "bb"), ("qcd_n_jets", "QCD")),
        ),
        Check(
            "gbb_mu_b_fraction", 0.5, 1.0, "gbb_mu: muon-tagged jets that are b or bb (count)",
            (("gbb_mu_n_jets", "muon-tagged"),),
        ),
        Check(
            "xbb_min_bin_over_mean", 0.3, np.inf, "xbb flat-mass: smallest 10-GeV bin / mean",
            (("xbb_min_bin_n_jets", "in that bin"), ("xbb_n_jets", "X-matched")),
        ),
        Check(
            "pseudodata_eff_shift", 0.05, 0.25, "bb eff. of IP-sig.(2nd) > 10: |data/MC - 1|",
            (("bb_n_jets_mc", "bb MC"), ("bb_n_fail_mc", "fail"), ("bb_n_jets_data", "bb data"),
             ("bb_n_fail_data", "fail")),
        ),
    )
}


def _flat(jets: ak.Array, field: str) -> np.ndarray:
    return ak.to_numpy(ak.flatten(jets[field])).astype(np.float64)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1])]) if len(values) else float("nan")


def zbb_mass_peak(zbb: str | Path, *, pt_min: float = 300.0) -> dict[str, float]:
    """Median msoftdrop of Z->bb jets (pT > pt_min, >= 2 B hadrons)."""
    jets = ak.flatten(read_fatjets(zbb))
    sel = (jets["pt"] > pt_min) & (jets["nBHadrons"] >= 2)
    msd = ak.to_numpy(jets["msoftdrop"][sel])
    return {"zbb_median_msoftdrop": float(np.median(msd)) if len(msd) else float("nan"), "zbb_n_jets": len(msd)}


def heavy_flavour_visibility(bb_sample: str | Path, light_sample: str | Path, *, pt_min: float = 300.0) -> dict[str, float]:
    """SV rate and 2nd-largest IP significance of bb jets against light jets."""
    bb = ak.flatten(read_fatjets(bb_sample))
    bb = bb[(bb["pt"] > pt_min) & (bb["nBHadrons"] >= 2)]
    light = ak.flatten(read_fatjets(light_sample))
    light = light[(light["pt"] > pt_min) & (light["label"] == 0)]
    w_bb = ak.to_numpy(bb["weight"]).astype(np.float64)
    w_l = ak.to_numpy(light["weight"]).astype(np.float64)
    has_sv_bb = ak.to_numpy(bb["n_sv"] > 0)
    has_sv_l = ak.to_numpy(light["n_sv"] > 0)
    ip_bb = _weighted_median(ak.to_numpy(bb["sip3dsig_2"]).astype(float), w_bb)
    ip_l = _weighted_median(ak.to_numpy(light["sip3dsig_2"]).astype(float), w_l)
    return {
        "bb_sv_fraction": float(np.average(has_sv_bb, weights=w_bb)) if len(w_bb) else float("nan"),
        "light_sv_fraction": float(np.average(has_sv_l, weights=w_l)) if len(w_l) else float("nan"),
        "ipsig2_median_bb": ip_bb,
        "ipsig2_median_light": ip_l,
        "ipsig2_ratio_bb_light": ip_bb / ip_l if ip_l > 0 else float("inf"),
        "bb_n_jets": len(w_bb),
        "light_n_jets": len(w_l),
    }


def qcd_bb_fraction(qcd: str | Path, *, pt_min: float = 300.0) -> dict[str, float]:
    """Generator-weighted fraction of bb-labelled QCD fat jets above ``pt_min``."""
    jets = ak.flatten(read_fatjets(qcd))
    jets = jets[jets["pt"] > pt_min]
    w = ak.to_numpy(jets["weight"]).astype(np.float64)
    is_bb = ak.to_numpy(jets["label"] == 4)
    return {
        "qcd_bb_fraction": float(np.average(is_bb, weights=w)) if len(w) else float("nan"),
        "qcd_n_jets": len(w),
        "qcd_n_bb_jets": int(is_bb.sum()),
    }


def gbb_muon_purity(gbb_mu: str | Path) -> dict[str, float]:
    """Fraction of the sample's muon-tagged fat jets that hold >= 1 B hadron.

    ``gbb_mu_b_fraction`` counts jets (the sample's composition, enriched by
    the forced semileptonic B decays); ``gbb_mu_b_fraction_weighted`` applies
    genWeight and so gives the natural composition of muon-tagged QCD jets.
    """
    jets = ak.flatten(read_fatjets(gbb_mu))
    jets = jets[jets["has_muon"]]
    w = ak.to_numpy(jets["weight"]).astype(np.float64)
    is_b = ak.to_numpy(jets["nBHadrons"] >= 1)
    return {
        "gbb_mu_b_fraction": float(is_b.mean()) if len(w) else float("nan"),
        "gbb_mu_b_fraction_weighted": float(np.average(is_b, weights=w)) if len(w) else float("nan"),
        "gbb_mu_n_jets": len(w),
    }


def flat_mass_coverage(
    xbb: str | Path, *, lo: float = 40.0, hi: float = 250.0, pt_min: float = 300.0, match_dr: float = 0.8
) -> dict[str, float]:
    """Smallest 10-GeV msoftdrop bin over the mean, for X-matched jets after flat-mass weights.

    The leading fat jet with pT > ``pt_min`` within ``match_dr`` of the
    resonance's decay products' direction (the jet holding >= 2 B hadrons for
    X->bb) is taken per event, weighted by ``flat_mass_weights`` of the
    generated X mass.
    """
    jets = read_fatjets(xbb)
    weights = flat_mass_weights(resonance_mass(xbb))
    good = (jets["pt"] > pt_min) & (jets["nBHadrons"] >= 2)
    lead = ak.firsts(jets[good])
    has = ~ak.is_none(lead)
    msd = ak.to_numpy(lead["msoftdrop"][has]).astype(float)
    w = weights[ak.to_numpy(has)]
    edges = np.arange(lo, hi + 5, 10.0)
    counts, _ = np.histogram(msd, bins=edges, weights=w)
    jets_per_bin, _ = np.histogram(msd, bins=edges)
    mean = counts.mean()
    return {
        "xbb_min_bin_over_mean": float(counts.min() / mean) if mean > 0 else float("nan"),
        "xbb_max_bin_over_mean": float(counts.max() / mean) if mean > 0 else float("nan"),
        "xbb_n_jets": len(msd),
        "xbb_min_bin_n_jets": int(jets_per_bin[np.argmin(counts)]),
    }


def _tag_efficiency(path: str | Path, *, cut: float, pt_min: float) -> tuple[float, int, int]:
    """(efficiency, bb jets, bb jets failing the tag)."""
    jets = ak.flatten(read_fatjets(path))
    jets = jets[(jets["pt"] > pt_min) & (jets["nBHadrons"] >= 2)]
    w = ak.to_numpy(jets["weight"]).astype(np.float64)
    passed = ak.to_numpy(jets["sip3dsig_2"] > cut)
    eff = float(np.average(passed, weights=w)) if len(w) else float("nan")
    return eff, len(w), int((~passed).sum())


#: The simple tag of the pseudo-data check: 2nd-largest track IP significance above this.
#: (At 3 the bb efficiency saturates near 95% in both; 10 is a tight working point,
#: about 80% for bb jets in simulation.)
SIMPLE_TAG_IPSIG2 = 10.0


def pseudodata_shift(
    mc: str | Path, data: str | Path, *, cut: float = SIMPLE_TAG_IPSIG2, pt_min: float = 300.0
) -> dict[str, float]:
    """True efficiency of the tag "2nd-largest IP sig. > cut" on bb jets, MC vs pseudo-data.

    The pseudo-data labels come from the truth sidecar. With efficiencies near
    80%, the jets that fail the tag (``bb_n_fail_*``) limit the precision of the
    shift, so they are counted too.
    """
    eff_mc, n_mc, fail_mc = _tag_efficiency(mc, cut=cut, pt_min=pt_min)
    eff_data, n_data, fail_data = _tag_efficiency(data, cut=cut, pt_min=pt_min)
    return {
        "bb_tag_eff_mc": eff_mc,
        "bb_tag_eff_data": eff_data,
        "true_sf": eff_data / eff_mc if eff_mc > 0 else float("nan"),
        "pseudodata_eff_shift": abs(eff_data / eff_mc - 1.0) if eff_mc > 0 else float("nan"),
        "bb_n_jets_mc": n_mc,
        "bb_n_jets_data": n_data,
        "bb_n_fail_mc": fail_mc,
        "bb_n_fail_data": fail_data,
    }
