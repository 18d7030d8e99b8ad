"""Cold tiers: where dynamic heads keep their full KV, off the accelerator.

``host`` keeps chunk bodies in pageable CPU memory (pinning gigabytes costs more than it saves; the
chunk store copies through a small pinned staging buffer instead);
``disk`` writes them to a memory-mapped file, so that the OS pages in only the chunks a step reads.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref

import numpy as np
import torch

from ..errors import StorageError

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float16: np.float16, torch.float64: np.float64, torch.int16: np.int16}


class HostTier:
    name = "host"

    def store(self, tensor: torch.Tensor) -> torch.Tensor:
        """Copy ``tensor`` into the tier and return the tier's tensor."""
        return tensor.detach().to("cpu", copy=True).contiguous()


class DiskTier:
    """Memory-mapped files in one directory, removed when the tier is garbage-collected."""

    name = "disk"

    def __init__(self, directory: str | None = None) -> None:
        try:
            self.directory = tempfile.mkdtemp(prefix="hybridkv-cold-", dir=directory)
        except OSError as exc:
            raise StorageError(
                f"cannot create the disk tier in {directory!r}: {exc}; pass a writable --cold-dir"
            ) from exc
        self._count = 0
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.directory, True)

    def store(self, tensor: torch.Tensor) -> torch.Tensor:
        src = tensor.detach().to("cpu").contiguous()
        if src.dtype == torch.bfloat16:  # numpy has no bfloat16: map its bits
            return self.store(src.view(torch.int16)).view(torch.bfloat16)
        if src.dtype not in _NUMPY_DTYPES:
            raise StorageError(f"the disk tier cannot hold {src.dtype}; use --cold-tier host")
        path = os.path.join(self.directory, f"chunks-{self._count}.bin")
        self._count += 1
        try:
            mm = np.memmap(path, dtype=_NUMPY_DTYPES[src.dtype], mode="w+", shape=tuple(src.shape))
            mm[...] = src.numpy()
            mm.flush()
        except OSError as exc:
            raise StorageError(f"cannot write the disk tier at {path}: {exc}; free space or pass --cold-dir") from exc
        return torch.from_numpy(mm)

    def close(self) -> None:
        self._finalizer()


def make_tier(kind: str, directory: str | None = None) -> HostTier | DiskTier:
    return DiskTier(directory) if kind == "disk" else HostTier()
