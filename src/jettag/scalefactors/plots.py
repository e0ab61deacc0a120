"""Pre- and post-fit plots of one scale-factor fit: stacked MC components against data.

:func:`plot_fit` draws, for one working point and pT bin, the pass and fail regions side
by side (mplhep style, ``mplhep.histplot(..., stack=True)``): the expected yield of each
fit component before the fit (nominal templates; Z->bb QCD from its data-driven start)
and after it (at the best-fit parameters), from :func:`jettag.scalefactors.fit.postfit_yields`,
against the data with Poisson error bars. The title says the proxy, working point, pT bin,
the fitted SF with its errors and the fit status. A failed fit has no post-fit model: its
post-fit file shows the pre-fit model and says so in the title; inputs too degenerate for a
model (no MC signal in a region) show the MC templates as they are.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jettag.errors import JettagError
from jettag.scalefactors.fit import SFResult, postfit_yields
from jettag.scalefactors.model import DEFAULT_KAPPA
from jettag.scalefactors.templates import REGIONS, RegionInputs

__all__ = ["plot_fit", "plot_stem"]

#: on top of mplhep's CMS style: smaller text, no minor ticks (they cost most of the drawing)
_FAST = {"font.size": 11, "xtick.minor.visible": False, "ytick.minor.visible": False}
_XLABEL = {"gbb": "ln(leading SV mass / GeV)", "zbb": "soft-drop mass [GeV]"}


def _edge(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value).replace(".", "p")  # as io


def plot_stem(result: SFResult | Mapping[str, Any]) -> str:
    """The file-name stem of one fit's plots: ``L_pt300to400``."""
    get = result.get if isinstance(result, Mapping) else lambda k: getattr(result, k)
    return f"{get('working_point')}_pt{_edge(get('pt_low'))}to{_edge(get('pt_high'))}"


def _sf_text(result: SFResult) -> str:
    if result.status != "ok" or result.sf is None:
        text = textwrap.shorten(result.message or "no message", 110, placeholder="...")
        return text if text.startswith(("fit failed", "not fitted")) else f"fit failed: {text}"
    return f"SF = {result.sf:.3f} +{result.err_up:.3f} -{result.err_down:.3f} (status {result.status})"


def plot_fit(
    inputs: RegionInputs,
    result: SFResult,
    out_dir: str | Path,
    *,
    kappa: float | Mapping[str, float] = DEFAULT_KAPPA,
    n_tf: int = 1,
) -> list[Path]:
    """Write ``<wp>_pt<lo>to<hi>_prefit.png`` and ``..._postfit.png`` into ``out_dir``.

    ``kappa`` and ``n_tf`` must be those of the fit (they define the model's components
    and, for Z->bb, the pre-fit QCD). Returns the two paths.
    """
    import matplotlib
    import mplhep
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out_dir = Path(out_dir)
    edges = np.asarray(inputs.observable_edges, dtype=float)
    failed = result.status != "ok" or result.sf is None
    try:
        stages = {
            "prefit": postfit_yields(inputs, None, kappa=kappa, n_tf=n_tf),
            "postfit": postfit_yields(inputs, None if failed else result, kappa=kappa, n_tf=n_tf),
        }
        model_note = ""
    except JettagError:  # degenerate inputs (no MC signal in a region): no fit model
        stages = {"prefit": inputs.mc, "postfit": inputs.mc}
        model_note = " (no fit model: MC templates shown)"
    where = (
        f"{inputs.proxy} {inputs.working_point}, "
        f"pT {inputs.pt_edges[0]:g}-{inputs.pt_edges[1]:g} GeV"
    )
    paths = []
    for stage, yields in stages.items():
        label = "pre-fit" if stage == "prefit" else "post-fit"
        if stage == "postfit" and failed:
            label = "no post-fit (pre-fit shown)"
        label += model_note
        with matplotlib.rc_context(mplhep.style.CMS), matplotlib.rc_context(_FAST):
            fig = Figure(figsize=(11, 4.8))
            FigureCanvasAgg(fig)
            axes = fig.subplots(1, 2)
            for ax, region in zip(axes, REGIONS, strict=True):
                components = list(yields[region])
                mplhep.histplot(
                    [np.asarray(yields[region][c], dtype=float) for c in components],
                    edges,
                    stack=True,
                    histtype="fill",
                    label=components,
                    ax=ax,
                )
                data = np.asarray(inputs.data[region], dtype=float)
                mplhep.histplot(
                    data, edges, histtype="errorbar", yerr=True, color="black",
                    label=f"data ({data.sum():.0f})", ax=ax,
                )  # fmt: skip
                total = np.sum([yields[region][c] for c in components], axis=0)
                top = max(float(np.max(total, initial=0.0)), float(np.max(data, initial=0.0)))
                ax.set_ylim(0, 1.45 * top + 1.0)
                ax.set_xlim(edges[0], edges[-1])
                ax.set_xlabel(_XLABEL.get(inputs.proxy, "observable"))
                ax.set_ylabel("events / bin")
                ax.set_title(f"{region} region: expected {total.sum():.4g}", fontsize=11)
                ax.legend(fontsize=8, loc="upper right", ncol=2)
            fig.suptitle(f"{where}, {label}\n{_sf_text(result)}", fontsize=10)
            fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.84, wspace=0.22)
            path = out_dir / f"{plot_stem(result)}_{stage}.png"
            fig.savefig(path, dpi=72)
        paths.append(path)
    return paths
