"""Runs every (method, budget) cell over one fixed item set, with one model load and a progress bar.

Each item's inputs are built once and answered by every cell in turn, greedily, with a handful of new
tokens; the answer is scored by exact match after normalisation (:func:`hybridkv.data.score`). Bytes and
timings come from :func:`hybridkv.generation.generate`, i.e. from the tensors the cache actually holds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .config import EvalConfig, RunSpec
from .results import EvalResults, ItemRecord, finite_or_none
from .tasks import EvalItem, get_task, load_items

WARMUP_TOKENS = 2


def item_inputs(loaded: Any, item: EvalItem, setting: str) -> Any:
    """An item as inputs for ``setting`` (``hybridkv.session.setting_inputs``)."""
    from ..session import setting_inputs

    return setting_inputs(loaded, item.prompt, item.images, setting)


def answer_item(loaded: Any, inputs: Any, method: Any, *, max_new_tokens: int) -> Any:
    """Greedy answer of one item with ``method``'s cache: a :class:`hybridkv.generation.GenerationResult`."""
    from ..session import answer

    return answer(loaded, inputs, method, max_new_tokens=max_new_tokens)


def _record(loaded: Any, item: EvalItem, spec: RunSpec, result: Any) -> ItemRecord:
    prediction = loaded.decode(result.new_tokens[0]).strip()
    stats = result.cache_stats or {}
    full = result.full_kv_bytes
    return ItemRecord(
        id=item.id,
        task=item.task,
        method=spec.method,
        budget=spec.budget,
        prediction=prediction,
        answer=item.answer,
        correct=bool(get_task(item.task).score(prediction, item.answer)),
        prompt_tokens=int(result.prompt_tokens),
        new_tokens=int(result.new_tokens.shape[1]),
        kv_hot_bytes=int(result.kv_hot_bytes),
        kv_cold_bytes=int(result.kv_cold_bytes),
        full_kv_bytes=int(full),
        hot_ratio=finite_or_none(result.kv_hot_bytes / full, 4) if full else None,
        prefill_s=finite_or_none(result.prefill_s, 4),
        decode_ms_per_token=finite_or_none(result.decode_ms_per_token, 3),
        static_fraction=finite_or_none(stats.get("static_fraction")),
        chunk_hit_rate=finite_or_none(stats.get("chunk_hit_rate")),
    )


def run_items(
    loaded: Any,
    items: Sequence[EvalItem],
    methods: Mapping[RunSpec, Any],
    *,
    setting: str = "aware",
    max_new_tokens: int | None = None,
    progress: bool = True,
) -> list[ItemRecord]:
    """Answer every item with every configured method; records come item by item, cells in ``methods`` order.

    Before timing, one short untimed generation absorbs one-time start-up costs (kernel selection,
    allocator growth), so the first record's timings are comparable with the rest.
    """
    from tqdm.auto import tqdm

    if items and methods:
        first = next(iter(methods.values()))
        answer_item(loaded, item_inputs(loaded, items[0], setting), first, max_new_tokens=WARMUP_TOKENS)
    records: list[ItemRecord] = []
    total = len(items) * len(methods)
    with tqdm(total=total, desc=f"eval {loaded.name}", unit="gen", disable=not progress, file=sys.stderr) as bar:
        for item in items:
            inputs = item_inputs(loaded, item, setting)
            tokens = max_new_tokens if max_new_tokens is not None else get_task(item.task).max_new_tokens
            for spec, method in methods.items():
                bar.set_postfix_str(f"{item.task} {spec.label}", refresh=False)
                result = answer_item(loaded, inputs, method, max_new_tokens=tokens)
                records.append(_record(loaded, item, spec, result))
                bar.update(1)
    return records


def evaluate(
    config: EvalConfig,
    *,
    loaded: Any = None,
    items: Iterable[EvalItem] | None = None,
    progress: bool = True,
) -> EvalResults:
    """Run ``config`` end to end and return the records, their summary and the run metadata.

    Items are rendered and every method is built before the model loads, so bad options fail fast.
    ``loaded`` reuses an already loaded model (its name is then what is recorded); ``items`` overrides
    the suite items (e.g. a set read from disk).
    """
    from .metadata import collect_metadata
    from .summary import summarize

    if items is None:
        items = load_items(config.tasks, config.split, config.limit, seed=config.seed)
    item_list = list(items)
    methods = config.build_methods()
    if loaded is None:
        from ..models import load_model

        loaded = load_model(config.model)
    t0 = time.perf_counter()
    records = run_items(
        loaded,
        item_list,
        methods,
        setting=config.setting,
        max_new_tokens=config.max_new_tokens,
        progress=progress,
    )
    elapsed = time.perf_counter() - t0
    metadata = collect_metadata(config, loaded)
    metadata["items"] = len(item_list)
    metadata["elapsed_s"] = round(elapsed, 3)
    return EvalResults(config=config, metadata=metadata, records=records, summary=summarize(records, config.runs()))
