"""voxgen: generative models for liquid-argon TPC events."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("voxgen")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

from voxgen.events import Clusters, Event, Particle  # noqa: E402

__all__ = ["Event", "Clusters", "Particle", "__version__"]
