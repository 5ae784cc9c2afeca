"""A vector env with one worker process per env, the same API as SyncVectorEnv (see vector.py).

Each worker builds its env after choosing headless rendering, executes whole action chunks
(one pipe round-trip per chunk) and resets its env when an episode ends. Recovery: when the
simulator raises, the worker reports the episode as failed and rebuilds the env; when a worker
process dies or stops answering, it is replaced. Either way infos[i] gets "episode" with
"success": False and "crashed": True, "error" with the reason, "final_obs" (the last good
observation) and truncated[i] = True; stepping goes on.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import signal
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import gymnasium as gym
import numpy as np

from fpoctl.envs.chunks import EpisodeTracker, run_chunk, stack_obs
from fpoctl.envs.headless import use_headless_gl
from fpoctl.envs.recording import EpisodeRecorder, Recording
from fpoctl.errors import FpoctlError

EnvFactory = Callable[[int, int], gym.Env]  # (env index, seed) -> env; must pickle
RESTART_SEED_STRIDE = 100_003  # rebuilt envs get fresh, still deterministic seeds
MAX_CONSECUTIVE_RESTARTS = 3


@dataclass(frozen=True)
class TaskEnvFactory:
    """Builds env `index` of a registered task inside a worker (the task is looked up by name)."""

    task: str
    obs_mode: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    record: Recording | None = None  # write this env's episodes as videos

    def __call__(self, index: int, seed: int) -> gym.Env:
        from fpoctl.envs.base import get_task

        env = get_task(self.task).make_env(self.obs_mode, seed=seed, **self.env_kwargs)
        return EpisodeRecorder(env, self.record, index) if self.record else env


def _error_text(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {os.path.basename(last[0].filename)}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


class _EnvServer:
    """The worker side: one env, its running episode, and the rebuild-on-exception rule."""

    def __init__(self, factory: EnvFactory, index: int, seed: int, max_steps: int) -> None:
        self.factory, self.index, self.seed, self.max_steps = factory, index, seed, max_steps
        self.env = factory(index, seed)
        self.tracker = EpisodeTracker()
        self.last_obs: dict | None = None
        self.rebuilds = 0

    def reset(self, seed: int | None) -> dict:
        if seed is not None:
            self.seed = seed
        self.last_obs, info = self.env.reset(seed=seed)
        self.tracker = EpisodeTracker.starting(info)
        return self.last_obs

    def step(self, actions: np.ndarray) -> tuple:
        start_ret, start_len = self.tracker.ret, self.tracker.length
        try:
            obs, reward, term, trunc, info = run_chunk(self.env, actions, self.tracker, self.max_steps)
        except Exception as exc:  # the simulator raised: fail the episode, rebuild, go on
            info = {"executed": self.tracker.length - start_len, "success": False,
                    "error": _error_text(exc), "final_obs": self.last_obs,
                    "episode": {**self.tracker.summary(crashed=True), "success": False}}
            reward = self.tracker.ret - start_ret
            self._rebuild()
            return self.last_obs, reward, False, True, info
        if term or trunc:
            info["final_obs"], info["episode"] = obs, self.tracker.summary()
            obs, reset_info = self.env.reset()
            self.tracker = EpisodeTracker.starting(reset_info)
        self.last_obs = obs
        return obs, reward, term, trunc, info

    def _rebuild(self) -> None:
        with contextlib.suppress(Exception):
            self.env.close()
        self.rebuilds += 1
        seed = self.seed + RESTART_SEED_STRIDE * self.rebuilds
        self.env = self.factory(self.index, seed)
        self.reset(seed)

    def close(self) -> None:
        self.env.close()


def _worker(conn: Connection, factory_bytes: bytes, index: int, seed: int, max_steps: int) -> None:
    """Worker process: build the env, then serve reset / step / close until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    use_headless_gl()  # before the factory imports any simulator
    server = None
    try:
        server = _EnvServer(pickle.loads(factory_bytes), index, seed, max_steps)
        conn.send(("ready", (server.env.action_space, server.env.observation_space)))
        while True:
            cmd, arg = conn.recv()
            if cmd == "close":
                break
            conn.send(("ok", server.reset(arg) if cmd == "reset" else server.step(arg)))
    except (EOFError, BrokenPipeError):
        pass  # the parent is gone
    except BaseException as exc:  # building or rebuilding the env failed
        with contextlib.suppress(OSError):
            conn.send(("fatal", _error_text(exc)))
    finally:
        if server is not None:
            with contextlib.suppress(Exception):
                server.close()
        conn.close()


class _WorkerDied(Exception):
    """A worker exited, timed out or reported a fatal error."""


def _shutdown(procs: list[mp.process.BaseProcess]) -> None:
    for p in procs:
        if p is None:
            continue
        if p.is_alive():
            p.kill()
        p.join(timeout=5)


