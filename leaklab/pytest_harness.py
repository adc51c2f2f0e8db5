"""What pytest and its plugins keep of a test's calls, held to one call's worth while the
plugin repeats a body.

pytest keeps, for the report, everything a test does through its own channels: every log
record (the report's log handler, and ``caplog``'s), every warning (the recorder around
each test, or ``recwarn``'s), captured output, recorded properties, and the undo list of
each ``monkeypatch`` call (and pytest-mock's ``mocker``, of each patch). Called a thousand times, a
body that logs one line keeps a thousand records there, and none of them is the code under test's
doing.

Each of those stores is *rolled back* before every call to what it held before the first
one: a call starts from the state a single run starts from (``caplog.records`` holds the
call's own records, ``recwarn`` its own warnings), and the report shows what the last call
produced. Only the stores pytest owns are touched, found through pytest's own objects (the
logging plugin's handlers, the active warnings recorder, the capture manager, the item's
properties, the test's ``monkeypatch`` and ``mocker``); a handler, filter, buffer or list that the
code under test adds or keeps is not one of them, so it still counts.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable
from io import StringIO
from typing import Any, Protocol

import pytest


class Store(Protocol):
    def restore(self) -> None:
        """Back to what it held when it was found."""


class _ListStore:
    """A list pytest appends to (records, warnings, properties): its items when found."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.kept = list(items)

    def restore(self) -> None:
        self.items[:] = self.kept


class _LogHandlerStore:
    """A ``LogCaptureHandler``: its records (the list ``caplog`` reads) and its text."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.records = handler.records  # pytest's stash shares this list: restored in place
        self.kept = list(self.records)
        self.stream = handler.stream
        self.text = handler.stream.getvalue()

    def restore(self) -> None:
        self.handler.records = self.records
        self.records[:] = self.kept
        if self.handler.stream is self.stream:
            self.stream.seek(len(self.text))
            self.stream.truncate()
        else:  # the body cleared caplog, which gave the handler a new stream
            self.stream = StringIO()
            self.stream.write(self.text)
            self.handler.stream = self.stream


class _CaptureFileStore:
    """A capture's file (``CaptureIO`` for sys capture and ``capsys``, a temporary file for fd
    capture): cut back to its length when found. A body that read it (``readouterr``) already
    emptied it."""

    def __init__(self, file: Any) -> None:
        self.file = file
        self.length = file.tell()

    def restore(self) -> None:
        if self.file.closed:
            return
        self.file.seek(0, 2)
        if self.file.tell() > self.length:
            self.file.seek(self.length)
            self.file.truncate()


class _MonkeyPatchStore:
    """A ``monkeypatch`` fixture: the patches a call made are undone, as teardown would,
    before the next call, so its undo list does not grow by one entry per call."""

    def __init__(self, patcher: pytest.MonkeyPatch) -> None:
        self.patcher = patcher
        self.setattr_len = len(patcher._setattr)
        self.setitem_len = len(patcher._setitem)
        self.syspath_saved = patcher._savesyspath is not None
        self.cwd_saved = patcher._cwd is not None

    def restore(self) -> None:
        patcher = self.patcher
        tail = pytest.MonkeyPatch()
        tail._setattr = patcher._setattr[self.setattr_len :]
        tail._setitem = patcher._setitem[self.setitem_len :]
        del patcher._setattr[self.setattr_len :], patcher._setitem[self.setitem_len :]
        if not self.syspath_saved:
            tail._savesyspath, patcher._savesyspath = patcher._savesyspath, None
        if not self.cwd_saved:
            tail._cwd, patcher._cwd = patcher._cwd, None
        tail.undo()


class _MockerStore:
    """pytest-mock's ``mocker`` used in the body: the patches and spies a call started are
    stopped before the next call, as teardown would (``mocker.stopall``)."""

    def __init__(self, cache: list[Any]) -> None:
        self.cache = cache
        self.length = len(cache)

    def restore(self) -> None:
        for entry in reversed(self.cache[self.length :]):
            if entry.patch is not None:
                entry.patch.stop()
        del self.cache[self.length :]


def find_stores(item: pytest.Item) -> list[Store]:
    """pytest's stores for ``item``, each remembering what it holds now."""
    stores: list[Store] = [_LogHandlerStore(h) for h in _log_capture_handlers()]
    recorder = _active_warnings_log()
    if recorder is not None:
        stores.append(_ListStore(recorder))
    stores.extend(_CaptureFileStore(f) for f in _capture_files(item.config))
    stores.append(_ListStore(item.user_properties))
    xml = _junit_xml(item.config)
    if xml is not None:
        stores.append(_ListStore(xml.global_properties))
    funcargs = getattr(item, "funcargs", {})
    stores.extend(_MonkeyPatchStore(v) for v in funcargs.values() if _is_monkeypatch(v))
    stores.extend(
        _MockerStore(cache) for cache in map(_mocker_cache, funcargs.values()) if cache is not None
    )
    return stores


