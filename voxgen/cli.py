"""``voxgen <command> [conf=<recipe>] [key=value ...]``: compose a config, call the library."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from importlib import import_module

from tqdm import tqdm

from voxgen import __version__
from voxgen.config import compose_config, config_help, config_sources
from voxgen.errors import ConfigError, VoxgenError

# command -> (module:function taking the composed DictConfig, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("voxgen.tasks:simulate", "simulate LArTPC events into PILArNet-M v2 shards"),
    "inspect": ("voxgen.tasks:inspect", "summarise a PILArNet-M / Parquet file or folder"),
    "export": ("voxgen.tasks:export", "convert events to parquet, h5 (PILArNet-M v2), ply or glb"),
    "show": ("voxgen.tasks:show", "event display: projections and wire planes as a PNG"),
    "train": (
        "voxgen.tasks:train",
        "train a model recipe (conf=flowmatch3d, diffusion3d, ssnet3d, vpsde2d, ...)",
    ),
    "sample": (
        "voxgen.tasks:sample",
        "draw events or crops from a trained generator (conf=flowmatch3d|diffusion3d|vpsde2d|pixelcnn2d ckpt=RUN)",
    ),
    "evaluate": ("voxgen.tasks:evaluate", "score candidate images against real ones, with floors and a report"),
    "tune": ("voxgen.scale.sweep:tune_command", "a Ray Tune sweep of a training recipe (conf=<recipe> tune=<space>)"),
    "submit": ("voxgen.scale.submit:submit", "run a voxgen command as a Ray job on a cluster (-- voxgen ...)"),
}
# commands that read their own arguments instead of one composed config
OWN_ARGUMENTS = ("tune", "submit")

DEFAULT_RECIPE = {"train": "flowmatch3d", "sample": "flowmatch3d"}  # the main job: 3D events

SAMPLE_ONLY_KEYS = ("ckpt", "n", "cond", "format")
SAMPLE_KEYS = ("out", "seed", "sampler", "layout", "ray", "trainer.device", "trainer.progress", *SAMPLE_ONLY_KEYS)


def _within(key: str, prefixes: tuple[str, ...]) -> bool:
    """Whether dotted ``key`` is one of ``prefixes`` or lies below one."""
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


# the config keys a command reads (its --help lists only those): train and sample share their recipes,
# sampling reads the run's own settings but for these; other commands read all of their recipe's keys
READS: dict[str, Callable[[str], bool]] = {
    "train": lambda key: not _within(key, (*SAMPLE_ONLY_KEYS, "ray.cpus_per_task")),
    "sample": lambda key: _within(key, SAMPLE_KEYS),
}

USAGE = "usage: voxgen <command> [conf=<recipe>] [key=value ...]   (voxgen <command> --help, voxgen --version)"


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


def _print_command_help(command: str, recipe: str, overrides: list[str]) -> None:
    """The command's summary and the config keys it reads: ``key = default   description``."""
    cfg = compose_config(recipe, overrides)
    lines = config_help(cfg, config_sources(recipe, overrides), READS.get(command, lambda key: True))
    print(f"voxgen {command}: {COMMANDS[command][1]}")
    print(f"usage: voxgen {command} [conf=<recipe>] [key=value ...]; keys of conf={recipe} with defaults:")
    print("\n".join(lines))


def run(argv: list[str]) -> int:
    """Run one command line (without the program name); returns the exit code."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        _print_help()
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"voxgen {__version__}")
        return 0
    command, *rest = argv
    if command not in COMMANDS:
        raise ConfigError(f"unknown command '{command}' (commands: {', '.join(COMMANDS)})")
    if command in OWN_ARGUMENTS:
        return _run_own(command, rest)
    recipe, overrides, want_help = _split_args(command, rest)
    if want_help:
        _print_command_help(command, recipe, overrides)
        return 0
    cfg = compose_config(recipe, overrides)
    module, func = COMMANDS[command][0].split(":")
    getattr(import_module(module), func)(cfg)
    return 0


def _run_own(command: str, args: list[str]) -> int:
    """``voxgen tune`` (recipe, overrides, help) and ``voxgen submit`` (options ``--`` command line)."""
    module, func = COMMANDS[command][0].split(":")
    function = getattr(import_module(module), func)
    if command == "submit":
        if "--" not in args:
            if {"-h", "--help"} & set(args):
                print(f"voxgen submit: {COMMANDS['submit'][1]}\n{import_module(module).USAGE}")
                return 0
            raise ConfigError("submit: no command; put the voxgen command line after -- (voxgen submit -- voxgen ...)")
        at = args.index("--")
        return function(args[:at], args[at + 1 :])
    help_asked = bool({"-h", "--help"} & set(args))
    recipe, overrides, _ = _split_args(command, [a for a in args if a not in ("-h", "--help")])
    if recipe == "tune" and not help_asked:
        raise ConfigError("missing conf=<recipe> (the training recipe the sweep trains)")
    return function(recipe, overrides, help_asked)


def _report(command: str, message: str) -> None:
    """``voxgen <command>: <message>`` on stderr as its last line: progress bars the failure left
    open are closed first (else they close later, at exit, and redraw below it)."""
    for bar in list(getattr(tqdm, "_instances", ())):  # tqdm's live bars, as tqdm itself walks them
        bar.close()
    print(f"voxgen {command}: {message}", file=sys.stderr)


class Terminated(BaseException):
    """SIGTERM arrived (``timeout``, batch schedulers): raised like KeyboardInterrupt, so the
    cleanups run (temporary files removed, worker processes stopped)."""


def _on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: let the cleanup finish
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else ""
    in_main_thread = threading.current_thread() is threading.main_thread()  # signal handlers live there
    previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        code = run(argv)
        sys.stdout.flush()  # a closed pipe (voxgen --help | head -1) raises here, not at exit
        return code
    except VoxgenError as exc:
        _report(command, f"error: {exc}")
        return exc.exit_code
    except BrokenPipeError:  # the reader of stdout went away: stop quietly (Python's docs, "Note on SIGPIPE")
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # disk full, permissions, corrupt HDF5 blocks: still one line
        _report(command, f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        _report(command, "interrupted")
        return 130
    except Terminated:
        _report(command, "interrupted (SIGTERM)")
        return 128 + signal.SIGTERM
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous_sigterm is None else previous_sigterm)


if __name__ == "__main__":
    sys.exit(main())
