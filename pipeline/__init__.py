"""inferstream: event-driven ML inference on Kafka (transport-independent core)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("inferstream")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+src"
