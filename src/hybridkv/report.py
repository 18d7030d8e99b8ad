"""Terminal output: results as rich tables."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


def make_console() -> Console:
    """A console that does not squeeze tables to 80 columns when output is piped to a file or a log."""
    return Console() if sys.stdout.isatty() else Console(width=160)


def human_bytes(n: int | float | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def print_generation(record: dict[str, Any], console: Console | None = None) -> None:
    console = console or make_console()
    console.print(f"[bold]{record['method']}[/bold] (budget {record['budget']}): {record['text']!r}")
    print_rows([record], console=console)


def print_demo_rows(
    records: Sequence[dict[str, Any]], *, title: str | None = None, console: Console | None = None
) -> None:
    """One row per (item, method): the answer against the expected one, KV bytes per tier, decode speed."""
    console = console or make_console()
    table = Table(title=title)
    columns = ("case", "method", "question", "answer", "expected", "", "prompt tok", "hot KV", "cold KV", "hot / full")
    for col in columns:
        table.add_column(col, no_wrap=True)
    table.add_column("decode ms/tok", no_wrap=True)
    for r in records:
        ratio = r.get("hot_ratio")
        table.add_row(
            str(r["case"]),
            str(r["method"]),
            "after compression" if r.get("setting") == "agnostic" else "in prompt",
            repr(r["text"])[:24],
            str(r["expected"]),
            "[green]ok[/green]" if r["correct"] else "[red]wrong[/red]",
            str(r["prompt_tokens"]),
            human_bytes(r["kv_bytes"]["hot"]),
            human_bytes(r["kv_bytes"]["cold"]),
            "-" if ratio is None else f"{ratio:.3f}",
            f"{r['decode_ms_per_token']:.1f}",
        )
    console.print(table)


def print_rows(records: Sequence[dict[str, Any]], *, title: str | None = None, console: Console | None = None) -> None:
    """One row per generation: method, KV bytes per tier, ratio to the full cache, timings."""
    console = console or make_console()
    table = Table(title=title)
    for col in ("case", "method", "prompt tok", "hot KV", "cold KV", "hot / full", "decode ms/tok"):
        table.add_column(col, no_wrap=True)
    table.add_column("answer", no_wrap=True, max_width=32, overflow="ellipsis")
    for r in records:
        ratio = r.get("hot_ratio")
        table.add_row(
            str(r.get("case", "-")),
            str(r["method"]),
            str(r["prompt_tokens"]),
            human_bytes(r["kv_bytes"]["hot"]),
            human_bytes(r["kv_bytes"]["cold"]),
            "-" if ratio is None else f"{ratio:.3f}",
            f"{r['decode_ms_per_token']:.1f}",
            repr(r["text"])[:32],
        )
    console.print(table)
