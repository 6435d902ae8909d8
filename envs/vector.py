"""Several environments stepped together, optionally each in its own process.

A worker that crashes (its process dies, or its environment raises anything
but an ActionError) is restarted with a warning; its episode is lost, so the
call returns a fresh first observation for it and lists it in ``restarted``.
The restarted environment gets a new seed, so it does not replay the episodes
its predecessor already produced.
"""

from __future__ import annotations

import functools
import multiprocessing
import signal
import traceback
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from envs.base import ActionError, Env, Obs, Space


class WorkerCrash(RuntimeError):
    """A worker's environment or process failed."""


class _AutoReset:
    """Runs the commands for one environment; resets it on the step after an end."""

    def __init__(self, env: Env):
        self.env = env
        self.done = True

    def __call__(self, command: str, action=None):
        if command == "spaces":
            return self.env.obs_space, self.env.act_space
        if command == "reset" or self.done:
            obs = self.env.reset()
        else:
            obs = self.env.step(action)
        self.done = bool(obs["is_last"])
        return obs


class _LocalWorker:
    """An environment in this process; commands run at receive()."""

    def __init__(self, env_fn: Callable[[], Env]):
        self._env = env_fn()
        self._run = _AutoReset(self._env)
        self._pending = None

    def send(self, command: str, action=None) -> None:
        self._pending = (command, action)

    def receive(self):
        command, action = self._pending
        self._pending = None
        try:
            return self._run(command, action)
        except ActionError:
            raise
        except Exception as error:
            raise WorkerCrash(f"{type(error).__name__}: {error}") from error

    def close(self) -> None:
        self._env.close()


def _worker_main(conn, env_fn: Callable[[], Env]) -> None:
    """Process body: build the environment, then answer commands until 'close'."""
    # Ctrl-C goes to the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    env = None
    try:
        env = env_fn()
        run = _AutoReset(env)
        while True:
            command, action = conn.recv()
            if command == "close":
                break
            try:
                conn.send(("ok", run(command, action)))
            except ActionError as error:
                conn.send(("action_error", str(error)))
    except EOFError:
        pass  # The parent went away.
    except Exception as error:
        conn.send(("error", f"{type(error).__name__}: {error}", traceback.format_exc()))
    finally:
        if env is not None:
            env.close()
        conn.close()


