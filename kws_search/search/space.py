"""Search spaces as data: `search_spaces/*.yaml`, validated at load time.

Sections name the config they set (`model` -> CRNNConfig, `distill` -> DistillConfig, `train` ->
TrainConfig, `quant` -> the quantization mode); keys are that config's field names. A value is
either a fixed scalar or a distribution in Optuna's short form, e.g.
`{type: int, low: 8, high: 64, step: 8}`, `{type: float, low: 1e-3, high: 1e-2, log: true}`,
`{type: categorical, choices: [gru, rnn]}`. Optuna parameter names are the bare field names.

An optional `front_end` section gives students a front end of their own: `n_fft` (the FFT size
and window) and `n_mels`, each fixed or `{type: categorical, choices: [...]}`; every combination
is one more feature cache over the same augmented audio (so the teacher's cached outputs still
match row for row), computed once, together. Without it students read the teacher's features.

An optional `fidelity` section (fixed values only) sets multi-fidelity training: `rungs`, the
epochs at which students are compared and the ones behind are stopped, and `keep`, the share
that goes on (see `kws_search.search.fidelity`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.distributions import BaseDistribution, distribution_to_json, json_to_distribution

from kws_search.data.front_end import FeatureConfig, front_end_problem
from kws_search.distill import DistillConfig
from kws_search.errors import KwsSearchError, yaml_problem
from kws_search.models import CRNNConfig
from kws_search.quantize import QUANT_MODES
from kws_search.search.budgets import LIMITS, Budgets
from kws_search.search.fidelity import Rungs
from kws_search.train import TrainConfig

# the named spaces: `search_spaces/` of the repository, shipped inside the package as
# `kws_search/spaces` (a link to it), so a name works from any install, not only an editable one
SPACES_DIR = Path(__file__).resolve().parents[1] / "spaces"


@dataclass(frozen=True)
class FrontEnd:
    """A student's own front end; 0 keeps the teacher's value."""

    n_fft: int = 0
    n_mels: int = 0

    def features(self, teacher: FeatureConfig) -> FeatureConfig:
        """The student's feature settings: the teacher's, with this FFT size and mel bands."""
        return teacher.with_front_end(self.n_fft or teacher.n_fft,
                                      self.n_mels or teacher.n_mels)


SECTIONS: dict[str, type] = {"model": CRNNConfig, "distill": DistillConfig, "train": TrainConfig,
                             "front_end": FrontEnd}
QUANT_KEYS = ("mode",)
FIDELITY_KEYS = {"rungs": "epochs", "keep": "keep", "min_peers": "min_peers"}  # file -> Rungs
ALL_SECTIONS = sorted([*SECTIONS, "quant", "fidelity", "budgets"])
_SHORT = {"int": "IntDistribution", "float": "FloatDistribution",
          "categorical": "CategoricalDistribution"}
_DEFAULT_ATTRS = {"int": {"step": 1, "log": False}, "float": {"step": None, "log": False}}


class SearchSpaceError(KwsSearchError, ValueError):
    """A search space file that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial trains and measures."""

    model: CRNNConfig
    distill: DistillConfig
    train: TrainConfig
    quant: str
    front_end: FrontEnd = FrontEnd()


@dataclass(frozen=True)
class SearchSpace:
    """Fixed values and distributions per section, keyed by config field name."""

    name: str
    sections: dict[str, dict[str, Any]]  # section -> field -> scalar or BaseDistribution
    text: str  # the file as written, stored with the study

    def distributions(self) -> dict[str, BaseDistribution]:
        return {k: v for sec in self.sections.values() for k, v in sec.items()
                if isinstance(v, BaseDistribution)}

    def build(self, values: dict[str, Any]) -> TrialConfig:
        """Configs from sampled `values` (param name -> value) plus the fixed entries."""
        def section(name: str) -> dict[str, Any]:
            return {k: values[k] if isinstance(v, BaseDistribution) else v
                    for k, v in self.sections.get(name, {}).items()}
        quant = section("quant").get("mode", "none")
        if quant not in QUANT_MODES:
            raise SearchSpaceError(f"quant.mode {quant!r} is not one of {QUANT_MODES}")
        if section("model").get("bidirectional"):
            raise SearchSpaceError("model.bidirectional: students stream, so they are "
                                   "unidirectional; only a teacher may be bidirectional")
        return TrialConfig(CRNNConfig(**section("model")), DistillConfig(**section("distill")),
                           TrainConfig(**section("train")), quant,
                           FrontEnd(**section("front_end")))

    def front_ends(self, teacher: FeatureConfig) -> list[FeatureConfig]:
        """Every front end a student of this space may read, the teacher's own first when a
        student may read it (one feature cache each)."""
        given = self.sections.get("front_end", {})

        def choices(key: str) -> list[int]:
            value = given.get(key, 0)
            return list(value.choices) if isinstance(value, BaseDistribution) else [value]
        configs = [FrontEnd(n_fft, n_mels).features(teacher)
                   for n_fft in choices("n_fft") for n_mels in choices("n_mels")]
        return sorted(set(configs), key=lambda c: c != teacher)

    def identity(self) -> dict[str, Any]:
        """What the space searches, independent of formatting and comments (JSON-ready)."""
        return {name: {k: json.loads(distribution_to_json(v)) if isinstance(v, BaseDistribution)
                       else v for k, v in sorted(sec.items())}
                for name, sec in sorted(self.sections.items())}

    @property
    def rungs(self) -> Rungs:
        """The multi-fidelity schedule; no rungs (train every student in full) when absent."""
        given = self.sections.get("fidelity", {})
        return Rungs(**{FIDELITY_KEYS[k]: tuple(v) if k == "rungs" else v
                        for k, v in given.items()})

    @property
    def budgets(self) -> Budgets:
        """The space's own budgets (`budgets:`); `run`'s options take their place."""
        return Budgets.parse(self.sections.get("budgets", {}), f"{self.name}: budgets")

    def sample(self, trial: optuna.Trial) -> TrialConfig:
        """Suggest every distribution on `trial` and build the configs."""
        values = {}
        for name, dist in self.distributions().items():
            if isinstance(dist, optuna.distributions.IntDistribution):
                values[name] = trial.suggest_int(name, dist.low, dist.high, step=dist.step,
                                                 log=dist.log)
            elif isinstance(dist, optuna.distributions.FloatDistribution):
                values[name] = trial.suggest_float(name, dist.low, dist.high, step=dist.step,
                                                   log=dist.log)
            else:
                values[name] = trial.suggest_categorical(name, dist.choices)
        return self.build(values)


def _distribution(where: str, spec: dict[str, Any]) -> BaseDistribution:
    kind = spec.get("type")
    if kind not in _SHORT:
        raise SearchSpaceError(f"{where}: 'type' must be one of {sorted(_SHORT)}, got {kind!r}")
    attrs = {**_DEFAULT_ATTRS.get(kind, {}), **{k: v for k, v in spec.items() if k != "type"}}
    try:
        return json_to_distribution(json.dumps({"name": _SHORT[kind], "attributes": attrs}))
    except (TypeError, ValueError) as exc:
        raise SearchSpaceError(f"{where}: {exc}") from None


def _check_scalar(where: str, section: str, key: str, value: Any) -> Any:
    """A fixed value must have the config field's type (an int is fine for a float)."""
    if section == "quant":
        expected: Any = str
    elif section == "fidelity":
        expected = {"rungs": "list", "keep": "float", "min_peers": "int"}[key]
    else:
        expected = {f.name: f.type for f in fields(SECTIONS[section])}[key]
    kinds = {"int": int, "float": (int, float), "str": str, "bool": bool, "list": list}
    want = kinds.get(expected if isinstance(expected, str) else expected.__name__)
    if want is None:
        return value
    if isinstance(value, bool) and want is not bool or not isinstance(value, want):
        name = expected if isinstance(expected, str) else expected.__name__
        raise SearchSpaceError(f"{where}: expected {name}, got {value!r}")
    return value


