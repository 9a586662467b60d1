"""AbortController / AbortSignal, as in the DOM and Node, so callers can cancel spawn/exec.

Only the 'abort' event matters.  Listener semantics follow the DOM's
EventTarget: adding the same callable twice is a no-op, a listener removed
while an abort is being dispatched is not called, one added then is not called
either, and a listener added after the abort is never called.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a forked child ~8 ms
    from typing import Any, Callable
    from collections.abc import Iterable

from ._errors import AbortError

__all__ = ["AbortController", "AbortSignal"]


class AbortSignal:
    """Tells its holder whether (and why) an operation was cancelled."""

    def __init__(self) -> None:
        self.aborted = False
        self.reason: Any = None
        # [callback, once, removed] records; 'removed' lets a dispatch in
        # progress skip listeners taken off by an earlier listener.
        self._listeners: list[list[Any]] = []
        self._onabort: Any = None
        self._onabort_record: Any = None

    def __repr__(self) -> str:
        return f"AbortSignal(aborted={self.aborted})"

    # -- listeners --------------------------------------------------------------

    def add_event_listener(self, type: str, listener: Callable[[], object],
                           once: bool = False) -> None:
        """Call ``listener()`` when the signal aborts (never, if it already has)."""
        if type != "abort" or listener is None or self.aborted:
            return
        for record in self._listeners:
            if record[0] == listener:
                return
        self._listeners.append([listener, once, False])

    def remove_event_listener(self, type: str, listener: Callable[[], object]) -> None:
        """Undo ``add_event_listener`` (a no-op if ``listener`` is not registered)."""
        if type != "abort":
            return
        for i, record in enumerate(self._listeners):
            if record[0] == listener:
                record[2] = True
                del self._listeners[i]
                return

    @property
    def onabort(self) -> Any:
        """Event-handler attribute: called on abort, in the order it was first set."""
        return self._onabort

    @onabort.setter
    def onabort(self, handler: Any) -> None:
        self._onabort = handler
        if handler is None:
            record = self._onabort_record
            if record is not None:
                record[2] = True
                self._listeners.remove(record)
                self._onabort_record = None
        elif self._onabort_record is None and not self.aborted:
            record = self._onabort_record = [self._call_onabort, False, False]
            self._listeners.append(record)

    def _call_onabort(self) -> None:
        handler = self._onabort
        if handler is not None:
            handler()

    # -- state ------------------------------------------------------------------

    def throw_if_aborted(self) -> None:
        """Raise the abort reason if aborted (wrapped in ``AbortError`` unless an exception)."""
        if self.aborted:
            reason = self.reason
            if isinstance(reason, BaseException):
                raise reason
            raise AbortError(cause=reason)

    def _abort(self, reason: Any) -> None:
        if self.aborted:
            return
        self.aborted = True
        self.reason = AbortError() if reason is None else reason
        # Every listener runs even if one raises (they often release resources);
        # the first error is re-raised afterwards rather than silently lost.
        first_error = None
        for record in list(self._listeners):
            if record[2]:  # removed by an earlier listener
                continue
            record[2] = True
            try:
                record[0]()
            except Exception as exc:  # noqa: BLE001 - re-raised below
                if first_error is None:
                    first_error = exc
        # The event never fires again: drop the references.
        self._listeners = []
        self._onabort_record = None
        if first_error is not None:
            raise first_error

    # -- constructors -----------------------------------------------------------

    @staticmethod
    def abort(reason: Any = None) -> AbortSignal:
        """A signal that is already aborted with ``reason`` (default: ``AbortError()``)."""
        signal = AbortSignal()
        signal._abort(reason)
        return signal

    @staticmethod
    def any(signals: Iterable[Any]) -> AbortSignal:
        """A signal that aborts, with the same reason, as soon as any of ``signals`` does."""
        signals = list(signals)
        for source in signals:
            if source.aborted:
                return AbortSignal.abort(source.reason)
        result = AbortSignal()
        hooks: list[tuple[AbortSignal, Callable[[], None]]] = []

        def follow(source: Any) -> Callable[[], None]:
            def on_abort() -> None:
                for s, h in hooks:  # stop holding on to every other source
                    s.remove_event_listener("abort", h)
                result._abort(source.reason)
            return on_abort

        for source in signals:
            hook = follow(source)
            hooks.append((source, hook))
            source.add_event_listener("abort", hook, once=True)
        return result


class AbortController:
    """Owns an ``AbortSignal`` and is the only thing that can abort it."""

    def __init__(self) -> None:
        self._signal = AbortSignal()

    @property
    def signal(self) -> AbortSignal:
        return self._signal

    def abort(self, reason: Any = None) -> None:
        """Abort the signal (default reason: ``AbortError()``); later calls do nothing."""
        self._signal._abort(reason)

    def __repr__(self) -> str:
        return f"AbortController(signal={self._signal!r})"