class _ProcessWorker:
    """An environment in a spawned process, talking through a pipe."""

    def __init__(self, env_fn: Callable[[], Env], timeout: float | None):
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=_worker_main, args=(child_conn, env_fn), daemon=True)
        self._process.start()
        child_conn.close()
        self._timeout = timeout
        self._broken = None

    def send(self, command: str, action=None) -> None:
        try:
            self._conn.send((command, action))
        except (BrokenPipeError, ConnectionResetError, EOFError, OSError) as error:
            self._broken = f"the process is gone ({type(error).__name__}, exit code {self._process.exitcode})"

    def receive(self):
        if self._broken:
            raise WorkerCrash(self._broken)
        try:
            if not self._conn.poll(self._timeout):
                raise WorkerCrash(f"no answer within {self._timeout} s")
            message = self._conn.recv()
        except (EOFError, ConnectionResetError, OSError) as error:
            self._process.join(1)
            raise WorkerCrash(f"the process died (exit code {self._process.exitcode})") from error
        if message[0] == "ok":
            return message[1]
        if message[0] == "action_error":
            raise ActionError(message[1])
        raise WorkerCrash(f"{message[1]}\n{message[2]}")

    def close(self) -> None:
        if self._process.is_alive():
            self.send("close")
            self._process.join(5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()


# A restarted worker's seed is its first seed plus this times its restart count:
# far enough apart never to repeat another worker's or the evaluator's seed.
RESTART_SEED_STRIDE = 1_000_000


def reseeded(env_fn: Callable[[], Env], restarts: int) -> tuple[Callable[[], Env], int | None]:
    """The factory for a worker's ``restarts``-th restart and its seed (None where
    the factory takes no ``seed`` keyword, as ``env_factories``' partials do)."""
    if not (isinstance(env_fn, functools.partial) and "seed" in env_fn.keywords):
        return env_fn, None
    seed = env_fn.keywords["seed"] + RESTART_SEED_STRIDE * restarts
    return functools.partial(env_fn, seed=seed), seed


class VectorEnv:
    """``num_envs`` environments behind one interface.

    ``reset()`` and ``step()`` return one observation dict per environment.
    After an observation with ``is_last``, the next step resets that
    environment and returns its first observation (the action given for it is
    ignored), so the caller never resets single environments itself.

    With ``parallel=True`` each environment lives in its own spawned process,
    so ``env_fns`` must be picklable (see ``env_factories``). ``step_async``
    sends the actions and returns at once; ``step_wait`` collects the results,
    so the caller can train while the environments step.

    A crashed worker is restarted (up to ``max_restarts`` times in a row);
    ``restarted`` lists the indices restarted during the last call, whose
    partial episodes the caller should drop, and ``seeds`` each worker's
    current seed (see ``reseeded``). ``timeout`` (seconds, None for no limit)
    treats a worker that does not answer as crashed.
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], Env]],
        parallel: bool = True,
        timeout: float | None = None,
        max_restarts: int = 3,
    ):
        if not env_fns:
            raise ValueError("VectorEnv needs at least one environment factory")
        self._env_fns = list(env_fns)
        self.parallel = parallel
        self.timeout = timeout
        self.max_restarts = max_restarts
        self.restarted: list[int] = []
        self.restart_counts = [0] * len(self._env_fns)
        self.seeds = [reseeded(fn, 0)[1] for fn in self._env_fns]
        self._waiting = False
        self._workers = []
        try:
            self._workers = [self._start(fn) for fn in self._env_fns]
            for worker in self._workers:
                worker.send("spaces")
            spaces = [worker.receive() for worker in self._workers]
        except BaseException:
            self.close()
            raise
        self.obs_space: dict[str, Space] = spaces[0][0]
        self.act_space: Space = spaces[0][1]

    @property
    def num_envs(self) -> int:
        return len(self._env_fns)

    def reset(self) -> list[Obs]:
        """Start a new episode in every environment."""
        self._check_idle()
        for worker in self._workers:
            worker.send("reset")
        return self._gather()

    def step(self, actions: Sequence[np.ndarray] | np.ndarray) -> list[Obs]:
        """Step every environment; ``actions`` holds one action per environment."""
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: Sequence[np.ndarray] | np.ndarray) -> None:
        self._check_idle()
        if len(actions) != self.num_envs:
            raise ValueError(f"Expected {self.num_envs} actions, one per environment, got {len(actions)}")
        for worker, action in zip(self._workers, actions):
            worker.send("step", np.asarray(action))
        self._waiting = True

    def step_wait(self) -> list[Obs]:
        if not self._waiting:
            raise RuntimeError("step_wait() needs a step_async() first")
        self._waiting = False
        return self._gather()

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
        self._workers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __del__(self):
        if getattr(self, "_workers", None):
            self.close()

    def _check_idle(self) -> None:
        if self._waiting:
            raise RuntimeError("A step_async() is still pending; call step_wait() first")

    def _start(self, env_fn: Callable[[], Env]):
        return _ProcessWorker(env_fn, self.timeout) if self.parallel else _LocalWorker(env_fn)

    def _gather(self) -> list[Obs]:
        """Collect one answer per worker, restarting crashed ones."""
        results: list[Obs] = []
        action_errors = []
        self.restarted = []
        for index, worker in enumerate(self._workers):
            try:
                results.append(worker.receive())
            except ActionError as error:
                action_errors.append(f"environment {index}: {error}")
                results.append(None)
            except WorkerCrash as crash:
                results.append(self._restart(index, crash))
                self.restarted.append(index)
        if action_errors:
            raise ActionError("; ".join(action_errors))
        return results

    def _restart(self, index: int, crash: WorkerCrash) -> Obs:
        for attempt in range(1, self.max_restarts + 1):
            self.restart_counts[index] += 1
            env_fn, seed = reseeded(self._env_fns[index], self.restart_counts[index])
            self.seeds[index] = seed
            warnings.warn(
                f"Environment worker {index} crashed: {crash}. Restarting it "
                f"{'with seed ' + str(seed) if seed is not None else 'with its old seed'} (attempt {attempt} "
                f"of {self.max_restarts}); its current episode is dropped.",
                RuntimeWarning,
                stacklevel=3,
            )
            self._close_quietly(self._workers[index])
            try:
                self._workers[index] = self._start(env_fn)
                self._workers[index].send("reset")
                return self._workers[index].receive()
            except Exception as again:  # A local worker raises its own errors.
                crash = again
        raise RuntimeError(f"Environment worker {index} crashed {self.max_restarts} times in a row; last error: {crash}")

    @staticmethod
    def _close_quietly(worker) -> None:
        try:
            worker.close()
        except Exception as error:
            warnings.warn(f"Closing a crashed environment worker failed too: {error}", RuntimeWarning, stacklevel=4)
