"""Budgets a device sets: most stored bytes, peak RAM, MACs per second of audio, per-hop time.

A budget is part of what a study's numbers mean (`Measures`, so of its identity). A student
over a budget that its architecture fixes (bytes, RAM, MACs) is never trained: its trial ends
at once, COMPLETE with the numbers it has, the worst quality (`UNTRAINED_QUALITY`) and one
constraint per budget (its excess, value / budget - 1; <= 0 fits) beside the quality bar's.
Optuna's samplers (GP, TPE, NSGA-II) read the constraints a trial stores
(`FrozenTrial.constraints`), so each of them learns where the boundary is. A latency budget is
checked on a short timing of the untrained student, before training.

- bytes: the stored weights, as the compression measure counts them. The front end's tables
  (window and mel matrix, `frontend_bytes`) do not count: they are the same for every student
  that reads the teacher's front end, and shown apart.
- ram: `kws_search.memory.peak_ram_bytes` (state, audio block and the largest live
  activations of one streaming step).
- macs: multiply-adds per second of audio, the front end's included.
- latency: microseconds per 10 ms hop in the study's runtime (`--runtime`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

from kws_search.errors import ConfigError

UNTRAINED_QUALITY = 1.0  # the worst FA/FR area: what an over-budget (untrained) trial records
OVER_BUDGET = "over_budget"  # trial attr: which budgets it is over, one line


# budget -> (the trial's number it limits, the option that sets it, unit kind)
class Limit(NamedTuple):
    """One kind of device budget: the trial attribute it bounds, its option, its unit."""

    stat: str
    option: str
    unit: str  # "bytes", "count" or "time" (`parse_amount`, `show`)


LIMITS = {"bytes": Limit("bytes", "--max-bytes", "bytes"),
          "ram": Limit("peak_ram", "--max-ram", "bytes"),
          "macs": Limit("macs_per_second", "--max-macs", "count"),
          "latency": Limit("hop_us", "--max-latency", "time")}
_BYTES = {"": 1, "b": 1, "kb": 1024, "kib": 1024, "mb": 1024 ** 2, "mib": 1024 ** 2}
_COUNT = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}
_TIME = {"us": 1.0, "µs": 1.0, "ms": 1e3, "s": 1e6}
_UNITS = {"bytes": _BYTES, "count": _COUNT, "time": _TIME}
_EXAMPLES = {"bytes": "16KB (1 KB = 1024 bytes)", "count": "300K", "time": "50us"}


def parse_amount(text: str | int | float, kind: str, what: str) -> float:
    """'16KB' -> 16384, '300K' -> 300000, '50us' / '0.05ms' -> 50 (microseconds)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = float(text), "" if kind != "time" else "us"
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Zµ]*)\s*",
                             str(text))
        if not match or match.group(2).lower() not in _UNITS[kind]:
            raise ConfigError(f"{what} {text!r} is not an amount; write it like "
                              f"{_EXAMPLES[kind]}")
        value, unit = float(match.group(1)), match.group(2).lower()
    if value <= 0:
        raise ConfigError(f"{what} must be > 0, got {text!r}")
    return value * _UNITS[kind][unit]


def show(value: float, kind: str) -> str:
    """An amount in the unit people read it in: 16.0 KB, 300K MACs/s, 50 us."""
    if kind == "bytes":
        return f"{value / 1024:.1f} KB" if value >= 1024 else f"{value:.0f} B"
    if kind == "count":
        return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}K"
    return f"{value:.1f} us"


@dataclass(frozen=True)
class Budgets:
    """Limits a student must keep to; None: no limit."""

    bytes: float | None = None
    ram: float | None = None
    macs: float | None = None
    latency: float | None = None  # microseconds per hop

    @classmethod
    def parse(cls, given: dict[str, Any], source: str = "budgets") -> Budgets:
        """From amounts with units (a space's `budgets:` section, or the run options)."""
        unknown = set(given) - set(LIMITS)
        if unknown:
            raise ConfigError(f"{source}: unknown budget(s) {sorted(unknown)}; use "
                              f"{sorted(LIMITS)}")
        return cls(**{k: None if v is None else parse_amount(v, LIMITS[k].unit, f"{source}.{k}")
                      for k, v in given.items()})

    def over(self, other: Budgets) -> Budgets:
        """These budgets, with the ones `other` sets taking their place."""
        return Budgets(**{f.name: getattr(other, f.name) if getattr(other, f.name) is not None
                          else getattr(self, f.name) for f in fields(self)})

    def active(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def to_dict(self) -> dict[str, float]:
        return self.active()

    def excess(self, numbers: dict[str, float]) -> list[float]:
        """Per active budget (in a fixed order), value / budget - 1: <= 0 fits."""
        return [numbers[LIMITS[k].stat] / v - 1 for k, v in self.active().items()]

    def broken(self, numbers: dict[str, float]) -> str:
        """'' when `numbers` fit every budget; else which they break, one line."""
        return "; ".join(f"{LIMITS[k].stat} {show(numbers[LIMITS[k].stat], LIMITS[k].unit)} > "
                         f"{LIMITS[k].option} {show(v, LIMITS[k].unit)}"
                         for k, v in self.active().items() if numbers[LIMITS[k].stat] > v)

    def fit_text(self, numbers: dict[str, float]) -> str:
        """Each budget beside the student's number: 'bytes 12.1 KB <= --max-bytes 27.5 KB'."""
        return "; ".join(
            f"{LIMITS[k].stat} {show(numbers[LIMITS[k].stat], LIMITS[k].unit)} "
            f"{'<=' if numbers[LIMITS[k].stat] <= v else '>'} {LIMITS[k].option} "
            f"{show(v, LIMITS[k].unit)}"
            for k, v in self.active().items() if LIMITS[k].stat in numbers)

    def describe(self) -> str:
        """'--max-bytes 16.0 KB, --max-macs 300.0K' (or 'none')."""
        return ", ".join(f"{LIMITS[k].option} {show(v, LIMITS[k].unit)}"
                         for k, v in self.active().items()) or "none"
