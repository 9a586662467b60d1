"""Node's EventEmitter for Python.

Listeners are stored per event as an immutable tuple of ``(fn, nargs, once)``
entries.  Adding or removing a listener builds a new tuple (rare, and lists are
short), so ``emit`` can walk the tuple it read without copying it and still see
a snapshot.  ``nargs`` is worked out once, when the listener is registered, so
``emit`` never introspects: it just calls ``fn(*args[:nargs])``.
"""

from __future__ import annotations

import functools
import sys
import types
from types import MappingProxyType
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a forked child ~8 ms
    from typing import Any, Callable, TypeVar, overload
    from collections.abc import Hashable

    from typing_extensions import Self

    #: a listener: called with as many leading arguments of the event as it accepts
    Listener = Callable[..., object]
    _F = TypeVar("_F", bound=Callable[..., object])
    #: (fn, nargs, once flag or None)
    _Entry = tuple[Listener, int, "list[bool] | None"]

from ._errors import invalid_arg_type

__all__ = ["EventEmitter", "UnhandledErrorEvent"]

# "Pass every argument".  ``args[:_ALL]`` returns ``args`` itself (no copy).
_ALL = sys.maxsize
_CO_VARARGS = 0x04   # inspect.CO_VARARGS, without importing inspect at start-up
_FunctionType = types.FunctionType
_MethodType = types.MethodType

# Shared, read-only stand-in for an emitter that has never had a listener, so
# reads (emit, listeners, ...) need no "is it created yet?" branch.
_NO_EVENTS: Any = MappingProxyType({})
_MISSING: Any = object()


class UnhandledErrorEvent(Exception):
    """Raised by ``emit('error', value)`` when nobody listens and ``value`` is not an exception."""

    code = "ERR_UNHANDLED_ERROR"

    def __init__(self, context: object = _MISSING):
        if context is _MISSING:
            super().__init__("Unhandled error.")
            self.context = None
        else:
            super().__init__(f"Unhandled error. ({context!r})")
            self.context = context


def _positional_capacity(fn: Listener) -> int:
    """How many leading positional arguments ``fn`` accepts (``_ALL`` if unbounded or unknown)."""
    if type(fn) is _FunctionType:
        code = fn.__code__
        return _ALL if code.co_flags & _CO_VARARGS else code.co_argcount
    if type(fn) is _MethodType:
        func = fn.__func__
        if type(func) is _FunctionType:
            code = func.__code__
            return _ALL if code.co_flags & _CO_VARARGS else max(code.co_argcount - 1, 0)
        # e.g. a bound Cython function: let inspect drop the bound argument.
    elif not isinstance(fn, (type, functools.partial)):
        call = type(fn).__call__ if callable(fn) else None
        if type(call) is _FunctionType:  # instance of a Python class with __call__
            code = call.__code__
            return _ALL if code.co_flags & _CO_VARARGS else max(code.co_argcount - 1, 0)
    # partials, builtins, classes, Cython functions, exotic callables.
    try:
        import inspect
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return _ALL
    n = 0
    for p in params:
        kind = p.kind
        if kind is p.VAR_POSITIONAL:
            return _ALL
        if kind is p.POSITIONAL_ONLY or kind is p.POSITIONAL_OR_KEYWORD:
            n += 1
    return n


