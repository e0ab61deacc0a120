"""coffea processors shipped with jettag, and their registry.

Installed as ``jettag.processors``; in a checkout they live in ``processors/``.
Each processor is a ``coffea.processor.ProcessorABC`` that reads like the
analysis note (select, compute, fill) and calls the library for the heavy
lifting; it is registered here under a short name, so that the CLI and users
find it by name:

>>> from jettag import processors
>>> processors.available()
>>> cls = processors.get("NAME")

Shipped:

* ``"ddt-histogram"`` (:class:`~jettag.processors.ddt_map.DDTHistogramProcessor`):
  the (rho, pT, score) histogram of QCD fat jets that :func:`jettag.ddt.derive_map`
  turns into a DDT map.
* ``"sf-gbb"`` (:class:`~jettag.processors.gbb.GbbProxyProcessor`): the g->bb
  proxy for tagging scale factors: muon-tagged fat jets (a muon in each soft-drop
  subjet), ln(SV mass) templates in pass and fail of each working point, by pT.
* ``"sf-zbb"`` (:class:`~jettag.processors.zbb.ZbbProxyProcessor`): the Z->bb
  proxy: the leading fat jet, msoftdrop templates in pass and fail of each working
  point, by pT, with Z->bb/cc/qq and QCD truth categories for MC.

Planned, with its own issue: an example analysis that consumes tagger scores,
DDT maps and scale factors.
"""

from __future__ import annotations

import importlib

__all__ = ["available", "get", "register"]

#: name -> "module:Class" (module relative to this package, or absolute)
_REGISTRY: dict[str, str] = {}


def register(name: str, target: str) -> None:
    """Register the processor class ``target`` (``"module:Class"``) under ``name``.

    The module is imported only when the processor is asked for, so listing
    processors stays cheap.
    """
    if ":" not in target:
        raise ValueError(f"target must read 'module:Class', got {target!r}")
    if name in _REGISTRY and _REGISTRY[name] != target:
        raise ValueError(f"processor {name!r} is already registered as {_REGISTRY[name]!r}")
    _REGISTRY[name] = target


def available() -> tuple[str, ...]:
    """Names of the registered processors."""
    return tuple(sorted(_REGISTRY))


def get(name: str) -> type:
    """The processor class registered as ``name``."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        known = ", ".join(available()) or "none yet"
        raise ValueError(f"no processor {name!r}; registered: {known}") from None
    module_name, _, class_name = target.partition(":")
    if module_name.startswith("."):
        module = importlib.import_module(module_name, package=__name__)
    else:
        module = importlib.import_module(module_name)
    return getattr(module, class_name)


register("ddt-histogram", ".ddt_map:DDTHistogramProcessor")
register("sf-gbb", ".gbb:GbbProxyProcessor")
register("sf-zbb", ".zbb:ZbbProxyProcessor")
