"""Checksummed, rotated, durable checkpoints that refuse to load into an incompatible configuration.

A checkpoint holds the agent (modules and optimisers), the loop's counters,
every random number generator the run uses, and the slice of the config that
fixes tensor shapes and algorithm choices.

File format (one file, so content and checksum cannot drift apart)::

    DREAMER-CHECKPOINT v1 sha256=<64 hex digits> size=<n>\\n
    <n bytes: the payload as written by torch.save (a torch zip archive)>

``load`` checks the magic, the format version, the size and the SHA-256 of the
torch bytes before unpickling anything, so a file damaged in place (which
torch's zip reader would load silently with corrupted weights), truncated, or
foreign raises ``CheckpointError`` saying which check failed. A bare torch zip
written before this format existed still loads, with a ``CheckpointWarning``
that it carries no checksum.

``save`` serialises in memory, writes a temporary file in the same directory,
fsyncs it, keeps the current ``checkpoint.pt`` as ``checkpoint.prev.pt``, renames
the temporary file over ``checkpoint.pt`` and fsyncs the directory. A failed
write (a full disk) removes the temporary file and leaves both earlier files as
they were. ``load_latest`` falls back to ``checkpoint.prev.pt`` when
``checkpoint.pt`` is missing or damaged.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import random
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT_VERSION = 1
MAGIC = b"DREAMER-CHECKPOINT"
_ZIP_MAGIC = b"PK\x03\x04"  # a bare torch.save archive, as written before the header existed
_MAX_HEADER = 256
_HEADER = re.compile(rb"^sha256=(?P<sha256>[0-9a-f]{64}) size=(?P<size>\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, damaged, or does not fit this configuration."""


class CheckpointWarning(UserWarning):
    """A checkpoint loaded, but without a checksum or from the previous file."""


def previous_path(path: str | Path) -> Path:
    """Where the checkpoint before ``path`` is kept: ``checkpoint.pt`` -> ``checkpoint.prev.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def _serialise(payload: dict[str, Any]) -> tuple[bytes, memoryview]:
    """A checkpoint file's header line and body (the torch.save archive), in memory."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getbuffer()
    digest = hashlib.sha256(body).hexdigest().encode()
    return b"%s v%d sha256=%s size=%d\n" % (MAGIC, FORMAT_VERSION, digest, len(body)), body


