"""Each step's training examples, drawn and encoded ahead of time in worker processes.

Drawing items (rendering images) and encoding them (tokenizing, patchifying) is host work of about
10 ms an item. On CPU it is a small share of a step, but on a GPU it is the whole step unless it
overlaps with the model's work, so ``StepData`` can hand it to a pool of workers that stay a bounded
number of steps ahead. A step's examples are a function of (settings, step) alone, so the data, and
the run, are the same for any worker count.

Workers are spawned, not forked: a fork copies the parent's thread pools and locks (torch's, the
tokenizer's) in whatever state they are in, and a worker can then wait forever on a lock no thread
will release. They get the tokenizer, processor and adapter but not the weights (encoding needs only
the model's config and dtype). A step a worker does not deliver in time is computed here instead,
and the pool is shut, so a stuck worker costs a warning, never a hung run.
"""

from __future__ import annotations

import multiprocessing
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from transformers import PretrainedConfig

from hybridkv.models import LoadedModel

from .examples import Example, encode
from .mixture import Variant, draw_items
from .questions import follow_ups as draw_follow_ups
from .readouts import as_readout_item, readouts

if TYPE_CHECKING:
    from .training import TrainSettings

# Steps prepared ahead per worker: enough to hide uneven item costs, bounded so memory stays small.
_AHEAD_PER_WORKER = 4
# Seconds to wait for a step from the workers (the first includes their start-up: importing torch).
_WORKER_TIMEOUT_S = 120.0


def step_examples(loaded: LoadedModel, mixture: Sequence[Variant], settings: TrainSettings, step: int) -> list[Example]:
    """The encoded examples of 0-based ``step``: its items, each with its follow-up questions."""
    drawn = draw_items(mixture, settings.seed, step, settings.steps, settings.batch_size)
    examples = []
    for slot, (name, item) in enumerate(drawn):
        if settings.readout_items:
            rng = follow_up_rng(settings, step, slot, stream=3)
            readout = as_readout_item(item, rng) if rng.random() < settings.readout_items else None
            if readout is not None:
                examples.append(encode(loaded, readout, label=f"{name}/readout"))
                continue
        extra = draw_follow_ups(item, settings.follow_ups, follow_up_rng(settings, step, slot))
        extra += readouts(item, settings.readouts, follow_up_rng(settings, step, slot, stream=2))
        derived = {"motion_words": settings.motion_words, "count_words": settings.count_words}
        examples.append(encode(loaded, item, label=name, follow_ups=extra, **derived))
    return examples


def follow_up_rng(settings: TrainSettings, step: int, slot: int, stream: int = 1) -> np.random.Generator:
    """The random source of one item's follow-up questions (``stream`` 1), read-out turns (2) or read-out item
    (3): a function of (seed, step, slot) only."""
    return np.random.default_rng([settings.seed, step, slot, stream])


class StepData:
    """``get(step)`` returns :func:`step_examples`, computed here (``workers=0``) or ahead in workers.

    Steps must be asked for in increasing order. Use as a context manager so that the workers end.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        mixture: Sequence[Variant],
        settings: TrainSettings,
        workers: int = 0,
        timeout_s: float = _WORKER_TIMEOUT_S,
    ) -> None:
        self._args = (loaded, tuple(mixture), settings)
        self._pool = None
        self._pending: dict[int, Any] = {}
        self._next = 0
        self._ahead = max(1, workers) * _AHEAD_PER_WORKER
        self._timeout_s = timeout_s
        if workers > 0:
            host = replace(loaded, model=_HostModel(loaded.model.config, loaded.model.dtype))
            context = multiprocessing.get_context("spawn")
            self._pool = context.Pool(workers, initializer=_init_worker, initargs=(host, *self._args[1:]))

    def get(self, step: int, last: int) -> list[Example]:
        """Examples of ``step``; with workers, also queues the steps after it, up to ``last`` (exclusive)."""
        if self._pool is None:
            return step_examples(*self._args, step)
        self._next = max(self._next, step)
        while self._next < min(last, step + 1 + self._ahead):
            self._pending[self._next] = self._pool.apply_async(_worker_step, (self._next,))
            self._next += 1
        for stale in [s for s in self._pending if s < step]:
            del self._pending[stale]
        result = self._pending.pop(step, None)
        if result is None:
            return step_examples(*self._args, step)
        try:
            return [_unpack(packed) for packed in result.get(timeout=self._timeout_s)]
        except multiprocessing.TimeoutError:
            warnings.warn(
                f"data workers gave no examples for step {step} in {self._timeout_s:.0f} s; preparing the rest "
                "of the run in the main process (the data are the same, only slower)",
                RuntimeWarning,
                stacklevel=2,
            )
            self.close()
            return step_examples(*self._args, step)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
            self._pending.clear()

    def __enter__(self) -> StepData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class _HostModel:
    """What encoding reads from a model, without its weights: workers never run the model."""

    config: PretrainedConfig
    dtype: torch.dtype
    device: torch.device = torch.device("cpu")


# Set once in each worker process by the pool's initializer (the parent never writes it).
_worker_args: tuple[Any, ...] = ()


def _init_worker(loaded: LoadedModel, mixture: tuple[Variant, ...], settings: TrainSettings) -> None:
    global _worker_args
    torch.set_num_threads(1)
    _worker_args = (loaded, mixture, settings)


def _worker_step(step: int) -> list[dict[str, Any]]:
    return [_pack(example) for example in step_examples(*_worker_args, step)]


def _pack(example: Example) -> dict[str, Any]:
    """Plain arrays: pickled by value, not through torch's shared-memory file descriptors."""
    return {name: value.numpy() if isinstance(value, torch.Tensor) else value for name, value in vars(example).items()}


def _unpack(packed: dict[str, Any]) -> Example:
    return Example(**{k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in packed.items()})
