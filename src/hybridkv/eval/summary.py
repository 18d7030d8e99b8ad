"""Per (method, budget) aggregates of the item records: what the table and the plots show.

Accuracy is exact match per task; ``mean_accuracy`` is the unweighted mean over tasks, so a task with
more items does not dominate. Byte figures are means over items; ``hot_ratio`` is total hot bytes over
total full-cache bytes (a ratio of sums, so long prompts weigh in proportion to their size).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from .config import Budget, RunSpec
from .results import ItemRecord, finite_or_none


@dataclass(frozen=True)
class SummaryRow:
    """Aggregates of one run cell over every item."""

    method: str
    budget: Budget | None
    items: int
    correct: int
    accuracy: dict[str, float]  # per task
    mean_accuracy: float
    kv_hot_bytes: float
    kv_cold_bytes: float
    full_kv_bytes: float
    hot_ratio: float | None
    prefill_s: float | None
    decode_ms_per_token: float | None
    static_fraction: float | None

    @property
    def spec(self) -> RunSpec:
        return RunSpec(self.method, self.budget)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SummaryRow:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


def summarize(records: Iterable[ItemRecord], runs: Sequence[RunSpec] | None = None) -> list[SummaryRow]:
    """One row per run cell, in ``runs`` order (default: order of first appearance in ``records``)."""
    groups: dict[RunSpec, list[ItemRecord]] = {}
    for record in records:
        groups.setdefault(RunSpec(record.method, record.budget), []).append(record)
    order = list(runs) if runs is not None else list(groups)
    return [_row(spec, groups[spec]) for spec in order if spec in groups]


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _row(spec: RunSpec, records: list[ItemRecord]) -> SummaryRow:
    by_task: dict[str, list[bool]] = {}
    for r in records:
        by_task.setdefault(r.task, []).append(r.correct)
    accuracy = {task: sum(hits) / len(hits) for task, hits in by_task.items()}
    hot = sum(r.kv_hot_bytes for r in records)
    full = sum(r.full_kv_bytes for r in records)
    n = len(records)
    return SummaryRow(
        method=spec.method,
        budget=spec.budget,
        items=n,
        correct=sum(r.correct for r in records),
        accuracy=accuracy,
        mean_accuracy=statistics.fmean(accuracy.values()),
        kv_hot_bytes=hot / n,
        kv_cold_bytes=sum(r.kv_cold_bytes for r in records) / n,
        full_kv_bytes=full / n,
        hot_ratio=finite_or_none(hot / full, 4) if full else None,
        prefill_s=finite_or_none(_mean(r.prefill_s for r in records), 4),
        decode_ms_per_token=finite_or_none(_mean(r.decode_ms_per_token for r in records), 3),
        static_fraction=finite_or_none(_mean(r.static_fraction for r in records), 4),
    )
