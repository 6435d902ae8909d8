"""Damaged, truncated, foreign and legacy checkpoints; rotation to checkpoint.prev.pt; full disks."""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import os

import numpy as np
import pytest
import torch

from dreamer import checkpoint as ckpt
from dreamer.replay import Replay
from test_train import _CountingAgent, _trainer

WEIGHTS = torch.arange(4096, dtype=torch.float32)


def payload(scale: float = 1.0, frames: int = 0) -> dict:
    return {
        "agent": {"weights": WEIGHTS * scale, "bias": torch.ones(3) * scale},
        "counters": {"frames": frames},
        "rng": ckpt.rng_state(np.random.default_rng(0)),
        "config": {"model": {"deter": 64}},
    }


def assert_same(loaded: dict, expected: dict) -> None:
    assert torch.equal(loaded["agent"]["weights"], expected["agent"]["weights"])
    assert torch.equal(loaded["agent"]["bias"], expected["agent"]["bias"])
    assert loaded["counters"] == expected["counters"]
    assert loaded["config"] == expected["config"]


def damage_weights(path, scale: float = 1.0) -> None:
    """Flip bytes inside the weights' storage: same size, zip structure intact."""
    data = bytearray(path.read_bytes())
    offset = data.find((WEIGHTS * scale).numpy().tobytes())
    assert offset > 0, "the weights' storage was not found in the file"
    size = len(data)
    for i in range(8):
        data[offset + 2000 + i] ^= 0xFF
    path.write_bytes(bytes(data))
    assert path.stat().st_size == size


def test_round_trip_with_header(tmp_path):
    path = tmp_path / "checkpoint.pt"
    saved = payload()
    ckpt.save(path, saved)
    data = path.read_bytes()
    header, body = data.split(b"\n", 1)
    assert header == b"DREAMER-CHECKPOINT v1 sha256=%s size=%d" % (hashlib.sha256(body).hexdigest().encode(), len(body))
    assert body.startswith(b"PK\x03\x04")  # the body is a plain torch archive
    loaded = ckpt.load(path)
    assert_same(loaded, saved)
    generator = np.random.default_rng(5)
    ckpt.restore_rng(loaded["rng"], generator)
    assert generator.integers(1 << 30) == np.random.default_rng(0).integers(1 << 30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_damaged_in_place_fails_on_checksum(tmp_path):
    path = tmp_path / "checkpoint.pt"
    ckpt.save(path, payload())
    damage_weights(path)
    # What the checksum is for: torch's zip reader loads the damaged body without complaint.
    body = path.read_bytes().split(b"\n", 1)[1]
    silently = torch.load(io.BytesIO(body), weights_only=True)
    assert not torch.equal(silently["agent"]["weights"], WEIGHTS)
    with pytest.raises(ckpt.CheckpointError, match="checksum mismatch: the file is damaged") as error:
        ckpt.load(path)
    assert str(path) in str(error.value)


def test_truncated_fails_with_sizes(tmp_path):
    path = tmp_path / "checkpoint.pt"
    ckpt.save(path, payload())
    data = path.read_bytes()
    body_size = len(data.split(b"\n", 1)[1])
    path.write_bytes(data[:-100])
    with pytest.raises(ckpt.CheckpointError, match=rf"truncated: {body_size - 100} of {body_size} bytes"):
        ckpt.load(path)
    path.write_bytes(data[:20])  # cut inside the header line
    with pytest.raises(ckpt.CheckpointError, match="truncated"):
        ckpt.load(path)
    path.write_bytes(data + b"junk")
    with pytest.raises(ckpt.CheckpointError, match="damaged"):
        ckpt.load(path)


@pytest.mark.parametrize("content", [b"not a checkpoint at all", b"", b"\x80\x02}q\x00."])
def test_foreign_file_is_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(ckpt.CheckpointError, match="corrupt or not a checkpoint") as error:
        ckpt.load(path)
    assert str(path) in str(error.value)


def test_future_format_version_fails_clearly(tmp_path):
    path = tmp_path / "checkpoint.pt"
    ckpt.save(path, payload())
    data = path.read_bytes()
    path.write_bytes(data.replace(b"DREAMER-CHECKPOINT v1 ", b"DREAMER-CHECKPOINT v2 ", 1))
    with pytest.raises(ckpt.CheckpointError, match="written by checkpoint format v2, this code reads v1"):
        ckpt.load(path)
    path.write_bytes(b"DREAMER-CHECKPOINT v7 with=other fields\n" + data)
    with pytest.raises(ckpt.CheckpointError, match="format v7"):
        ckpt.load(path)


def test_legacy_bare_torch_file_loads_with_a_warning(tmp_path):
    path = tmp_path / "checkpoint.pt"
    saved = payload()
    torch.save(saved, path)  # how checkpoints were written before the header
    with pytest.warns(ckpt.CheckpointWarning, match="carries no checksum"):
        loaded = ckpt.load(path)
    assert_same(loaded, saved)
    # Saving over a legacy file keeps it as the previous checkpoint.
    ckpt.save(path, payload(2.0))
    with pytest.warns(ckpt.CheckpointWarning, match="carries no checksum"):
        assert_same(ckpt.load(ckpt.previous_path(path)), saved)


@pytest.mark.parametrize("hard_links", [True, False])
def test_rotation_keeps_the_previous_checkpoint(tmp_path, monkeypatch, hard_links):
    if not hard_links:  # file systems without hard links rotate by renaming
        monkeypatch.setattr(os, "link", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EPERM, "no links")))
    path = tmp_path / "checkpoint.pt"
    first, second, third = payload(1.0, 10), payload(2.0, 20), payload(3.0, 30)
    ckpt.save(path, first)
    assert not ckpt.previous_path(path).exists()
    ckpt.save(path, second)
    assert ckpt.previous_path(path) == tmp_path / "checkpoint.prev.pt"
    assert_same(ckpt.load(path), second)
    assert_same(ckpt.load(tmp_path / "checkpoint.prev.pt"), first)
    ckpt.save(path, third)
    assert_same(ckpt.load(path), third)
    assert_same(ckpt.load(tmp_path / "checkpoint.prev.pt"), second)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.prev.pt", "checkpoint.pt"]