def rolled_back(call: Callable[[], Any], stores: Iterable[Store]) -> Callable[[], Any]:
    """``call``, with every store rolled back before each call."""
    stores = tuple(stores)

    def each_call() -> Any:
        for store in stores:
            store.restore()
        return call()

    return each_call


def _log_capture_handlers() -> list[Any]:
    """The ``LogCaptureHandler`` instances pytest attached (the report's and ``caplog``'s): on
    the root logger and on non-propagating loggers, where pytest's ``catching_logs`` puts them."""
    from _pytest.logging import LogCaptureHandler

    loggers = [logging.getLogger()]
    loggers += [
        lg
        for lg in logging.Logger.manager.loggerDict.values()
        if isinstance(lg, logging.Logger) and not lg.propagate
    ]
    found: dict[int, Any] = {}
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, LogCaptureHandler):
                found[id(handler)] = handler
    return list(found.values())


def _active_warnings_log() -> list[Any] | None:
    """The list the innermost ``warnings.catch_warnings(record=True)`` appends to: when a
    test body starts, pytest's recorder around the test or ``recwarn``'s (a recorder the
    body itself opens is closed again by the end of the call)."""
    sink = getattr(warnings, "_showwarnmsg_impl", None)
    owner = getattr(sink, "__self__", None)
    return owner if isinstance(owner, list) else None


def _capture_files(config: pytest.Config) -> list[Any]:
    manager = config.pluginmanager.get_plugin("capturemanager")
    if manager is None:
        return []
    captures = [getattr(manager, "_global_capturing", None)]
    fixture = getattr(manager, "_capture_fixture", None)
    if fixture is not None:
        captures.append(getattr(fixture, "_capture", None))
    files = []
    for capture in captures:
        for stream in (getattr(capture, "out", None), getattr(capture, "err", None)):
            file = getattr(stream, "tmpfile", None)
            if file is not None and _seekable(file):
                files.append(file)
    return files


def _seekable(file: Any) -> bool:
    try:
        return bool(file.seekable()) and not file.closed
    except (OSError, ValueError, AttributeError):
        return False


def _junit_xml(config: pytest.Config) -> Any:
    from _pytest.junitxml import xml_key

    return config.stash.get(xml_key, None)


def _mocker_cache(value: Any) -> list[Any] | None:
    """The list of patches and mocks of a pytest-mock ``MockerFixture`` (3.x)."""
    if type(value).__module__ != "pytest_mock.plugin":
        return None
    cache = getattr(getattr(value, "_mock_cache", None), "cache", None)
    return cache if isinstance(cache, list) else None


def _is_monkeypatch(value: Any) -> bool:
    return isinstance(value, pytest.MonkeyPatch) and all(
        hasattr(value, name) for name in ("_setattr", "_setitem", "_savesyspath", "_cwd")
    )
