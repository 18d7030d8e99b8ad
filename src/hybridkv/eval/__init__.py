"""Accuracy-vs-budget evaluation of compression methods on the synthetic task suite.

One run loads a model once, answers the same fixed item set with every method at every budget (the
uncompressed ``full`` cache once, as the reference), and writes ``results.json`` (every item's
prediction plus run metadata), a terminal table and two plots. Public names are imported lazily so that
building the CLI parser does not load torch.

    from hybridkv.eval import EvalConfig, evaluate, write_results, write_plots, print_summary

    results = evaluate(EvalConfig(tasks=("counting",), methods=("full", "hybridkv"), budgets=(0.1,), limit=4))
    write_results(results, "results/")
    write_plots(results.summary, "results/")
    print_summary(results)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DEFAULT_BUDGETS": "hybridkv.eval.config",
    "DEFAULT_LIMIT": "hybridkv.eval.config",
    "DEFAULT_METHODS": "hybridkv.eval.config",
    "DEFAULT_MODEL": "hybridkv.eval.config",
    "DEFAULT_SPLIT": "hybridkv.eval.config",
    "REFERENCE_METHOD": "hybridkv.eval.config",
    "SETTINGS": "hybridkv.eval.config",
    "EvalConfig": "hybridkv.eval.config",
    "RunSpec": "hybridkv.eval.config",
    "EvalItem": "hybridkv.eval.tasks",
    "EvalTask": "hybridkv.eval.tasks",
    "eval_tasks": "hybridkv.eval.tasks",
    "get_task": "hybridkv.eval.tasks",
    "load_items": "hybridkv.eval.tasks",
    "evaluate": "hybridkv.eval.runner",
    "item_inputs": "hybridkv.eval.runner",
    "run_items": "hybridkv.eval.runner",
    "EvalResults": "hybridkv.eval.results",
    "ItemRecord": "hybridkv.eval.results",
    "RESULTS_FILE": "hybridkv.eval.results",
    "load_results": "hybridkv.eval.results",
    "write_results": "hybridkv.eval.results",
    "SummaryRow": "hybridkv.eval.summary",
    "summarize": "hybridkv.eval.summary",
    "collect_metadata": "hybridkv.eval.metadata",
    "plot_accuracy_vs_budget": "hybridkv.eval.plots",
    "plot_accuracy_vs_kv_bytes": "hybridkv.eval.plots",
    "write_plots": "hybridkv.eval.plots",
    "print_summary": "hybridkv.eval.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hybridkv.eval' has no attribute {name!r}")