class EventEmitter:
    """Node's ``EventEmitter``: named events, listeners called in registration order.

    Subclasses call ``EventEmitter.__init__(self)`` and may override
    ``_listener_added`` / ``_listener_removed`` to react to listeners coming and
    going (e.g. to ref/unref an underlying handle).
    """

    # Class-level default: the per-instance dict is created on the first add.
    _events: dict[Hashable, tuple[_Entry, ...]] = _NO_EVENTS

    def __init__(self) -> None:
        # Nothing to do: ``_events`` is created lazily by the first listener.
        pass

    # -- hooks for subclasses ---------------------------------------------------

    def _listener_added(self, event: Hashable) -> None:
        """Called after each listener is added for ``event``."""

    def _listener_removed(self, event: Hashable) -> None:
        """Called after each listener is removed for ``event`` (``off``, a once-listener firing,
        ``remove_all_listeners``)."""

    # -- registration -----------------------------------------------------------

    def _add(self, event: Hashable, listener: Listener, once: bool, prepend: bool) -> None:
        if not callable(listener):
            raise invalid_arg_type("listener", "a callable", listener)
        events = self._events
        if events is _NO_EVENTS:
            events = self._events = {}
        elif "newListener" in events:
            self.emit("newListener", event, listener)
        # ``once`` is a one-slot list so a fired once-listener is not called again
        # from an older snapshot (e.g. when a listener re-emits the same event).
        entry: _Entry = (listener, _positional_capacity(listener), [False] if once else None)
        current = events.get(event)
        if current is None:
            events[event] = (entry,)
        elif prepend:
            events[event] = (entry,) + current
        else:
            events[event] = current + (entry,)
        self._listener_added(event)

    if TYPE_CHECKING:
        @overload
        def on(self, event: Hashable) -> Callable[[_F], _F]: ...
        @overload
        def on(self, event: Hashable, listener: Listener) -> Self: ...

    def on(self, event: Hashable, listener: Any = _MISSING) -> Any:
        """Add ``listener`` for ``event``; return ``self``. Without ``listener``: a decorator."""
        if listener is _MISSING:
            return self._decorator(event, False, False)
        self._add(event, listener, False, False)
        return self

    add_listener = on

    if TYPE_CHECKING:
        @overload
        def once(self, event: Hashable) -> Callable[[_F], _F]: ...
        @overload
        def once(self, event: Hashable, listener: Listener) -> Self: ...

    def once(self, event: Hashable, listener: Any = _MISSING) -> Any:
        """Like ``on``, but the listener is removed just before its first call."""
        if listener is _MISSING:
            return self._decorator(event, True, False)
        self._add(event, listener, True, False)
        return self

    if TYPE_CHECKING:
        @overload
        def prepend_listener(self, event: Hashable) -> Callable[[_F], _F]: ...
        @overload
        def prepend_listener(self, event: Hashable, listener: Listener) -> Self: ...

    def prepend_listener(self, event: Hashable, listener: Any = _MISSING) -> Any:
        """Like ``on``, but the listener goes before the existing ones."""
        if listener is _MISSING:
            return self._decorator(event, False, True)
        self._add(event, listener, False, True)
        return self

    if TYPE_CHECKING:
        @overload
        def prepend_once_listener(self, event: Hashable) -> Callable[[_F], _F]: ...
        @overload
        def prepend_once_listener(self, event: Hashable, listener: Listener) -> Self: ...

    def prepend_once_listener(self, event: Hashable, listener: Any = _MISSING) -> Any:
        """Like ``once``, but the listener goes before the existing ones."""
        if listener is _MISSING:
            return self._decorator(event, True, True)
        self._add(event, listener, True, True)
        return self

    def _decorator(self, event: Hashable, once: bool, prepend: bool) -> Callable[[_F], _F]:
        def register(fn: _F) -> _F:
            self._add(event, fn, once, prepend)
            return fn
        return register

    # -- removal ----------------------------------------------------------------

    def _remove_entry(self, event: Hashable, entry: _Entry) -> None:
        """Drop one registration (by identity), then run the hook and 'removeListener'."""
        events = self._events
        current = events.get(event)
        if current is None:
            return
        i = len(current) - 1
        while i >= 0 and current[i] is not entry:
            i -= 1
        if i < 0:
            return
        if len(current) == 1:
            del events[event]
        else:
            events[event] = current[:i] + current[i + 1:]
        self._listener_removed(event)
        if "removeListener" in events:
            self.emit("removeListener", event, entry[0])

    def off(self, event: Hashable, listener: Listener) -> Self:
        """Remove the latest registration of ``listener`` for ``event``; return ``self``."""
        current = self._events.get(event)
        if current is not None:
            for i in range(len(current) - 1, -1, -1):
                fn = current[i][0]
                # ``==`` because bound methods are new objects on every attribute access.
                if fn is listener or fn == listener:
                    self._remove_entry(event, current[i])
                    break
        return self

    remove_listener = off

    def remove_all_listeners(self, event: Hashable = None) -> Self:
        """Remove every listener for ``event``, or for all events when ``event`` is None."""
        events = self._events
        if event is not None:
            self._remove_all(event)
        elif events:
            # 'removeListener' listeners go last so they hear about the others.
            for name in [k for k in events if k != "removeListener"]:
                self._remove_all(name)
            self._remove_all("removeListener")
        return self

    def _remove_all(self, event: Hashable) -> None:
        events = self._events
        current = events.get(event)
        if current is None:
            return
        if "removeListener" in events:
            for entry in reversed(current):  # newest first, like Node
                self._remove_entry(event, entry)
        else:
            del events[event]
            hook = self._listener_removed
            for _ in current:
                hook(event)

    # -- emitting ---------------------------------------------------------------

    def emit(self, event: Hashable, *args: Any) -> bool:
        """Call ``event``'s listeners with ``args`` (each gets as many as it accepts).

        Returns True if there were listeners.  ``emit('error', x)`` with no
        listener raises ``x`` (or ``UnhandledErrorEvent`` if ``x`` is not an exception).
        """
        entries = self._events.get(event)
        if entries is None:
            if event == "error":
                _raise_unhandled(args)
            return False
        for entry in entries:
            fn, nargs, once = entry
            if once is not None:
                if once[0]:
                    continue
                once[0] = True
                self._remove_entry(event, entry)
            fn(*args[:nargs])
        return True

    # -- introspection ----------------------------------------------------------

    def listeners(self, event: Hashable) -> list[Listener]:
        """A copy of ``event``'s listeners (once-listeners appear as the original function)."""
        return [entry[0] for entry in self._events.get(event, ())]

    def raw_listeners(self, event: Hashable) -> list[Listener]:
        """Same as ``listeners``: once-listeners are not wrapped here."""
        return self.listeners(event)

    def listener_count(self, event: Hashable, listener: Listener | None = None) -> int:
        """How many listeners ``event`` has (only those equal to ``listener`` if given)."""
        entries = self._events.get(event, ())
        if listener is None:
            return len(entries)
        return sum(1 for e in entries if e[0] is listener or e[0] == listener)

    def event_names(self) -> list[Hashable]:
        """Events that currently have listeners, in the order they first got one."""
        return list(self._events)

    # Kept for code ported from Node; there are no max-listener warnings here.
    _max_listeners = 10

    def set_max_listeners(self, n: int) -> Self:
        self._max_listeners = n
        return self

    def get_max_listeners(self) -> int:
        return self._max_listeners


def _raise_unhandled(args: tuple[Any, ...]) -> None:
    if not args:
        raise UnhandledErrorEvent()
    err = args[0]
    if isinstance(err, BaseException):
        raise err
    raise UnhandledErrorEvent(err)
