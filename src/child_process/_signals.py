"""Signal names and numbers, from the interpreter's built-in ``_signal`` module.

Not ``signal``: that module is a file to open (no import can happen at the descriptor limit,
where a spawn must still fail cleanly) and it pulls in ``enum`` (a forked child should start
fast). The tables are built once, at import.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_signal: Any = __import__("_signal")     # built in; typeshed has no stub for it

#: names that are second names of a number (the first is the one reported)
_ALIASES = frozenset(("SIGCLD", "SIGIOT", "SIGPOLL"))

NSIG: int = getattr(_signal, "NSIG", 65)
NUMBERS: dict[str, int] = {
    name: value for name, value in vars(_signal).items()
    if name.startswith("SIG") and not name.startswith("SIG_") and isinstance(value, int)
}
_NAMES: dict[int, str] = {number: name for name, number in sorted(NUMBERS.items())
                          if name not in _ALIASES}


def name_of(number: int) -> str:
    """'SIGTERM' for 15; 'SIG<n>' for a number without a name."""
    return _NAMES.get(number) or f"SIG{number}"
