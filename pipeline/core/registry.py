"""Stream plug-ins by name: the built-in ones and any a package declares as an entry point.

A package adds a stream by declaring, in its pyproject.toml,

    [project.entry-points."inferstream.streams"]
    mystream = "mypackage.stream:PLUGIN"

where `PLUGIN` is a `pipeline.core.plugin.StreamPlugin`. Plug-ins load on first use.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

from pipeline.core.exceptions import PluginError, UnknownStreamError
from pipeline.core.plugin import StreamPlugin
from pipeline.core.topics import StreamTopics

ENTRY_POINT_GROUP = "inferstream.streams"
BUILTIN_STREAMS = {
    "fraud": "pipeline.streams.fraud:PLUGIN",
    "docs": "pipeline.streams.docs:PLUGIN",
}
DEFAULT_STREAM = "fraud"


@cache
def _sources() -> dict[str, str]:
    found = dict(BUILTIN_STREAMS)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name, point.value)
    return found


def stream_names() -> list[str]:
    return sorted(_sources())


@cache
def get_plugin(name: str) -> StreamPlugin:
    sources = _sources()
    if name not in sources:
        raise UnknownStreamError(f"unknown stream {name!r}; known: {', '.join(stream_names())}")
    module_name, _, attr = sources[name].partition(":")
    try:
        plugin = getattr(importlib.import_module(module_name), attr or "PLUGIN")
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"stream {name!r}: cannot load {sources[name]}: {exc}") from exc
    if not isinstance(plugin, StreamPlugin):
        raise PluginError(f"stream {name!r}: {sources[name]} is not a StreamPlugin")
    if plugin.name != name:
        raise PluginError(f"stream {name!r}: {sources[name]} is named {plugin.name!r}")
    return plugin


def plugin_schema_dirs() -> list[Path]:
    """The `schema_dir` of every registered plug-in that has its own schemas."""
    dirs = [get_plugin(name).schema_dir for name in stream_names()]
    return [d for d in dirs if d is not None]


def stream_topics(name: str, namespace: str = "") -> StreamTopics:
    return get_plugin(name).topics(namespace)


def parse_streams(text: str) -> list[str]:
    """A comma list of stream names, each checked; the error names the known ones."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise UnknownStreamError(f"no stream named in {text!r}; known: {', '.join(stream_names())}")
    for name in names:
        get_plugin(name)
    return list(dict.fromkeys(names))
