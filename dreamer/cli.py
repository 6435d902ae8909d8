"""How command-line entry points report a user's mistake: one line, exit status 2.

A bad override, an unknown config option, an impossible setting or a damaged
checkpoint is the user's to fix, so it gets ``error: <what and what is
allowed>`` on stderr and no traceback; ``HYDRA_FULL_ERROR=1`` shows the trace.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

import hydra._internal.utils as hydra_utils
from hydra.errors import CompactHydraException

from dreamer.checkpoint import CheckpointError
from dreamer.objective import ObjectiveError
from dreamer.validate import ConfigError

USER_ERRORS = (ConfigError, CheckpointError, ObjectiveError)
USAGE_EXIT_STATUS = 2


def full_error_requested() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR", "") not in ("", "0")


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USAGE_EXIT_STATUS)


def one_line(message: str) -> str:
    """Hydra's multi-line messages as one line: options listed under a header
    (``Available options in 'algo':`` then one per line) are joined with commas,
    the config search path is dropped."""
    message = message.split("Config search path:")[0]
    parts: list[str] = []
    options: list[str] = []
    for line in message.splitlines():
        if line.startswith(("\t", "    ")) and parts and parts[-1].endswith(":"):
            options.append(line.strip())
            continue
        if options:
            parts[-1] += " " + ", ".join(options)
            options = []
        line = line.strip()
        if line and not line.startswith(("full_key:", "object_type=", "See https://hydra.cc")):
            parts.append(line)
    if options:
        parts[-1] += " " + ", ".join(options)
    return "; ".join(part.rstrip(".") for part in parts)


def hydra_error_message(error: CompactHydraException) -> str:
    override = getattr(error, "override", None)
    message = one_line(str(error))
    if override:
        message = f"cannot parse the override {override!r}: {message}"
    if error.__cause__ is not None and str(error.__cause__).strip():
        cause = one_line(str(error.__cause__))
        if cause not in message:
            message = f"{message}; {cause}"
    return message


def report_user_errors(task: Callable) -> Callable:
    """Wraps a Hydra task function so user mistakes, including Hydra's own
    (bad overrides, unknown config groups or keys), end in one line and exit 2.

    In a sweep a job's mistake fails that job only; Hydra names the job once
    the others have run, then the sweep ends the same way."""
    original = hydra_utils.run_and_report

    def run_and_report(func):
        if full_error_requested():
            return original(func)

        def compact():
            try:
                return func()
            except CompactHydraException as error:
                fail(hydra_error_message(error))
            except USER_ERRORS as error:
                fail(str(error))

        return original(compact)

    hydra_utils.run_and_report = run_and_report

    @functools.wraps(task)
    def wrapped(*args, **kwargs):
        try:
            return task(*args, **kwargs)
        except USER_ERRORS as error:
            if full_error_requested() or in_sweep():
                raise
            fail(str(error))

    return wrapped


def in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
