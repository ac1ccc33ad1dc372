from __future__ import annotations

import pytest
import torch

from reid.checkpoint import CheckpointError, load_checkpoint, load_module_state, require_state, save_checkpoint


def small_state():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    return model, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "pool": [torch.ones(2)]}


def test_round_trip_with_weights_only(tmp_path):
    model, state = small_state()
    path = save_checkpoint(tmp_path / "ckpt" / "last.pt", kind="reid", state=state, config={"a": 1}, step=7)
    loaded = load_checkpoint(path, kind="reid")
    assert loaded["step"] == 7 and loaded["config"] == {"a": 1} and loaded["kind"] == "reid"
    assert torch.equal(loaded["state"]["model"]["weight"], model.weight)
    assert loaded["state"]["optimizer"]["state"][0]["step"] == state["optimizer"]["state"][0]["step"]
    assert not list(path.parent.glob("*.tmp")), "no temporary file left behind"


def test_missing_truncated_and_foreign_files_get_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found.*nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    _, state = small_state()
    path = save_checkpoint(tmp_path / "full.pt", kind="reid", state=state)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.pt.*truncated, corrupt"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(1)}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pt is not a vireid checkpoint"):
        load_checkpoint(foreign)
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="text.pt"):
        load_checkpoint(text)


def test_version_and_kind_mismatch(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format": "vireid-checkpoint", "version": 0, "kind": "reid", "state": {}}, path)
    with pytest.raises(CheckpointError, match="version 0"):
        load_checkpoint(path)
    good = save_checkpoint(tmp_path / "gan.pt", kind="cyclegan", state={})
    with pytest.raises(CheckpointError, match="'cyclegan' checkpoint, expected a 'reid'"):
        load_checkpoint(good, kind="reid")


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "unsafe.pt"
    torch.save({"format": "vireid-checkpoint", "version": 1, "obj": object()}, path)
    with pytest.raises(CheckpointError, match="unsafe.pt"):
        load_checkpoint(path)


def test_mismatched_module_state_names_keys(tmp_path):
    with pytest.raises(CheckpointError) as info:
        load_module_state(torch.nn.Linear(3, 5), torch.nn.Linear(3, 2).state_dict(), name="generator",
                          path="g.pt")
    assert "g.pt" in str(info.value) and "weight" in str(info.value) and "(2, 3)" in str(info.value)
    with pytest.raises(CheckpointError, match="missing keys.*0.bias"):
        load_module_state(torch.nn.Sequential(torch.nn.Linear(3, 2)), {"0.weight": torch.zeros(2, 3)},
                          name="net", path="n.pt")
    with pytest.raises(CheckpointError, match="no state 'optimizer'"):
        require_state({"state": {"model": {}}}, "optimizer", "x.pt")


def test_replace_is_atomic_when_save_fails(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", kind="reid", state={"x": torch.ones(1)}, step=1)

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, kind="reid", state={"x": torch.zeros(1)}, step=2)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert not list(tmp_path.glob("*.tmp"))
