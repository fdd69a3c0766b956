"""The report's tables of numbers, read from any foley CSV: score tables with bars (every column shown,
known or not) and class matrices as heatmaps."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from foley.evaluate.html import bar_td, heading, heat_td, note, number_td, paragraph, table, td
from foley.stages.report.files import MEAN_ROWS, is_number

GROUP_KEYS = ("embedder",)  # rows scored on different scales: bars are scaled within each


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "bar" (decimal numbers), "number" (integers) or "text"
    interval: tuple[str, str] | None = None  # its interval's low and high columns


def interval_columns(name: str, fields: list[str]) -> tuple[str, str] | None:
    """<name>_ci_low/_ci_high, or ci_low/ci_high for fad (the FAD tables' own names)."""
    for low, high in ((f"{name}_ci_low", f"{name}_ci_high"), ("ci_low", "ci_high") if name == "fad" else ("", "")):
        if low in fields and high in fields:
            return low, high
    return None


def _kind(values: list[str]) -> str:
    if not all(is_number(v) for v in values):
        return "text"
    return "bar" if any(c in v for v in values for c in ".eEn") else "number"


def columns(rows: list[dict[str, str]]) -> tuple[list[Column], dict[str, str], list[str]]:
    """The table's columns; the text columns equal in every row (shown once, above); the empty ones."""
    fields = list(rows[0])
    intervals = {name: interval_columns(name, fields) for name in fields}
    hidden = {c for pair in intervals.values() if pair for c in pair}
    shown, same, empty = [], {}, []
    for name in fields:
        values = [r[name] for r in rows if r[name] != ""]
        if name in hidden:
            continue
        if not values:
            empty.append(name)
        elif _kind(values) == "text" and len(values) == len(rows) and len(set(values)) == 1 and len(rows) > 1:
            same[name] = values[0]
        else:
            shown.append(Column(name, _kind(values), intervals[name] if _kind(values) == "bar" else None))
    return shown, same, empty


def number(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1000 or not math.isfinite(value) else f"{value:.0f}"


def _optional(text: str) -> float | None:
    return float(text) if is_number(text) else None


def _scales(rows: list[dict[str, str]], shown: list[Column]) -> dict[tuple[str, str], float]:
    """Per bar column and group of rows (embedder), the bar length of 100 %: 1 for accuracies, else the largest value."""
    scales: dict[tuple[str, str], float] = {}
    for column in (c for c in shown if c.kind == "bar"):
        for row in rows:
            value = _optional(row[column.name])
            key = (column.name, _group(row))
            if value is not None and math.isfinite(value):
                scales[key] = 1.0 if "accuracy" in column.name else max(scales.get(key, 0.0), abs(value))
    return scales


def _group(row: dict[str, str]) -> str:
    return "|".join(row.get(key, "") for key in GROUP_KEYS)


def _cell(row: dict[str, str], column: Column, scales: dict[tuple[str, str], float]) -> str:
    text = row[column.name]
    if column.kind == "text" or not is_number(text):
        return td(text)
    if column.kind == "number":
        return number_td(text)
    value = float(text)
    low, high = (_optional(row[column.interval[0]]), _optional(row[column.interval[1]])) if column.interval else (None, None)
    shown = number(value) + (f" [{number(low)}, {number(high)}]" if low is not None and high is not None else "")
    return bar_td(value, scales.get((column.name, _group(row)), 0.0), shown, low, high)


def score_table(rows: list[dict[str, str]]) -> str:
    """Every column of a score CSV: decimals with bars (and their intervals), text equal in every row above."""
    shown, same, empty = columns(rows)
    scales = _scales(rows, shown)
    body = [[_cell(row, column, scales) for column in shown] for row in rows]
    classes = ["mean" if row.get("class") in MEAN_ROWS else "" for row in rows]
    parts = [paragraph("; ".join(f"{k}: {v}" for k, v in same.items()))] if same else []
    parts.append(table([c.name for c in shown], body, classes))
    if empty:
        parts.append(note(f"Columns without values in this run: {', '.join(empty)}."))
    return "".join(parts)


@dataclass(frozen=True)
class Matrix:
    title: str  # what the block's rows share ("embedder builtin-mfcc-v1", "set generated"), or ""
    corner: str  # "generated \\ reference"
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    values: np.ndarray


def matrices(rows: list[dict[str, str]]) -> list[Matrix]:
    """A class-matrix CSV (a corner column named "<rows> \\ <columns>", a numeric column per class, any other
    column grouping the rows into blocks) as one matrix per block."""
    fields = list(rows[0])
    corner = next((f for f in fields if "\\" in f), fields[0])
    value_columns = tuple(f for f in fields if f != corner and all(is_number(r[f]) for r in rows))
    keys = [f for f in fields if f != corner and f not in value_columns]
    blocks: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for row in rows:
        blocks.setdefault(tuple(row[k] for k in keys), []).append(row)
    return [Matrix(", ".join(f"{k} {v}" for k, v in zip(keys, block)), corner, tuple(r[corner] for r in members),
                   value_columns, np.array([[float(r[c]) for c in value_columns] for r in members]))
            for block, members in blocks.items()]


def heatmap(matrix: Matrix, lower_is_closer: bool) -> str:
    """The matrix with cells shaded (darker: closer for distances, more for counts) and each row's best outlined."""
    values = matrix.values
    if lower_is_closer:
        logs = np.log(np.clip(values, 1e-12, None))
        span = max(float(logs.max() - logs.min()), 1e-12)
        shade = 1.0 - (logs - logs.min()) / span
        best = values == values.min(axis=1, keepdims=True)
    else:
        shade = values / np.clip(values.sum(axis=1, keepdims=True), 1e-12, None)
        best = values == values.max(axis=1, keepdims=True)
    body = [[td(name)] + [heat_td(number(v), t, bool(b)) for v, t, b in zip(row, shade_row, best_row)]
            for name, row, shade_row, best_row in zip(matrix.rows, values, shade, best)]
    title = heading(matrix.title) if matrix.title else ""
    return title + table((matrix.corner, *matrix.columns), body)