def test_saving_over_a_damaged_checkpoint_keeps_the_intact_previous(tmp_path):
    path = tmp_path / "checkpoint.pt"
    ckpt.save(path, payload(1.0, 10))
    ckpt.save(path, payload(2.0, 20))
    damage_weights(path, 2.0)
    with pytest.warns(ckpt.CheckpointWarning, match="damaged"):
        ckpt.save(path, payload(3.0, 30))
    assert_same(ckpt.load(path), payload(3.0, 30))
    assert_same(ckpt.load(tmp_path / "checkpoint.prev.pt"), payload(1.0, 10))


def test_durable_save_fsyncs_the_file_and_the_directory(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.path.isdir(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    ckpt.save(tmp_path / "checkpoint.pt", payload())
    assert len(synced) == 2  # the temporary file before the rename, then the directory
    if os.path.exists("/proc/self/fd"):
        assert synced == [False, True]


def test_load_latest_falls_back_to_the_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    ckpt.save(path, payload(1.0, 10))
    loaded, used = ckpt.load_latest(path)
    assert used == path and loaded["counters"]["frames"] == 10
    ckpt.save(path, payload(2.0, 20))
    damage_weights(path, 2.0)
    with pytest.warns(ckpt.CheckpointWarning) as record:
        loaded, used = ckpt.load_latest(path)
    assert used == tmp_path / "checkpoint.prev.pt"
    assert_same(loaded, payload(1.0, 10))
    message = str(record[0].message)
    assert str(path) in message and str(tmp_path / "checkpoint.prev.pt") in message and "checksum mismatch" in message
    path.unlink()  # a crash between renames on a file system without hard links
    with pytest.warns(ckpt.CheckpointWarning, match="no checkpoint at"):
        assert ckpt.load_latest(path)[1] == tmp_path / "checkpoint.prev.pt"


def test_load_latest_names_both_files_when_both_fail(tmp_path):
    path, previous = tmp_path / "checkpoint.pt", tmp_path / "checkpoint.prev.pt"
    ckpt.save(path, payload(1.0, 10))
    ckpt.save(path, payload(2.0, 20))
    damage_weights(path, 2.0)
    data = previous.read_bytes()
    previous.write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError) as error:
        ckpt.load_latest(path)
    message = str(error.value)
    assert str(path) in message and str(previous) in message
    assert "checksum mismatch" in message and "truncated" in message
    previous.unlink()
    with pytest.raises(ckpt.CheckpointError, match="checksum mismatch.*no previous checkpoint"):
        ckpt.load_latest(path)
    path.unlink()
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint at"):
        ckpt.load_latest(path)


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FillingFile:
    """A file whose writes stop with ENOSPC after a few bytes, like a disk filling up mid-write."""

    def __init__(self, file):
        self.file = file

    def write(self, data):
        self.file.write(bytes(data)[:10])
        _enospc()

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


@pytest.mark.parametrize("failing", ["fsync", "write"])
def test_full_disk_leaves_both_checkpoints_untouched(tmp_path, monkeypatch, failing):
    path, previous = tmp_path / "checkpoint.pt", tmp_path / "checkpoint.prev.pt"
    ckpt.save(path, payload(1.0, 10))
    ckpt.save(path, payload(2.0, 20))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    if failing == "fsync":
        monkeypatch.setattr(os, "fsync", _enospc)
    else:
        monkeypatch.setattr(ckpt, "open", lambda *a, **k: _FillingFile(builtins.open(*a, **k)), raising=False)
    with pytest.raises(ckpt.CheckpointError, match="disk is full") as error:
        ckpt.save(path, payload(3.0, 30))
    assert str(tmp_path) in str(error.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporary file left either
    monkeypatch.undo()
    assert_same(ckpt.load(path), payload(2.0, 20))
    assert_same(ckpt.load(previous), payload(1.0, 10))


def _step(i: int, first: bool = False) -> dict:
    return {
        "obs": np.full(3, i, np.float32),
        "reward": np.float32(i),
        "is_first": np.bool_(first),
        "is_last": np.bool_(False),
        "is_terminal": np.bool_(False),
    }


def test_replay_chunk_write_failing_leaves_earlier_chunks_and_no_temp(tmp_path, monkeypatch):
    directory = tmp_path / "replay"
    replay = Replay(100, directory, chunk_length=4)
    for i in range(4):
        replay.add(_step(i, first=i == 0))
    (chunk,) = directory.iterdir()
    content = chunk.read_bytes()
    monkeypatch.setattr(os, "fsync", _enospc)
    for i in range(4, 7):
        replay.add(_step(i))
    with pytest.raises(OSError, match="cannot write replay chunk") as error:
        replay.add(_step(7))
    assert error.value.errno == errno.ENOSPC
    assert str(directory) in str(error.value) and os.strerror(errno.ENOSPC) in str(error.value)
    monkeypatch.undo()
    assert list(directory.iterdir()) == [chunk] and chunk.read_bytes() == content
    assert replay.stats()["steps"] == 4 and len(replay) == 8  # the unwritten chunk stays staged
    reloaded = Replay(100, directory, chunk_length=4)
    assert reloaded.load() == 4


def test_resume_falls_back_to_the_previous_checkpoint_when_the_latest_is_damaged(tmp_path, capsys):
    first = _CountingAgent()
    _trainer(tmp_path, first, steps=200).run()
    _trainer(tmp_path, _CountingAgent(), steps=300).run()
    path, previous = tmp_path / "checkpoint.pt", tmp_path / "checkpoint.prev.pt"
    assert ckpt.load(path)["counters"]["frames"] == 300
    assert ckpt.load(previous)["counters"]["frames"] == 200
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))
    capsys.readouterr()

    resumed = _CountingAgent()
    trainer = _trainer(tmp_path, resumed, steps=300)
    with pytest.warns(ckpt.CheckpointWarning) as record:
        assert trainer.restore()
    warning = str(record[0].message)
    assert str(path) in warning and str(previous) in warning and "checksum mismatch" in warning
    assert trainer.counters.frames == 200 and resumed.updates == first.updates
    assert f"resumed from {previous}: 200 frames, {first.updates} updates" in capsys.readouterr().out

    # The run then carries on from the earlier save and writes an intact checkpoint again.
    resumed = _CountingAgent()
    with pytest.warns(ckpt.CheckpointWarning):
        counters = _trainer(tmp_path, resumed, steps=300).run()
    assert counters.frames == 300 and resumed.acted == 100
    assert ckpt.load(path)["counters"]["frames"] == 300
    assert ckpt.load(previous)["counters"]["frames"] == 200  # the damaged file was not rotated in
