"""Config composition (Hydra) and typed views of config nodes, with one-line errors."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException, OverrideParseException
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