def _check_range(where: str, section: str, key: str,
                 dist: BaseDistribution) -> BaseDistribution:
    """Every value a distribution can draw must have the field's type: a float range for an int
    field is refused now, not by every trial that draws from it."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        for choice in dist.choices:
            _check_scalar(where, section, key, choice)
    elif isinstance(dist, optuna.distributions.FloatDistribution):
        try:
            _check_scalar(where, section, key, 0.5)  # a float that no int field takes
        except SearchSpaceError:
            raise SearchSpaceError(f"{where}: a float range for a whole-number key; write "
                                   "`type: int`") from None
    return dist


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key written twice in one mapping (plain YAML keeps the
    last one silently, so half of a section would be lost)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise SearchSpaceError(f"{key!r} is written twice (line {line}); merge the two "
                                       "into one")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_space(text: str, name: str = "<string>") -> SearchSpace:
    """Parse and validate a space; every error names `name` and the offending key."""
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except SearchSpaceError as exc:
        raise SearchSpaceError(f"{name}: {exc}") from None
    except yaml.YAMLError as exc:
        raise SearchSpaceError(f"{name}: not valid YAML ({yaml_problem(exc)})") from None
    if not isinstance(raw, dict) or not raw:
        raise SearchSpaceError(f"{name}: empty or not a mapping; expected sections "
                               f"{ALL_SECTIONS}")
    sections: dict[str, dict[str, Any]] = {}
    for sec, entries in raw.items():
        allowed = {"quant": list(QUANT_KEYS), "fidelity": list(FIDELITY_KEYS),
                   "budgets": list(LIMITS)}.get(sec) or (
            [f.name for f in fields(SECTIONS[sec])] if sec in SECTIONS else None)
        if allowed is None:
            raise SearchSpaceError(f"{name}: unknown section {sec!r}; expected one of "
                                   f"{ALL_SECTIONS}")
        if not isinstance(entries, dict):
            raise SearchSpaceError(f"{name}: section {sec!r} must be a mapping of keys")
        sections[sec] = {}
        for key, value in entries.items():
            where = f"{name}: {sec}.{key}"
            if key not in allowed:
                raise SearchSpaceError(f"{where} is not a known key; {sec} keys are {allowed}")
            if sec == "budgets":
                Budgets.parse({key: value}, f"{name}: budgets")  # refuses a bad amount now
                sections[sec][key] = value
            elif isinstance(value, dict):
                if sec == "fidelity":
                    raise SearchSpaceError(f"{where}: fidelity values are fixed, not searched")
                sections[sec][key] = _check_range(where, sec, key, _distribution(where, value))
            else:
                sections[sec][key] = _check_scalar(where, sec, key, value)
    space = SearchSpace(name, sections, text)
    _check_buildable(space)
    _check_front_ends(space)
    return space


def _check_buildable(space: SearchSpace) -> None:
    """Build configs at the low ends and the high ends so type and range errors show now."""
    for pick in (0, -1):
        values = {}
        for key, dist in space.distributions().items():
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                values[key] = dist.choices[pick]
            else:
                values[key] = dist.low if pick == 0 else dist.high
        try:
            config = space.build(values)
            space.rungs.check(config.train.epochs)
        except (TypeError, ValueError) as exc:
            raise SearchSpaceError(f"{space.name}: {exc}") from None
    searched = [sec for name, sec in space.sections.items()
                if name not in ("fidelity", "budgets")]
    repeated = {k for sec in searched for k in sec}
    if len(repeated) != sum(len(sec) for sec in searched):
        raise SearchSpaceError(f"{space.name}: a key appears in two sections")


def _check_front_ends(space: SearchSpace) -> None:
    """Front ends are feature caches: only listed choices, each one usable."""
    for key, value in space.sections.get("front_end", {}).items():
        if isinstance(value, BaseDistribution) and not isinstance(
                value, optuna.distributions.CategoricalDistribution):
            raise SearchSpaceError(f"{space.name}: front_end.{key}: each value is a feature "
                                   "cache, so list them: {type: categorical, choices: [...]}")
    for config in space.front_ends(FeatureConfig()):
        problem = front_end_problem(config)
        if problem:
            raise SearchSpaceError(f"{space.name}: front_end n_fft {config.n_fft}, n_mels "
                                   f"{config.n_mels}: {problem}")


def load_space(path_or_name: Path | str) -> SearchSpace:
    """A space by file path, or by name from `search_spaces/` (e.g. 'default', 'tiny')."""
    path = Path(path_or_name)
    if not path.is_file() and not path.suffix:
        path = SPACES_DIR / f"{path_or_name}.yaml"
    if not path.is_file():
        available = ", ".join(p.stem for p in sorted(SPACES_DIR.glob("*.yaml")))
        raise SearchSpaceError(f"search space {path_or_name} not found; pass a YAML file "
                               f"or one of: {available}")
    return parse_space(path.read_text(), str(path))
