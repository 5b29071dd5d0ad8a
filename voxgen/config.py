"""Config composition (Hydra) and typed views of config nodes, with one-line errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from voxgen.errors import ConfigError

T = TypeVar("T")


def conf_dir() -> Path:
    """The shipped ``conf/`` folder: package data ``voxgen.conf`` when installed, else the
    source checkout's top-level ``conf/`` (running from a clone without installing)."""
    try:
        return Path(str(files("voxgen.conf")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "conf"


def recipes() -> list[str]:
    """Names of the top-level recipes (``conf/*.yaml``)."""
    return sorted(p.stem for p in conf_dir().glob("*.yaml"))


def _one_line(exc: Exception) -> str:
    text = str(exc).strip()
    key = re.search(r"full_key: (\S+)", text)
    first = text.splitlines()[0] if text else type(exc).__name__
    if "not in struct" in text or "Could not override" in text or "Key '" in first and "not" in first:
        name = re.search(r"'([^']+)'", first)
        return f"unknown config key '{name.group(1) if name else first}'"
    if key:
        return f"bad value for '{key.group(1)}': {first}"
    return first


def compose_config(recipe: str, overrides: list[str]) -> DictConfig:
    """Compose ``conf/<recipe>.yaml`` with ``key=value`` overrides; ConfigError on failure."""
    if recipe not in recipes():
        raise ConfigError(f"conf: unknown recipe '{recipe}' (available: {', '.join(recipes())})")
    for override in overrides:
        if override.startswith(("+", "~")):
            key = override.lstrip("+~").split("=", 1)[0]
            raise ConfigError(f"unknown config key '{key}' (voxgen configs take no added or deleted keys)")
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            defaults = compose(config_name=recipe)
            cfg = compose(config_name=recipe, overrides=overrides)
    except OverrideParseException as exc:
        raise ConfigError(f"cannot parse override: {str(exc).splitlines()[0]}") from None
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_one_line(exc)) from None
    check_types(cfg, defaults)
    return cfg


def from_node(schema: type[T], node: DictConfig) -> T:
    """Dataclass ``schema`` built from a config node (its ``__post_init__`` checks ranges)."""
    return schema(**OmegaConf.to_container(node, resolve=True))


def _type_name(value: Any) -> str:
    return {bool: "a bool", int: "an int", float: "a float", str: "a string"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _compatible(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return not isinstance(value, (list, dict))
    return isinstance(value, type(default))


def check_types(cfg: DictConfig, defaults: DictConfig, prefix: str = "") -> None:
    """ConfigError naming the first key whose value does not have its default's type.

    The recipe's YAML defaults are the schema: ints stay ints, floats accept ints, flags
    stay booleans, lists stay lists; keys whose default is null or ``???`` take anything.
    """
    for key in cfg:
        name = f"{prefix}{key}"
        if key not in defaults or OmegaConf.is_missing(defaults, key):
            continue
        default, value = defaults[key], cfg[key]
        if isinstance(default, DictConfig) and isinstance(value, DictConfig):
            check_types(value, default, prefix=f"{name}.")
        elif not isinstance(default, DictConfig) and not _compatible(
            OmegaConf.to_container(default) if OmegaConf.is_config(default) else default,
            OmegaConf.to_container(value) if OmegaConf.is_config(value) else value,
        ):
            raise ConfigError(
                f"bad value for '{name}': {value!r} is {_type_name(value)}, "
                f"expected {_type_name(default)} like the default {default!r}"
            )


def required(cfg: DictConfig, key: str, hint: str = "") -> Any:
    """The value of a mandatory key (``???`` in the YAML); ConfigError naming it if unset."""
    if OmegaConf.is_missing(cfg, key):
        raise ConfigError(f"missing required key '{key}'" + (f" ({hint})" if hint else ""))
    return cfg[key]


_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[^\s#:\-][^:#]*?)\s*:(?:\s+(?P<rest>.*))?$")
_QUOTED = re.compile(r"""\s*(?:"(?:[^"\\]|\\.)*"|'(?:[^']|'')*')""")


def _end_of_line_comment(text: str) -> str:
    """The ``# comment`` after a YAML value (outside a leading quoted string), or ''."""
    quoted = _QUOTED.match(text)
    start = quoted.end() if quoted else 0
    hash_mark = re.search(r"(?:^|\s)#", text[start:])
    return text[start + hash_mark.end() :].strip() if hash_mark else ""


def key_comments(text: str) -> dict[str, str]:
    """Every mapping key of a YAML config file by dotted name (``report.n``), with the comment
    on its line (``n: 150  # events generated``) or '' where it has none. Keys inside flow
    collections (``{a: 1}``) and sequences are part of their parent's value, not listed."""
    comments: dict[str, str] = {}
    parents: list[tuple[int, str]] = []  # (indent, key) of the enclosing block mappings
    for line in text.splitlines():
        match = _KEY_LINE.match(line)
        if not match or line.lstrip().startswith("- "):
            continue
        indent = len(match["indent"])
        while parents and parents[-1][0] >= indent:
            parents.pop()
        parents.append((indent, match["key"]))
        comments[".".join(key for _, key in parents)] = _end_of_line_comment(match["rest"] or "")
    return comments


def config_sources(recipe: str, overrides: list[str]) -> list[tuple[str, str]]:
    """The files under ``conf/`` that ``compose_config(recipe, overrides)`` merges, in merge
    order, as (path without ``.yaml``, package: the dotted key their keys land under, '' = top)."""
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        defaults = loader.compute_defaults_list(config_name=recipe, overrides=overrides, run_mode=RunMode.RUN)
    return [
        (d.config_path, d.package or "")
        for d in defaults.defaults
        if d.config_path
        and not (d.package or "").startswith("hydra")
        and (conf_dir() / f"{d.config_path}.yaml").is_file()
    ]


def key_descriptions(sources: list[tuple[str, str]]) -> dict[str, str]:
    """Dotted key -> its one-line description (the comment beside it in the YAML) over the
    composed ``sources``; a later file's comment replaces an earlier one, its silence does not."""
    descriptions: dict[str, str] = {}
    for path, package in sources:
        for key, comment in key_comments((conf_dir() / f"{path}.yaml").read_text()).items():
            name = f"{package}.{key}" if package else key
            if comment or name not in descriptions:
                descriptions[name] = comment
    return descriptions


def _show(value: Any) -> str:
    """A config value as YAML flow text: null, true, [1, 2], {a: 1}."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value)


class _HelpRows:
    """The ``(key, default, description)`` rows of a composed config's help (``config_help``)."""

    def __init__(self, cfg: DictConfig, sources: list[tuple[str, str]], shown: Callable[[str], bool]) -> None:
        self.values, self.shown = OmegaConf.to_container(cfg, resolve=False), shown
        self.descriptions = key_descriptions(sources)
        self.presets = {package: path for path, package in sources if "/" in path}  # a package's last file wins

    def value(self, name: str) -> Any:
        """The (unresolved) value at dotted key ``name``."""
        value = self.values
        for key in name.split("."):
            value = value[key]
        return value

    def expands(self, name: str) -> bool:
        """Whether the mapping at ``name`` is listed key by key: keys below it carry comments."""
        described = (key for key, text in self.descriptions.items() if text)
        return isinstance(self.value(name), dict) and any(key.startswith(f"{name}.") for key in described)

    def rows(self, name: str) -> list[tuple[str, str, str]]:
        """Rows for the key ``name`` and, when it expands, every key below it that is shown."""
        if self.expands(name):
            return [row for key in self.value(name) for row in self.rows(f"{name}.{key}")]
        return [(name, _show(self.value(name)), self.descriptions.get(name, ""))] if self.shown(name) else []

    def header(self, key: str) -> str:
        """The title line of the section of top-level mapping ``key``: its preset or its description."""
        if key in self.presets:
            return f"{key} (preset {key}={self.presets[key].split('/')[1]})"
        description = self.descriptions.get(key, "")
        return f"{key} ({description})" if description else key


def config_help(cfg: DictConfig, sources: list[tuple[str, str]], shown: Callable[[str], bool]) -> list[str]:
    """Help lines ``key = default   description`` for the keys of ``cfg`` that ``shown(dotted key)``
    accepts: top-level keys first, then a titled section per top-level mapping (a config group's
    title names its preset). A mapping is one entry unless keys below it carry comments.
    ``sources``: ``config_sources`` of ``cfg``."""
    help_rows = _HelpRows(cfg, sources, shown)
    top: list[tuple[str, str, str]] = []
    sections: list[tuple[str, list[tuple[str, str, str]]]] = []
    for key in map(str, cfg):
        if help_rows.expands(key):
            sections.append((help_rows.header(key), help_rows.rows(key)))
        else:
            top += help_rows.rows(key)
    all_rows = top + [row for _, rows in sections for row in rows]
    width = min(max((len(f"{k} = {v}") for k, v, _ in all_rows), default=0), 44)
    line = lambda row: f"  {f'{row[0]} = {row[1]}':<{width}}   {row[2]}".rstrip()
    lines = [line(row) for row in top]
    for title, rows in sections:
        if rows:
            lines += [title] + [line(row) for row in rows]
    return lines


def flat_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved leaves of ``cfg`` by dotted key (``trainer.lr``); an empty mapping is a leaf."""

    def flat(node: dict, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            name = f"{prefix}{key}"
            out.update(flat(value, f"{name}.") if isinstance(value, dict) and value else {name: value})
        return out

    return flat(OmegaConf.to_container(cfg, resolve=True), "")
