"""``voxgen <command> [conf=<recipe>] [key=value ...]``: compose a config, call the library."""

from __future__ import annotations

import sys
from importlib import import_module

from omegaconf import OmegaConf

from voxgen.config import compose_config
from voxgen.errors import ConfigError, VoxgenError

# command -> (module:function taking the composed DictConfig, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("voxgen.tasks:simulate", "simulate LArTPC events into PILArNet-M v2 shards"),
    "inspect": ("voxgen.tasks:inspect", "summarise a PILArNet-M / Parquet file or folder"),
    "export": ("voxgen.tasks:export", "convert events to parquet, h5 (PILArNet-M v2), ply or glb"),
    "show": ("voxgen.tasks:show", "event display: projections and wire planes as a PNG"),
    "train": (
        "voxgen.tasks:train",
        "train a model recipe (conf=flowmatch3d, diffusion3d, autoencoder3d, ssnet3d, vpsde2d, ...)",
    ),
    "sample": (
        "voxgen.tasks:sample",
        "draw events or crops from a trained generator (conf=flowmatch3d|diffusion3d|vpsde2d|pixelcnn2d ckpt=RUN)",
    ),
    "evaluate": ("voxgen.tasks:evaluate", "score candidate images against real ones, with floors and a report"),
}

DEFAULT_RECIPE = {"train": "flowmatch3d", "sample": "flowmatch3d"}  # the main job: 3D events

USAGE = "usage: voxgen <command> [conf=<recipe>] [key=value ...]   (voxgen <command> --help)"


def _print_help() -> None:
    print(USAGE + "\n\ncommands:")
    for name, (_, summary) in COMMANDS.items():
        print(f"  {name:<10} {summary}")


def _split_args(command: str, args: list[str]) -> tuple[str, list[str], bool]:
    recipe, overrides, want_help = DEFAULT_RECIPE.get(command, command), [], False
    for arg in args:
        if arg in ("-h", "--help"):
            want_help = True
        elif arg.startswith("conf="):
            recipe = arg.split("=", 1)[1]
        elif arg.startswith("-"):
            raise ConfigError(f"unknown option '{arg}' (overrides are key=value)")
        else:
            overrides.append(arg)
    return recipe, overrides, want_help


def run(argv: list[str]) -> int:
    """Run one command line (without the program name); returns the exit code."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        _print_help()
        return 0
    command, *rest = argv
    if command not in COMMANDS:
        raise ConfigError(f"unknown command '{command}' (commands: {', '.join(COMMANDS)})")
    recipe, overrides, want_help = _split_args(command, rest)
    cfg = compose_config(recipe, overrides)
    if want_help:
        print(f"voxgen {command}: {COMMANDS[command][1]}\n\nconfig keys (conf={recipe}) and defaults:\n")
        print(OmegaConf.to_yaml(cfg))
        return 0
    module, func = COMMANDS[command][0].split(":")
    getattr(import_module(module), func)(cfg)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else ""
    try:
        return run(argv)
    except VoxgenError as exc:
        print(f"voxgen {command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # disk full, permissions, corrupt HDF5 blocks: still one line
        print(f"voxgen {command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"voxgen {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
