"""Run metadata: enough to tell, months later, which code, libraries and machine produced a result."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from .config import EvalConfig

DEPENDENCIES: tuple[str, ...] = ("torch", "transformers", "numpy", "safetensors", "pillow", "tokenizers")


def _version(distribution: str) -> str | None:
    try:
        return importlib_metadata.version(distribution)
    except importlib_metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """hybridkv, Python and the dependencies that change numerics or tokenization."""
    from .. import __version__

    found: dict[str, str | None] = {"hybridkv": __version__, "python": platform.python_version()}
    for name in DEPENDENCIES:
        found[name] = _version(name)
    try:
        import torch

        found["torch"] = torch.__version__  # carries the build tag (+cpu, +cu128), unlike the dist metadata
    except ImportError:
        pass
    return found


def _git(*args: str, cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """The commit of the checkout hybridkv is imported from, and whether the package's files differ from it.

    ``dirty`` is True when any file of the package is modified or untracked (new code counts too). Both are
    None when hybridkv is not imported from a git checkout (e.g. installed from a wheel), which is checked by
    asking git whether the package's own ``__init__.py`` is tracked: an installed copy that merely sits
    inside some other repository must not report that repository's commit.
    """
    package_dir = Path(__file__).resolve().parent.parent
    if _git("ls-files", "--error-unmatch", "__init__.py", cwd=package_dir) is None:
        return {"commit": None, "dirty": None}
    commit = _git("rev-parse", "HEAD", cwd=package_dir)
    status = _git("status", "--porcelain", "--", ".", cwd=package_dir)
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def machine() -> dict[str, Any]:
    """Where the numbers were measured: timings only compare within one machine."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "python_implementation": platform.python_implementation(),
        "cpu_count": os.cpu_count(),
        "torch_threads": None,
        "cuda_device": None,
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["cuda_device"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def model_info(loaded: Any) -> dict[str, Any]:
    """Name, family, class, dtype, device and size of the evaluated model."""
    model = loaded.model
    return {
        "name": loaded.name,
        "family": loaded.adapter.family,
        "class": type(model).__name__,
        "dtype": str(model.dtype).removeprefix("torch."),
        "device": str(model.device),
        "parameters": int(sum(p.numel() for p in model.parameters())),
    }


def collect_metadata(config: EvalConfig, loaded: Any = None) -> dict[str, Any]:
    """Versions, git state, machine, UTC timestamp, command line, model and the resolved config."""
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
        "git": git_state(),
        "machine": machine(),
        "argv": [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv else [],  # no install path of this machine
        "model": model_info(loaded) if loaded is not None else {"name": config.model},
        "config": config.to_dict(),
    }
