"""coffea processors shipped with jettag (g->bb and Z->bb proxies, DDT map derivation, an example analysis).

Installed as ``jettag.processors``; in a checkout they live in ``processors/``.
"""
