"""Several runs' results as one: an evaluation sharded by task (or method, or budget) across processes or
machines, read back as if it had run at once.

Shards must agree on everything that makes their answers comparable (model, split, seed, answer length,
setting, method options, profile); they may differ in tasks, methods and budgets, and no answer (item,
method, budget) may come from two of them. Items per task (``limit``) may differ only between shards that
share no task (a costly task run on fewer items), and the merged metadata then records each task's. The
merged summary is recomputed from the records; the metadata is the first shard's, with the others' commits,
times and arguments kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..errors import InputError
from .results import EvalResults

MUST_MATCH = ("model", "split", "seed", "max_new_tokens", "setting", "method_options", "profile")


def _union(groups: Sequence[Sequence[Any]]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(value for group in groups for value in group))


def merge_results(shards: Sequence[EvalResults]) -> EvalResults:
    """One :class:`EvalResults` from ``shards``, or an InputError naming what keeps them apart."""
    from .summary import summarize

    if not shards:
        raise InputError("nothing to merge; pass two or more results.json files or directories")
    first = shards[0].config.to_dict()
    for shard in shards[1:]:
        other = shard.config.to_dict()
        differ = [key for key in MUST_MATCH if other[key] != first[key]]
        if shard.metadata.get("model", {}).get("name") != shards[0].metadata.get("model", {}).get("name"):
            differ.append("model (loaded)")
        if differ:
            raise InputError(
                f"these runs differ in {', '.join(differ)}; only tasks, methods and budgets may differ between "
                "merged runs (re-run the odd one with the others' settings)"
            )
    limits: dict[str, int] = {}
    for shard in shards:
        for task in shard.config.tasks:
            if limits.setdefault(task, shard.config.limit) != shard.config.limit:
                raise InputError(
                    f"task {task} was run with {limits[task]} and with {shard.config.limit} items; runs that share "
                    "a task must use the same --limit (re-run the odd one with the others' settings)"
                )
    seen: set[tuple[str, str, float | None]] = set()
    records = []
    for shard in shards:
        for record in shard.records:
            key = (record.id, record.method, record.budget)
            if key in seen:
                raise InputError(
                    f"item {record.id} was answered by {record.method} at budget {record.budget} in two of "
                    "the runs; merge runs that split the work, not ones that repeat it"
                )
            seen.add(key)
            records.append(record)
    config = replace(
        shards[0].config,
        limit=max(limits.values()),
        tasks=_union([s.config.tasks for s in shards]),
        methods=_union([s.config.methods for s in shards]),
        budgets=_union([s.config.budgets for s in shards]),
    )
    metadata = {
        **shards[0].metadata,
        "items": sum(int(s.metadata.get("items", 0)) for s in shards),
        "elapsed_s": round(sum(float(s.metadata.get("elapsed_s", 0.0)) for s in shards), 3),
        **({"limit_per_task": limits} if len(set(limits.values())) > 1 else {}),
        "merged_from": [
            {key: s.metadata.get(key) for key in ("created", "git", "argv", "items", "elapsed_s")} for s in shards
        ],
    }
    return EvalResults(config=config, metadata=metadata, records=records, summary=summarize(records, config.runs()))
