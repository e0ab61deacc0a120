"""jettag.outputs: no output over an input, none over a result unasked, none half-written."""

from __future__ import annotations

import pytest

from jettag.errors import OutputError
from jettag.outputs import atomic_output, check_output, check_output_dir, partial_path


def test_check_output(tmp_path):
    existing = tmp_path / "a.root"
    existing.write_bytes(b"data")
    assert check_output(tmp_path / "new.root") == tmp_path / "new.root"
    with pytest.raises(OutputError, match=r"a\.root: exists; give --force"):
        check_output(existing)
    assert check_output(existing, force=True) == existing
    with pytest.raises(OutputError, match="is also an input"):
        check_output(existing, inputs=[existing], force=True)
    # the same file under another spelling is still the input
    with pytest.raises(OutputError, match="is also an input"):
        check_output(tmp_path / "." / "a.root", inputs=[existing], force=True)
    with pytest.raises(OutputError, match=r"folder .*nosuch does not exist"):
        check_output(tmp_path / "nosuch" / "x.root")
    with pytest.raises(OutputError, match="is a folder"):
        check_output(tmp_path, force=True)
    assert not (tmp_path / "nosuch").exists()


def test_check_output_dir(tmp_path):
    out = tmp_path / "results"
    assert check_output_dir(out) == out
    out.mkdir()
    assert check_output_dir(out) == out  # empty: fine
    (out / "old.json").write_text("{}")
    with pytest.raises(OutputError, match="not empty; give --force"):
        check_output_dir(out)
    assert check_output_dir(out, force=True) == out
    with pytest.raises(OutputError, match="holds the input"):
        check_output_dir(out, inputs=[out / "old.json"], force=True)
    with pytest.raises(OutputError, match="does not exist"):
        check_output_dir(tmp_path / "a" / "b")
    with pytest.raises(OutputError, match="is a file"):
        check_output_dir(out / "old.json", force=True)


def test_atomic_output_renames_only_on_success(tmp_path):
    out = tmp_path / "x.txt"
    with atomic_output(out) as tmp:
        assert tmp == partial_path(out) and tmp.parent == out.parent
        tmp.write_text("done")
        assert not out.exists()
    assert out.read_text() == "done"

    for error in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with atomic_output(out) as tmp:
                tmp.write_text("half")
                raise error
        assert out.read_text() == "done"  # the previous result is untouched
        assert not partial_path(out).exists()


def test_atomic_directory(tmp_path):
    from jettag.outputs import atomic_directory

    out = tmp_path / "model"
    with atomic_directory(out) as tmp:
        (tmp / "model.onnx").write_text("v1")
        (tmp / "plots").mkdir()
        (tmp / "plots" / "roc.png").write_text("p1")
        assert not out.exists()
    assert (out / "model.onnx").read_text() == "v1"

    (out / "notes.txt").write_text("mine")
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(out) as tmp:
            (tmp / "model.onnx").write_text("half")
            raise KeyboardInterrupt
    assert (out / "model.onnx").read_text() == "v1" and not partial_path(out).exists()

    with atomic_directory(out) as tmp:
        (tmp / "model.onnx").write_text("v2")
        (tmp / "plots").mkdir()
    assert (out / "model.onnx").read_text() == "v2"
    assert (out / "notes.txt").read_text() == "mine"  # files it did not write stay
    assert not (out / "plots" / "roc.png").exists()  # a rewritten sub-folder is replaced whole
    assert not partial_path(out).exists()