class WorkerVectorEnv:
    """n envs, each in its own process; chunk stepping with autoreset and crash recovery."""

    def __init__(self, factory: EnvFactory, num_envs: int, max_steps: int, *, seed: int = 0,
                 start_method: str | None = None, step_timeout: float = 600.0,
                 start_timeout: float = 600.0) -> None:
        self.num_envs, self.max_steps = num_envs, max_steps
        self.step_timeout, self.start_timeout = step_timeout, start_timeout
        methods = mp.get_all_start_methods()
        self._ctx = mp.get_context(start_method or ("forkserver" if "forkserver" in methods else "spawn"))
        self._factory = pickle.dumps(factory)
        self._seeds = [seed + i for i in range(num_envs)]
        self._restarts = [0] * num_envs
        self._consecutive = [0] * num_envs
        self.procs: list[mp.process.BaseProcess] = [None] * num_envs  # type: ignore[list-item]
        self.conns: list[Connection] = [None] * num_envs  # type: ignore[list-item]
        self.trackers = [EpisodeTracker() for _ in range(num_envs)]
        self._last_obs: list[dict | None] = [None] * num_envs
        self.crashes: list[dict[str, Any]] = []  # every recovered failure: env, error, time
        self._finalizer = weakref.finalize(self, _shutdown, self.procs)
        try:
            for i in range(num_envs):
                self._launch(i)
            spaces = [self._receive(i, self.start_timeout, "start") for i in range(num_envs)]
        except BaseException:
            self._finalizer()
            raise
        self.single_action_space, self.single_observation_space = spaces[0]

    @property
    def pids(self) -> list[int | None]:
        """Process ids of the workers (tests kill them)."""
        return [p.pid for p in self.procs]

    def _launch(self, i: int) -> None:
        parent, child = self._ctx.Pipe()
        seed = self._seeds[i] + RESTART_SEED_STRIDE * self._restarts[i]
        proc = self._ctx.Process(target=_worker, args=(child, self._factory, i, seed, self.max_steps),
                                 name=f"fpoctl-env-{i}", daemon=True)
        proc.start()
        child.close()
        self.procs[i], self.conns[i] = proc, parent

    def _receive(self, i: int, timeout: float, what: str) -> Any:
        conn = self.conns[i]
        try:
            if not conn.poll(timeout):
                raise _WorkerDied(f"env worker {i} did not answer {what} within {timeout:.0f} s")
            status, payload = conn.recv()
        except (EOFError, OSError, ConnectionError):
            self.procs[i].join(timeout=5)
            raise _WorkerDied(f"env worker {i} died (exit code {self.procs[i].exitcode})") from None
        if status == "fatal":
            if what == "start":
                raise FpoctlError(f"env worker {i} could not build its env: {payload}")
            raise _WorkerDied(f"env worker {i} failed: {payload}")
        return payload

    def _replace(self, i: int, reason: str) -> dict:
        """Kill worker i, start a new one, reset it; returns its first observation."""
        self.crashes.append({"env": i, "error": reason, "time": time.time()})
        proc = self.procs[i]
        if proc.is_alive():
            proc.kill()
        proc.join(timeout=5)
        self.conns[i].close()
        while True:
            self._consecutive[i] += 1
            self._restarts[i] += 1
            if self._consecutive[i] > MAX_CONSECUTIVE_RESTARTS:
                raise FpoctlError(f"env worker {i} keeps failing ({reason}); giving up")
            self._launch(i)
            try:
                self._receive(i, self.start_timeout, "start")
                seed = self._seeds[i] + RESTART_SEED_STRIDE * self._restarts[i]
                self.conns[i].send(("reset", seed))
                return self._receive(i, self.step_timeout, "reset")
            except _WorkerDied as exc:
                reason = str(exc)

    def reset(self, seed: int | None = None) -> dict[str, Any]:
        """Reset every env; env i gets seed `seed + i`."""
        if seed is not None:
            self._seeds = [seed + i for i in range(self.num_envs)]
        self.trackers = [EpisodeTracker() for _ in range(self.num_envs)]
        for i in range(self.num_envs):
            self._send(i, ("reset", None if seed is None else seed + i))
        obs = []
        for i in range(self.num_envs):
            try:
                obs.append(self._receive(i, self.step_timeout, "reset"))
            except _WorkerDied as exc:
                obs.append(self._replace(i, str(exc)))
        self._last_obs = list(obs)
        return stack_obs(obs)

    def _send(self, i: int, message: tuple) -> None:
        with contextlib.suppress(OSError):  # a dead worker: _receive notices and replaces it
            self.conns[i].send(message)

    def step(self, actions: np.ndarray):
        """Execute one chunk per env, all workers in parallel (see vector.py's docstring)."""
        n = self.num_envs
        for i in range(n):
            self._send(i, ("step", np.asarray(actions[i], np.float32)))
        obs_list, infos = [], []
        rewards = np.zeros(n, np.float32)
        terms, truncs = np.zeros(n, bool), np.zeros(n, bool)
        for i in range(n):
            try:
                obs, rewards[i], terms[i], truncs[i], info = self._receive(i, self.step_timeout, "step")
                self._consecutive[i] = 0
            except _WorkerDied as exc:
                obs = self._replace(i, str(exc))
                truncs[i] = True
                info = {"executed": 0, "success": False, "error": str(exc),
                        "final_obs": self._last_obs[i],
                        "episode": {**self.trackers[i].summary(crashed=True), "success": False}}
            else:
                if "error" in info:  # the simulator raised; the worker rebuilt its env
                    self.crashes.append({"env": i, "error": info["error"], "time": time.time()})
            self._track(i, float(rewards[i]), info)
            self._last_obs[i] = obs
            obs_list.append(obs)
            infos.append(info)
        return stack_obs(obs_list), rewards, terms, truncs, infos

    def _track(self, i: int, reward: float, info: dict) -> None:
        """Mirror the worker's episode statistics (needed when a worker dies mid-episode)."""
        if "episode" in info:
            self.trackers[i] = EpisodeTracker()
            return
        t = self.trackers[i]
        t.ret += reward
        t.length += info["executed"]
        t.success = t.success or bool(info.get("success", False))

    def close(self) -> None:
        """Ask every worker to close its env, then make sure they are gone."""
        for i in range(self.num_envs):
            self._send(i, ("close", None))
        deadline = time.time() + 10
        for p in self.procs:
            p.join(timeout=max(0.1, deadline - time.time()))
        for c in self.conns:
            c.close()
        self._finalizer()

    def __enter__(self) -> WorkerVectorEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
