"""Counters and histograms, and their Prometheus text exposition (format 0.0.4).

The format is small enough to write by hand, so there is no client library: a family is a name,
help text, type and a map from label values to numbers. Label values are escaped as the format
requires (backslash, double quote, newline). Series per family are capped so attacker-chosen
values can never grow memory without bound; callers also map unknown tool names to one label.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

__all__ = ["Counter", "Histogram", "MetricsRegistry", "escape_label"]

_MAX_SERIES = 5_000
_OVERFLOW = "(other)"


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{name}="{escape_label(value)}"' for name, value in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Family:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labels: Sequence[str]) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)

    def _key(self, values: Sequence[str], series: dict[tuple[str, ...], object]) -> tuple[str, ...]:
        key = tuple(values)
        if key not in series and len(series) >= _MAX_SERIES:
            return tuple(_OVERFLOW for _ in key)
        return key

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def lines(self) -> list[str]:
        raise NotImplementedError


class Counter(_Family):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[tuple[str, ...], float] = {}

    def inc(self, *values: str, amount: float = 1.0) -> None:
        key = self._key(values, self._values)  # type: ignore[arg-type]
        self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, *values: str) -> float:
        return self._values.get(tuple(values), 0.0)

    def series(self) -> dict[tuple[str, ...], float]:
        return dict(self._values)

    def lines(self) -> list[str]:
        out = self.header()
        for key, value in sorted(self._values.items()):
            out.append(f"{self.name}{_labels(self.label_names, key)} {_format_value(value)}")
        return out


DEFAULT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Histogram(_Family):
    kind = "histogram"

    def __init__(
        self, name: str, help_text: str, labels: Sequence[str] = (), buckets: Iterable[float] = DEFAULT_BUCKETS
    ) -> None:
        super().__init__(name, help_text, labels)
        self.buckets = tuple(sorted(buckets))
        # Per series: per-bucket counts (not cumulative), then sum and count.
        self._series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, value: float, *values: str) -> None:
        key = self._key(values, self._series)  # type: ignore[arg-type]
        entry = self._series.get(key)
        if entry is None:
            entry = self._series[key] = ([0] * (len(self.buckets) + 1), [0.0, 0.0])
        entry[0][bisect.bisect_left(self.buckets, value)] += 1
        entry[1][0] += value
        entry[1][1] += 1

    def count(self, *values: str) -> int:
        entry = self._series.get(tuple(values))
        return 0 if entry is None else int(entry[1][1])

    def lines(self) -> list[str]:
        out = self.header()
        for key, (counts, (total, count)) in sorted(self._series.items()):
            running = 0
            for bound, bucket_count in zip((*self.buckets, math.inf), counts, strict=True):
                running += bucket_count
                le = f'le="{_format_value(bound)}"'
                out.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {running}")
            out.append(f"{self.name}_sum{_labels(self.label_names, key)} {_format_value(total)}")
            out.append(f"{self.name}_count{_labels(self.label_names, key)} {_format_value(count)}")
        return out


class MetricsRegistry:
    def __init__(self) -> None:
        self._families: list[_Family] = []

    def register(self, family: _Family) -> None:
        self._families.append(family)

    def exposition(self) -> str:
        lines: list[str] = []
        for family in self._families:
            lines.extend(family.lines())
        return "\n".join(lines) + "\n"
