"""What a run produces and how it is stored: one record per (item, method, budget), in ``results.json``.

Layout of ``results.json`` (plain JSON, strict: no NaN)::

    {
      "format": "hybridkv.eval/1",
      "metadata": {... versions, git commit, machine, timestamp, model, "config": {...}, "elapsed_s"},
      "summary": [{"method", "budget", "items", "correct", "accuracy": {task: acc}, "mean_accuracy", ...}],
      "records": [{"id", "task", "method", "budget", "prediction", "answer", "correct", ...}]
    }

Files are written to a temporary name next to the target and renamed into place, so a reader never sees
a half-written file, even if a run is interrupted.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..io import atomic_write
from .config import Budget, EvalConfig

if TYPE_CHECKING:
    from .summary import SummaryRow

FORMAT = "hybridkv.eval/1"
RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class ItemRecord:
    """One item answered by one method at one budget, with what its cache held and how fast it decoded."""

    id: str
    task: str
    method: str
    budget: Budget | None  # None for the budget-independent reference
    prediction: str
    answer: str
    correct: bool
    prompt_tokens: int
    new_tokens: int
    kv_hot_bytes: int
    kv_cold_bytes: int
    full_kv_bytes: int
    hot_ratio: float | None
    prefill_s: float | None
    decode_ms_per_token: float | None  # None when fewer than two tokens were generated
    static_fraction: float | None = None  # hybridkv-family methods only
    chunk_hit_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ItemRecord:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


@dataclass
class EvalResults:
    """Everything a run produced; ``to_dict`` is the ``results.json`` layout."""

    config: EvalConfig
    metadata: dict[str, Any]
    records: list[ItemRecord]
    summary: list[SummaryRow]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "metadata": {**self.metadata, "config": self.config.to_dict()},
            "summary": [row.to_dict() for row in self.summary],
            "records": [record.to_dict() for record in self.records],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalResults:
        from .summary import SummaryRow

        if data.get("format") != FORMAT:
            raise InputError(f"results format {data.get('format')!r} is not {FORMAT!r}; re-run the evaluation")
        metadata = dict(data["metadata"])
        config = EvalConfig.from_dict(metadata["config"])
        return cls(
            config=config,
            metadata=metadata,
            records=[ItemRecord.from_dict(r) for r in data["records"]],
            summary=[SummaryRow.from_dict(r) for r in data["summary"]],
        )


def finite_or_none(value: float | None, digits: int | None = None) -> float | None:
    """JSON has no NaN: a missing or non-finite measurement is None; others are optionally rounded."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits) if digits is not None else float(value)


def write_results(results: EvalResults, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``results.json`` under ``out_dir`` atomically and return its path."""
    text = json.dumps(results.to_dict(), indent=1, allow_nan=False, ensure_ascii=True) + "\n"
    return atomic_write(Path(out_dir) / RESULTS_FILE, lambda handle: handle.write(text.encode("utf-8")))


def load_results(path: str | os.PathLike[str]) -> EvalResults:
    """Read a ``results.json`` (or the directory holding it) written by :func:`write_results`."""
    file = Path(path)
    if file.is_dir():
        file = file / RESULTS_FILE
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no results at {file}; pass the results.json written by `hybridkv eval`") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{file} is not a readable results.json ({exc}); re-run the evaluation") from None
    try:
        return EvalResults.from_dict(data)
    except (KeyError, TypeError) as exc:
        raise InputError(f"{file} is missing {exc} or malformed; re-run the evaluation") from None
