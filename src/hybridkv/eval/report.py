"""The terminal view of a run: one rich table row per (method, budget), accuracy per task and overall."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from ..report import human_bytes
from .config import format_budget
from .results import EvalResults
from .summary import SummaryRow

ACCURACY = "accuracy"
COST = "cost"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def summary_columns(
    rows: Sequence[SummaryRow], tasks: Sequence[str], parts: Sequence[str] = (ACCURACY, COST)
) -> list[tuple[str, list[str]]]:
    """(header, cells) per column: accuracy (%) per task and their mean, hot KV, hot / full, decode ms/token.

    ``parts`` selects the accuracy columns, the cost columns or both (the mean is in either).
    """
    columns: list[tuple[str, list[str]]] = [
        ("method", [r.method for r in rows]),
        ("budget", [format_budget(r.budget) for r in rows]),
    ]
    if ACCURACY in parts:
        columns += [(task, [_pct(r.accuracy.get(task)) for r in rows]) for task in tasks]
    columns.append(("mean", [_pct(r.mean_accuracy) for r in rows]))
    if COST in parts:
        columns += [
            ("hot KV", [human_bytes(r.kv_hot_bytes) for r in rows]),
            ("hot / full", ["-" if r.hot_ratio is None else f"{r.hot_ratio:.3f}" for r in rows]),
            ("decode ms/tok", ["-" if r.decode_ms_per_token is None else f"{r.decode_ms_per_token:.1f}" for r in rows]),
        ]
    return columns


def summary_markdown(rows: Sequence[SummaryRow], tasks: Sequence[str]) -> str:
    """The same table as the terminal's, as GitHub markdown (for docs and reports)."""
    columns = summary_columns(rows, tasks)
    lines = ["| " + " | ".join(header for header, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cells) + " |" for cells in zip(*(values for _, values in columns), strict=True)]
    return "\n".join(lines) + "\n"


def summary_table(
    rows: Sequence[SummaryRow],
    tasks: Sequence[str],
    *,
    title: str | None = None,
    parts: Sequence[str] = (ACCURACY, COST),
) -> Table:
    """Rows method x budget, the columns of :func:`summary_columns`.

    Values are never cut: each column is at least as wide as its widest value; only headers fold on a
    narrow console.
    """
    columns = summary_columns(rows, tasks, parts)
    table = Table(title=title)
    for header, values in columns:
        table.add_column(
            header,
            justify="left" if header == "method" else "right",
            style="bold" if header == "mean" else None,
            overflow="fold",
            min_width=max((len(v) for v in values), default=1),
        )
    for cells in zip(*(values for _, values in columns), strict=True):
        table.add_row(*cells)
    return table


def _natural_width(console: Console, table: Table) -> int:
    return Measurement.get(console, console.options.update_width(10_000), table).maximum


def print_summary(results: EvalResults, *, console: Console | None = None) -> None:
    """Print the summary table of a run, titled with the model, split and item count.

    When the table is wider than the console: printed to a file or a pipe (without a console given), it
    keeps its natural width, since nobody reads a log at 80 columns; in a terminal, it is split into an
    accuracy table and a cost table, so no value is truncated.
    """
    config = results.config
    items = results.metadata.get("items", "?")
    model = results.metadata.get("model", {}).get("name", config.model)
    title = f"{model}: accuracy (%) on {items} {config.split} items, setting {config.setting}"
    table = summary_table(results.summary, config.tasks, title=title)
    if console is None:
        console = Console()
        natural = _natural_width(console, table)
        if not console.is_terminal and natural > console.width:
            console = Console(width=natural)
    if _natural_width(console, table) <= console.width:
        console.print(table)
        return
    console.print(summary_table(results.summary, config.tasks, title=title, parts=(ACCURACY,)))
    console.print(summary_table(results.summary, config.tasks, title="KV bytes and decode time", parts=(COST,)))
