"""Accuracy vs budget and accuracy vs measured hot KV bytes: one line per method, ``full`` as a reference.

Figures are drawn on matplotlib's Agg canvas through ``Figure`` objects (no pyplot), so plotting needs no
display and leaves no global figure state behind.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..io import atomic_write
from .config import REFERENCE_METHOD, format_budget
from .summary import SummaryRow

BUDGET_PLOT = "accuracy_vs_budget.png"
BYTES_PLOT = "accuracy_vs_kv_bytes.png"
_REFERENCE_STYLE = {"color": "0.35", "linestyle": "--", "linewidth": 1.2}
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # distinct markers keep coinciding lines apart


def _by_method(rows: Sequence[SummaryRow]) -> tuple[SummaryRow | None, dict[str, list[SummaryRow]]]:
    """The reference row (if any) and the other rows grouped by method, sorted by budget."""
    reference = next((r for r in rows if r.method == REFERENCE_METHOD), None)
    lines: dict[str, list[SummaryRow]] = {}
    for row in rows:
        if row.method != REFERENCE_METHOD and row.budget is not None:
            lines.setdefault(row.method, []).append(row)
    return reference, {m: sorted(rs, key=lambda r: r.budget) for m, rs in lines.items()}


def _new_axes(title: str, subtitle: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(f"{title}\n{subtitle}" if subtitle else title, fontsize=10)
    ax.set_ylabel("accuracy (mean over tasks)")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    return atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=120))


def _budget_axis_label(rows: Sequence[SummaryRow]) -> str:
    tokens = any(isinstance(r.budget, int) for r in rows if r.budget is not None)
    return "KV budget (tokens per KV head)" if tokens else "KV budget (ratio of the prompt per KV head)"


def plot_accuracy_vs_budget(rows: Sequence[SummaryRow], path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Mean accuracy against the budget; the full cache is a horizontal reference line."""
    reference, lines = _by_method(rows)
    fig, ax = _new_axes("accuracy vs KV budget", title)
    for i, (method, series) in enumerate(lines.items()):
        marker = _MARKERS[i % len(_MARKERS)]
        ax.plot([r.budget for r in series], [r.mean_accuracy for r in series], marker=marker, label=method)
    if reference is not None:
        ax.axhline(reference.mean_accuracy, label=f"{REFERENCE_METHOD} (uncompressed)", **_REFERENCE_STYLE)
    budgets = sorted({r.budget for series in lines.values() for r in series})
    if budgets:
        ax.set_xticks(budgets, [format_budget(b) for b in budgets])
    ax.set_xlabel(_budget_axis_label(rows))
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_accuracy_vs_kv_bytes(rows: Sequence[SummaryRow], path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Mean accuracy against the mean hot KV bytes actually held (log x); points are labelled by budget."""
    reference, lines = _by_method(rows)
    fig, ax = _new_axes("accuracy vs measured hot KV bytes", title)
    for i, (method, series) in enumerate(lines.items()):
        xs = [r.kv_hot_bytes for r in series]
        ys = [r.mean_accuracy for r in series]
        ax.plot(xs, ys, marker=_MARKERS[i % len(_MARKERS)], label=method)
        for r, x, y in zip(series, xs, ys, strict=True):
            ax.annotate(format_budget(r.budget), (x, y), textcoords="offset points", xytext=(3, 4), fontsize=7)
    if reference is not None:
        ax.axhline(reference.mean_accuracy, label=f"{REFERENCE_METHOD} (uncompressed)", **_REFERENCE_STYLE)
        point = {"marker": "*", "markersize": 10, "color": "0.35", "linestyle": "none"}
        ax.plot([reference.kv_hot_bytes], [reference.mean_accuracy], **point)
    if any(r.kv_hot_bytes > 0 for r in rows):
        ax.set_xscale("log")
    ax.set_xlabel("mean hot KV bytes per item (log scale)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def write_plots(rows: Sequence[SummaryRow], out_dir: str | os.PathLike[str], *, title: str = "") -> dict[str, Path]:
    """Both plots under ``out_dir``; returns their paths by kind (``budget``, ``kv_bytes``)."""
    out = Path(out_dir)
    return {
        "budget": plot_accuracy_vs_budget(rows, out / BUDGET_PLOT, title=title),
        "kv_bytes": plot_accuracy_vs_kv_bytes(rows, out / BYTES_PLOT, title=title),
    }
