"""The processor registry of jettag.processors."""

from __future__ import annotations

import pytest

from jettag import processors


def test_register_and_get(monkeypatch):
    monkeypatch.setattr(processors, "_REGISTRY", {})
    processors.register("table", "collections:OrderedDict")
    assert processors.available() == ("table",)
    from collections import OrderedDict

    assert processors.get("table") is OrderedDict
    with pytest.raises(ValueError, match="already registered"):
        processors.register("table", "collections:Counter")
    with pytest.raises(ValueError, match="no processor 'nosuch'"):
        processors.get("nosuch")
    with pytest.raises(ValueError, match="module:Class"):
        processors.register("bad", "collections.OrderedDict")
