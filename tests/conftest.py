"""Shared fixtures: a temporary fpoctl home, the CLI runner, skip helpers for missing hardware."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fpoctl.settings import Settings
from fpoctl.store import Store


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread: the tests' small models are fastest so, and CI has two cores."""
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`gpu` tests skip without CUDA; `sim` tests skip when their simulator is not installed."""
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)"))
        if "sim" in item.keywords and importlib.util.find_spec("mujoco") is None:
            item.add_marker(pytest.mark.skip(reason="needs the `sim` extra: mujoco is not installed"))


def require(module: str) -> None:
    """Skip the calling test, naming the package, when `module` cannot be imported."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"needs the package providing `{module}` (not installed)")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty fpoctl home for one test; FPOCTL_HOME points at it, FPOCTL_DB is unset."""
    path = tmp_path / "fpoctl-home"
    monkeypatch.setenv("FPOCTL_HOME", str(path))
    monkeypatch.delenv("FPOCTL_DB", raising=False)
    return path


@pytest.fixture
def settings(home: Path) -> Settings:
    """Settings of the temporary home (home folder created)."""
    cfg = Settings.resolve(home)
    cfg.ensure_home()
    return cfg


@pytest.fixture
def store(settings: Settings) -> Store:
    """An open store in the temporary home."""
    s = Store(settings.db_url)
    yield s
    s.close()


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `fpoctl` entry point in a subprocess (as a user would)."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "fpoctl.cli", *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=cwd)


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SentencePiece model with PaliGemma's special ids, for the pi0 tests."""
    from tests.pi0_helpers import train_tokenizer

    return train_tokenizer(tmp_path_factory.mktemp("tokenizer"))