def save(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` durably, keeping the file it replaces as ``previous_path(path)``.

    Raises CheckpointError (naming the directory) if the file cannot be written, for example
    on a full disk; the earlier checkpoint files are then untouched.
    """
    path = Path(path)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    header, body = _serialise(payload)  # before touching the disk: a payload torch cannot save changes nothing
    previous = previous_path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as file:
            file.write(header)
            file.write(body)
            file.flush()
            os.fsync(file.fileno())
    except OSError as error:
        _remove(tmp)
        full = error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
        raise CheckpointError(
            f"cannot write checkpoint {path}: "
            + (f"the disk is full in {directory} ({error})" if full else f"writing in {directory} failed ({error})")
            + f"; {path.name} and {previous.name} there were left as they were"
        ) from error
    try:
        if path.exists():
            problem = _damage(path)
            if problem is None:
                _keep_as_previous(path, previous)
            else:  # keep the older, intact previous checkpoint rather than a damaged one
                warnings.warn(
                    f"checkpoint {path} is damaged ({problem}); replacing it and keeping {previous} as it is",
                    CheckpointWarning,
                    stacklevel=2,
                )
        os.replace(tmp, path)
    except OSError as error:
        _remove(tmp)
        raise CheckpointError(f"cannot replace checkpoint {path} in {directory}: {error}") from error
    _fsync_directory(directory)


def load(path: str | Path) -> dict[str, Any]:
    """Read one checkpoint file, verifying its header, size and checksum before unpickling.

    Raises CheckpointError naming the file and the check that failed. A bare torch archive
    (written before the header existed) loads with a CheckpointWarning that it has no checksum.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error
    body, problem = _verify(data)
    if problem is not None:
        raise CheckpointError(f"checkpoint {path}: {problem}")
    if body is None:  # a bare torch zip from before the header existed
        warnings.warn(
            f"checkpoint {path} carries no checksum (it was written by an earlier version), so damage "
            "to it cannot be detected; the next save adds one",
            CheckpointWarning,
            stacklevel=2,
        )
        body = data
    try:
        return torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for damaged or foreign archives
        raise CheckpointError(f"checkpoint {path} is corrupt or not a checkpoint: {error}") from error


def load_latest(path: str | Path) -> tuple[dict[str, Any], Path]:
    """Load ``path``, or ``previous_path(path)`` if ``path`` is missing or damaged; returns (payload, path used).

    Falling back warns (CheckpointWarning) with both file names and why the first failed;
    if neither loads, CheckpointError lists both reasons.
    """
    path = Path(path)
    previous = previous_path(path)
    try:
        return load(path), path
    except CheckpointError as error:
        first = error
    if not previous.exists():
        if not path.exists():
            raise CheckpointError(f"no checkpoint at {path} (nor at {previous})")
        raise CheckpointError(f"{first}; there is no previous checkpoint {previous} to fall back to") from first
    try:
        payload = load(previous)
    except CheckpointError as second:
        raise CheckpointError(
            f"no usable checkpoint: {path} failed ({first}) and {previous} failed ({second})"
        ) from second
    warnings.warn(
        f"checkpoint {path} is unusable ({first}); loaded the previous checkpoint {previous} instead, "
        "so the run goes back to that save",
        CheckpointWarning,
        stacklevel=2,
    )
    return payload, previous


def _verify(data: bytes) -> tuple[memoryview | None, str | None]:
    """(torch bytes, None) if intact; (None, None) for a legacy bare zip; (None, reason) otherwise."""
    if data.startswith(_ZIP_MAGIC):
        return None, None
    if not data.startswith(MAGIC + b" "):
        if not data:
            return None, "corrupt or not a checkpoint: the file is empty"
        return None, (
            f"corrupt or not a checkpoint: it starts with {bytes(data[:16])!r}, "
            f"neither the {MAGIC.decode()} header nor a torch archive"
        )
    end = data.find(b"\n", 0, _MAX_HEADER)
    if end < 0:
        if len(data) < _MAX_HEADER:
            return None, f"truncated: only {len(data)} bytes, the header line is incomplete"
        return None, "corrupt: the header line is not terminated"
    fields = data[len(MAGIC) + 1 : end].split(b" ", 1)
    version = re.fullmatch(rb"v(\d+)", fields[0])
    if version is None:
        return None, f"corrupt: malformed header {bytes(data[:end])!r}"
    if int(version[1]) != FORMAT_VERSION:
        return None, (
            f"written by checkpoint format v{int(version[1])}, this code reads v{FORMAT_VERSION}; "
            "load it with the version of the code that wrote it"
        )
    match = _HEADER.match(fields[1]) if len(fields) == 2 else None
    if match is None:
        return None, f"corrupt: malformed header {bytes(data[:end])!r}"
    body = memoryview(data)[end + 1 :]
    size = int(match["size"])
    if len(body) < size:
        return None, f"truncated: {len(body)} of {size} bytes"
    if len(body) > size:
        return None, f"damaged: {len(body)} bytes after the header, expected {size}"
    if hashlib.sha256(body).hexdigest() != match["sha256"].decode():
        return None, "checksum mismatch: the file is damaged"
    return body, None


def _damage(path: Path) -> str | None:
    """Why the checkpoint file at ``path`` is damaged, or None if it is intact (or legacy)."""
    try:
        return _verify(path.read_bytes())[1]
    except OSError as error:
        return f"unreadable: {error}"


def _keep_as_previous(path: Path, previous: Path) -> None:
    """Atomically make ``previous`` the current ``path``; ``path`` itself stays in place when possible."""
    link = previous.with_name(f".{previous.name}.tmp")
    _remove(link)
    try:
        os.link(path, link)  # a second name for the same file, so checkpoint.pt never goes missing
    except OSError:  # no hard links here: rename, leaving checkpoint.pt absent until the new one lands
        os.replace(path, previous)
        return
    os.replace(link, previous)


def _fsync_directory(directory: Path) -> None:
    """Make the renames in ``directory`` durable; a no-op where directories cannot be fsynced."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def rng_state(generator: np.random.Generator) -> dict[str, Any]:
    """RNG states as plain containers, loadable with ``weights_only=True``."""
    state = {
        "python": random.getstate(),
        "numpy": generator.bit_generator.state,
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], generator: np.random.Generator) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    generator.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}, so config differences can be named by key."""
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def check_compatible(saved: dict[str, Any], current: dict[str, Any], path: str | Path) -> None:
    """Raise with every differing key if the saved config slice differs from the current one."""
    old, new = flatten(saved), flatten(current)
    differences = [
        f"  {key}: checkpoint has {old.get(key, '<missing>')!r}, this run has {new.get(key, '<missing>')!r}"
        for key in sorted(set(old) | set(new))
        if old.get(key, "<missing>") != new.get(key, "<missing>")
    ]
    if differences:
        raise CheckpointError(
            f"checkpoint {path} was written by an incompatible configuration:\n"
            + "\n".join(differences)
            + "\nUse a new run directory (hydra.run.dir=...) or restore these settings."
        )
