"""EventEmitter and AbortController/AbortSignal behaviour (Node semantics, Python spelling)."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from child_process._abort import AbortController, AbortSignal
from child_process._errors import AbortError
from child_process._events import EventEmitter, UnhandledErrorEvent


# --------------------------------------------------------------------------
# arity adaptation
# --------------------------------------------------------------------------

def test_lambda_arity_zero_one_two():
    e = EventEmitter()
    got = []
    e.on("x", lambda: got.append(()))
    e.on("x", lambda a: got.append((a,)))
    e.on("x", lambda a, b: got.append((a, b)))
    assert e.emit("x", 1, 2, 3) is True
    assert got == [(), (1,), (1, 2)]


def test_listener_gets_fewer_args_if_fewer_are_emitted():
    e = EventEmitter()
    got = []
    e.on("x", lambda a=None, b="dflt": got.append((a, b)))
    e.emit("x", 1)
    e.emit("x")
    assert got == [(1, "dflt"), (None, "dflt")]


def test_varargs_gets_everything():
    e = EventEmitter()
    got = []
    e.on("x", lambda *a: got.append(a))
    e.on("x", lambda first, *rest: got.append((first, rest)))
    e.emit("x", 1, 2, 3)
    assert got == [(1, 2, 3), (1, (2, 3))]


def test_defaults_count_as_accepted_positionals():
    e = EventEmitter()
    got = []

    def f(a, b=10, *, kw=5):
        got.append((a, b, kw))

    e.on("x", f)
    e.emit("x", 1, 2, 3)
    assert got == [(1, 2, 5)]


def test_bound_methods_and_classmethods():
    got = []

    class C:
        def zero(self):
            got.append("zero")

        def one(self, a):
            got.append(("one", a))

        def star(self, *a):
            got.append(("star", a))

        @classmethod
        def cm(cls, a, b):
            got.append(("cm", cls.__name__, a, b))

        @staticmethod
        def sm(a):
            got.append(("sm", a))

    c = C()
    e = EventEmitter()
    e.on("x", c.zero).on("x", c.one).on("x", c.star).on("x", C.cm).on("x", C.sm)
    e.emit("x", 1, 2, 3)
    assert got == ["zero", ("one", 1), ("star", (1, 2, 3)), ("cm", "C", 1, 2), ("sm", 1)]


def test_partials():
    got = []

    def f(a, b, c):
        got.append((a, b, c))

    e = EventEmitter()
    e.on("x", functools.partial(f, "p"))
    e.on("x", functools.partial(f, "p", "q"))
    e.on("x", functools.partial(functools.partial(f, "p"), "q"))
    e.emit("x", 1, 2, 3)
    assert got == [("p", 1, 2), ("p", "q", 1), ("p", "q", 1)]


def test_partial_with_keyword_limits_positionals():
    got = []

    def f(a, b="B", c="C"):
        got.append((a, b, c))

    e = EventEmitter()
    e.on("x", functools.partial(f, b="kw"))
    e.on("x", functools.partial(f, "p", "q"))
    e.emit("x", 1, 2, 3)
    assert got == [(1, "kw", "C"), ("p", "q", 1)]


def test_partial_of_varargs_gets_everything():
    got = []
    e = EventEmitter()
    e.on("x", functools.partial(lambda tag, *a: got.append((tag, a)), "t"))
    e.emit("x", 1, 2)
    assert got == [("t", (1, 2))]


def test_builtin_bound_method_list_append():
    got = []
    e = EventEmitter()
    e.on("data", got.append)
    e.emit("data", "chunk", "extra", "more")
    assert got == ["chunk"]


def test_builtin_without_signature_gets_all_args(capsys):
    e = EventEmitter()
    e.on("x", print)  # print has no readable signature in some versions; *args in others
    e.emit("x", "a", "b")
    assert capsys.readouterr().out == "a b\n"


def test_callable_instances():
    got = []

    class One:
        def __call__(self, a):
            got.append(("one", a))

    class Star:
        def __call__(self, *a):
            got.append(("star", a))

    class Zero:
        def __call__(self):
            got.append("zero")

    e = EventEmitter()
    e.on("x", One()).on("x", Star()).on("x", Zero())
    e.emit("x", 1, 2)
    assert got == [("one", 1), ("star", (1, 2)), "zero"]


def test_class_as_listener():
    got = []

    class Rec:
        def __init__(self, a):
            got.append(a)

    e = EventEmitter()
    e.on("x", Rec)
    e.emit("x", 7, 8)
    assert got == [7]


def test_arity_computed_once_at_registration(monkeypatch):
    import inspect

    calls = []

    class Weird:
        def __call__(self, a):
            calls.append(a)

    e = EventEmitter()
    e.on("x", functools.partial(Weird(), ))  # goes through inspect.signature
    monkeypatch.setattr(inspect, "signature", lambda *a, **k: pytest.fail("introspected in emit"))
    for i in range(3):
        e.emit("x", i, "ignored")
    assert calls == [0, 1, 2]


# --------------------------------------------------------------------------
# registration API
# --------------------------------------------------------------------------

def test_chaining_returns_emitter():
    e = EventEmitter()
    f = lambda: None  # noqa: E731
    assert e.on("a", f) is e
    assert e.add_listener("a", f) is e
    assert e.once("a", f) is e
    assert e.prepend_listener("a", f) is e
    assert e.prepend_once_listener("a", f) is e
    assert e.off("a", f) is e
    assert e.remove_listener("a", f) is e
    assert e.remove_all_listeners("a") is e
    assert e.remove_all_listeners() is e


def test_decorator_forms():
    e = EventEmitter()
    got = []

    @e.on("x")
    def on_x(a):
        got.append(("on", a))

    @e.once("x")
    def once_x(a):
        got.append(("once", a))

    @e.prepend_listener("x")
    def first(a):
        got.append(("first", a))

    @e.prepend_once_listener("x")
    def very_first():
        got.append("very_first")

    # the decorator returns the function unchanged
    assert on_x.__name__ == "on_x" and callable(once_x) and first.__name__ == "first"
    e.emit("x", 1)
    e.emit("x", 2)
    assert got == ["very_first", ("first", 1), ("on", 1), ("once", 1), ("first", 2), ("on", 2)]


def test_add_listener_is_on_and_remove_listener_is_off():
    e = EventEmitter()
    got = []
    f = got.append
    e.add_listener("x", f)
    e.emit("x", 1)
    e.remove_listener("x", f)
    e.emit("x", 2)
    assert got == [1]


def test_non_callable_listener_rejected():
    e = EventEmitter()
    with pytest.raises(TypeError) as info:
        e.on("x", 42)
    assert getattr(info.value, "code", None) == "ERR_INVALID_ARG_TYPE"
    with pytest.raises(TypeError):
        e.once("x", None)
    assert e.listener_count("x") == 0


def test_prepend_ordering():
    e = EventEmitter()
    got = []
    e.on("x", lambda: got.append("b"))
    e.prepend_listener("x", lambda: got.append("a"))
    e.on("x", lambda: got.append("c"))
    e.prepend_once_listener("x", lambda: got.append("0"))
    e.emit("x")
    e.emit("x")
    assert got == ["0", "a", "b", "c", "a", "b", "c"]


# --------------------------------------------------------------------------
# once / off
# --------------------------------------------------------------------------

def test_once_fires_once():
    e = EventEmitter()
    got = []
    e.once("x", got.append)
    assert e.emit("x", 1) is True
    assert e.emit("x", 2) is False
    assert got == [1]
    assert e.listener_count("x") == 0
    assert e.event_names() == []


def test_once_removed_before_call():
    e = EventEmitter()
    seen = []

    def f():
        seen.append(e.listener_count("x"))

    e.once("x", f)
    e.emit("x")
    assert seen == [0]


def test_once_not_called_twice_by_reentrant_emit():
    e = EventEmitter()
    got = []

    def reemit(n):
        got.append(("re", n))
        if n == 1:
            e.emit("x", 2)

    e.on("x", reemit)
    e.once("x", lambda n: got.append(("once", n)))
    e.emit("x", 1)
    # inner emit fired the once listener; the outer snapshot must not fire it again
    assert got == [("re", 1), ("re", 2), ("once", 2)]


def test_off_removes_most_recent_registration():
    e = EventEmitter()
    got = []

    def f(tag):
        got.append(tag)

    g = lambda tag: got.append("g" + tag)  # noqa: E731
    e.on("x", f)
    e.on("x", g)
    e.once("x", f)
    e.off("x", f)  # removes the once registration (the last one), not the first
    assert e.listeners("x") == [f, g]
    e.emit("x", "1")
    e.emit("x", "2")
    assert got == ["1", "g1", "2", "g2"]


def test_off_matches_once_by_original_function():
    e = EventEmitter()
    got = []
    f = got.append
    e.on("x", lambda a: got.append(("plain", a)))
    e.once("x", f)
    e.off("x", f)
    e.emit("x", 1)
    assert got == [("plain", 1)]


def test_off_with_bound_method_equality():
    class C:
        def __init__(self):
            self.n = 0

        def hit(self):
            self.n += 1

    c = C()
    e = EventEmitter()
    e.on("x", c.hit)
    e.off("x", c.hit)  # a different bound-method object, but equal
    e.emit("x")
    assert c.n == 0


def test_off_unknown_is_noop():
    e = EventEmitter()
    f = lambda: None  # noqa: E731
    e.off("nothing", f)
    e.on("x", f)
    e.off("x", lambda: None)
    assert e.listeners("x") == [f]


def test_remove_all_listeners_one_event_and_all():
    e = EventEmitter()
    f = lambda: None  # noqa: E731
    e.on("a", f).on("a", f).on("b", f).once("c", f)
    e.remove_all_listeners("a")
    assert e.event_names() == ["b", "c"]
    e.remove_all_listeners()
    assert e.event_names() == []
    assert e.emit("b") is False


# --------------------------------------------------------------------------
# snapshot semantics
# --------------------------------------------------------------------------

def test_listener_added_during_emit_not_called_this_time():
    e = EventEmitter()
    got = []

    def adder():
        got.append("adder")
        e.on("x", lambda: got.append("late"))

    e.on("x", adder)
    e.emit("x")
    assert got == ["adder"]
    e.emit("x")
    assert got == ["adder", "adder", "late"]


def test_listener_removed_during_emit_still_called_this_time():
    e = EventEmitter()
    got = []

    def second():
        got.append("second")

    def remover():
        got.append("remover")
        e.off("x", second)

    e.on("x", remover).on("x", second)
    e.emit("x")
    assert got == ["remover", "second"]
    e.emit("x")
    assert got == ["remover", "second", "remover"]


def test_remove_all_during_emit_does_not_stop_current_emit():
    e = EventEmitter()
    got = []
    e.on("x", lambda: (got.append(1), e.remove_all_listeners()))
    e.on("x", lambda: got.append(2))
    e.emit("x")
    assert got == [1, 2]
    assert e.emit("x") is False


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------

def test_unhandled_error_exception_is_raised_as_is():
    e = EventEmitter()
    err = ValueError("boom")
    with pytest.raises(ValueError) as info:
        e.emit("error", err)
    assert info.value is err


def test_unhandled_error_non_exception():
    e = EventEmitter()
    with pytest.raises(UnhandledErrorEvent) as info:
        e.emit("error", "just a string")
    assert info.value.code == "ERR_UNHANDLED_ERROR"
    assert info.value.context == "just a string"
    assert "Unhandled error." in str(info.value)
    assert "just a string" in str(info.value)


def test_unhandled_error_without_value():
    e = EventEmitter()
    with pytest.raises(UnhandledErrorEvent) as info:
        e.emit("error")
    assert str(info.value) == "Unhandled error."


def test_handled_error_does_not_raise():
    e = EventEmitter()
    got = []
    e.on("error", got.append)
    err = RuntimeError("x")
    assert e.emit("error", err) is True
    assert got == [err]


def test_error_after_once_error_listener_fired_raises():
    e = EventEmitter()
    e.once("error", lambda err: None)
    e.emit("error", "first")
    with pytest.raises(UnhandledErrorEvent):
        e.emit("error", "second")


def test_listener_exception_propagates_and_stops_emit():
    e = EventEmitter()
    got = []

    def bad():
        raise KeyError("listener")

    e.on("x", bad).on("x", lambda: got.append("after"))
    with pytest.raises(KeyError):
        e.emit("x")
    assert got == []


def test_emit_without_listeners_returns_false():
    e = EventEmitter()
    assert e.emit("nothing", 1, 2) is False


# --------------------------------------------------------------------------
# introspection
# --------------------------------------------------------------------------

def test_listeners_is_a_copy_with_originals():
    e = EventEmitter()
    f = lambda: None  # noqa: E731
    g = lambda: None  # noqa: E731
    e.on("x", f).once("x", g)
    ls = e.listeners("x")
    assert ls == [f, g]
    ls.clear()
    assert e.listeners("x") == [f, g]
    assert e.raw_listeners("x") == [f, g]
    assert e.listeners("none") == []


def test_listener_count_and_event_names():
    e = EventEmitter()
    f = lambda: None  # noqa: E731
    assert e.listener_count("x") == 0
    assert e.event_names() == []
    e.on("x", f).on("y", f).once("x", f)
    e.on(("tuple", "event"), f)
    assert e.listener_count("x") == 2
    assert e.listener_count("x", f) == 2
    assert e.listener_count("x", lambda: None) == 0
    assert e.event_names() == ["x", "y", ("tuple", "event")]
    e.off("y", f)
    assert e.event_names() == ["x", ("tuple", "event")]


def test_max_listeners_accessors_exist():
    e = EventEmitter()
    assert e.set_max_listeners(50) is e
    assert e.get_max_listeners() == 50


# --------------------------------------------------------------------------
# newListener / removeListener
# --------------------------------------------------------------------------

def test_new_listener_emitted_before_adding():
    e = EventEmitter()
    log = []
    f = lambda: None  # noqa: E731

    def on_new(event, listener):
        log.append((event, listener, e.listener_count(event)))

    e.on("newListener", on_new)
    e.on("x", f)
    e.once("x", f)
    assert log == [("x", f, 0), ("x", f, 1)]


def test_new_listener_can_prepend_ahead():
    # Node idiom: a newListener handler adding a listener for the same event
    # ends up in front of the one being added.
    e = EventEmitter()
    got = []
    first = lambda: got.append("B")  # noqa: E731

    def on_new(event, listener):
        if event == "x":
            e.off("newListener", on_new)
            e.on("x", first)

    e.on("newListener", on_new)
    e.on("x", lambda: got.append("A"))
    e.emit("x")
    assert got == ["B", "A"]


def test_remove_listener_emitted_after_removal():
    e = EventEmitter()
    log = []
    f = lambda: None  # noqa: E731
    g = lambda: None  # noqa: E731

    def on_removed(event, listener):
        log.append((event, listener, e.listener_count(event)))

    e.on("x", f).once("x", g).on("y", f)
    e.on("removeListener", on_removed)
    e.off("x", f)
    e.emit("x")  # once-removal
    e.remove_all_listeners()
    # removing the last 'removeListener' listener is not reported to itself (as in Node)
    assert log == [("x", f, 1), ("x", g, 0), ("y", f, 0)]
    assert e.event_names() == []


def test_remove_all_reports_lifo_for_one_event():
    e = EventEmitter()
    log = []
    a = lambda: None  # noqa: E731
    b = lambda: None  # noqa: E731
    e.on("x", a).on("x", b)
    e.on("removeListener", lambda ev, fn: log.append(fn))
    e.remove_all_listeners("x")
    assert log == [b, a]


def test_no_new_or_remove_listener_events_without_watchers():
    class Spy(EventEmitter):
        def __init__(self):
            EventEmitter.__init__(self)
            self.emitted = []

        def emit(self, event, *args):
            self.emitted.append(event)
            return EventEmitter.emit(self, event, *args)

    s = Spy()
    f = lambda: None  # noqa: E731
    s.on("x", f).once("y", f)
    s.off("x", f)
    s.remove_all_listeners()
    assert s.emitted == []


# --------------------------------------------------------------------------
# subclass hooks
# --------------------------------------------------------------------------

class Hooked(EventEmitter):
    def __init__(self):
        EventEmitter.__init__(self)
        self.extra = "subclasses can add attributes"
        self.log = []
        self.counts = {}

    def _listener_added(self, event):
        self.log.append(("+", event, self.listener_count(event)))

    def _listener_removed(self, event):
        self.log.append(("-", event, self.listener_count(event)))


def test_hooks_called_for_every_add_and_remove():
    h = Hooked()
    f = lambda *a: None  # noqa: E731
    h.on("data", f)
    h.once("data", f)
    h.prepend_listener("message", f)
    h.prepend_once_listener("message", f)
    h.emit("data")  # once listener removed -> hook
    h.off("data", f)
    h.remove_all_listeners("message")
    assert h.log == [
        ("+", "data", 1),
        ("+", "data", 2),
        ("+", "message", 1),
        ("+", "message", 2),
        ("-", "data", 1),
        ("-", "data", 0),
        ("-", "message", 0),
        ("-", "message", 0),
    ]
    assert h.extra == "subclasses can add attributes"


def test_hooks_called_on_remove_all_with_remove_listener_watchers():
    h = Hooked()
    f = lambda *a: None  # noqa: E731
    h.on("a", f).on("a", f).on("b", f)
    h.on("removeListener", f)
    h.log.clear()
    h.remove_all_listeners()
    assert [x[:2] for x in h.log] == [("-", "a"), ("-", "a"), ("-", "b"), ("-", "removeListener")]


def test_hook_sees_listener_state_for_ref_counting():
    class RefCounting(EventEmitter):
        def __init__(self):
            EventEmitter.__init__(self)
            self.refed = False

        def _listener_added(self, event):
            if event == "message":
                self.refed = True

        def _listener_removed(self, event):
            if event == "message" and self.listener_count("message") == 0:
                self.refed = False

    r = RefCounting()
    f = lambda m: None  # noqa: E731
    r.on("message", f).on("message", f)
    assert r.refed
    r.off("message", f)
    assert r.refed
    r.off("message", f)
    assert not r.refed
    r.once("message", f)
    assert r.refed
    r.emit("message", 1)
    assert not r.refed


def test_subclass_that_skips_init_still_works():
    class Lazy(EventEmitter):
        def __init__(self):
            pass

    a, b = Lazy(), Lazy()
    got = []
    assert a.emit("x") is False
    assert a.listeners("x") == [] and a.event_names() == []
    a.on("x", got.append)
    assert b.listener_count("x") == 0  # no shared state between instances
    a.emit("x", 1)
    assert got == [1]


def test_instances_do_not_share_listeners():
    a, b = EventEmitter(), EventEmitter()
    a.on("x", lambda: None)
    assert b.listener_count("x") == 0
    assert b.emit("x") is False


# --------------------------------------------------------------------------
# property test against a reference model
# --------------------------------------------------------------------------

EVENTS = ["a", "b"]
N_FUNCS = 3

ops = st.lists(
    st.one_of(
        st.tuples(st.just("on"), st.sampled_from(EVENTS), st.integers(0, N_FUNCS - 1)),
        st.tuples(st.just("once"), st.sampled_from(EVENTS), st.integers(0, N_FUNCS - 1)),
        st.tuples(st.just("prepend"), st.sampled_from(EVENTS), st.integers(0, N_FUNCS - 1)),
        st.tuples(st.just("prepend_once"), st.sampled_from(EVENTS), st.integers(0, N_FUNCS - 1)),
        st.tuples(st.just("off"), st.sampled_from(EVENTS), st.integers(0, N_FUNCS - 1)),
        st.tuples(st.just("emit"), st.sampled_from(EVENTS), st.integers(0, 3)),
        st.tuples(st.just("remove_all"), st.sampled_from(EVENTS + [None]), st.just(0)),
    ),
    max_size=40,
)


class Model:
    """Reference: per event, a list of (func_index, once) in call order."""

    def __init__(self):
        self.lists = {}  # insertion-ordered like event_names()

    def add(self, ev, i, once, prepend):
        lst = self.lists.setdefault(ev, [])
        if prepend:
            lst.insert(0, (i, once))
        else:
            lst.append((i, once))

    def off(self, ev, i):
        lst = self.lists.get(ev, [])
        for k in range(len(lst) - 1, -1, -1):
            if lst[k][0] == i:
                del lst[k]
                break
        if not lst:
            self.lists.pop(ev, None)

    def remove_all(self, ev):
        if ev is None:
            self.lists.clear()
        else:
            self.lists.pop(ev, None)

    def emit(self, ev, nargs):
        lst = self.lists.get(ev, [])
        calls = [(i, nargs) for i, _ in lst]
        remaining = [x for x in lst if not x[1]]
        if remaining:
            self.lists[ev] = remaining
        else:
            self.lists.pop(ev, None)
        return calls, bool(lst)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_random_operations_match_model(operations):
    e = EventEmitter()
    model = Model()
    calls = []
    # listener 0 takes no args, 1 takes at most one, 2 takes any number
    funcs = [
        lambda: calls.append((0, 0)),
        lambda a=None: calls.append((1, 0 if a is None else 1)),
        lambda *a: calls.append((2, len(a))),
    ]
    arity = [0, 1, None]

    for op, ev, x in operations:
        if op == "on":
            e.on(ev, funcs[x])
            model.add(ev, x, False, False)
        elif op == "once":
            e.once(ev, funcs[x])
            model.add(ev, x, True, False)
        elif op == "prepend":
            e.prepend_listener(ev, funcs[x])
            model.add(ev, x, False, True)
        elif op == "prepend_once":
            e.prepend_once_listener(ev, funcs[x])
            model.add(ev, x, True, True)
        elif op == "off":
            e.off(ev, funcs[x])
            model.off(ev, x)
        elif op == "remove_all":
            e.remove_all_listeners(ev)
            model.remove_all(ev)
        else:
            calls.clear()
            had = e.emit(ev, *range(x))
            expected_calls, expected_had = model.emit(ev, x)
            expected = [
                (i, n if arity[i] is None else min(arity[i], n)) for i, n in expected_calls
            ]
            assert had == expected_had
            assert calls == expected
        for name in EVENTS:
            assert e.listeners(name) == [funcs[i] for i, _ in model.lists.get(name, [])]
            assert e.listener_count(name) == len(model.lists.get(name, []))
        assert e.event_names() == list(model.lists)


# --------------------------------------------------------------------------
# AbortController / AbortSignal
# --------------------------------------------------------------------------

def test_abort_controller_basics():
    c = AbortController()
    s = c.signal
    assert s is c.signal
    assert s.aborted is False and s.reason is None
    s.throw_if_aborted()  # no-op
    got = []
    s.add_event_listener("abort", lambda: got.append(("l1", s.aborted, s.reason)))
    s.add_event_listener("abort", lambda: got.append("l2"))
    c.abort()
    assert s.aborted is True
    assert isinstance(s.reason, AbortError)
    assert s.reason.code == "ABORT_ERR"
    assert got == [("l1", True, s.reason), "l2"]


def test_abort_with_reason_and_second_abort_ignored():
    c = AbortController()
    got = []
    c.signal.add_event_listener("abort", lambda: got.append(1))
    c.abort("first")
    c.abort("second")
    assert c.signal.reason == "first"
    assert got == [1]


def test_throw_if_aborted():
    c = AbortController()
    c.abort()
    with pytest.raises(AbortError):
        c.signal.throw_if_aborted()

    c = AbortController()
    err = ValueError("why")
    c.abort(err)
    with pytest.raises(ValueError) as info:
        c.signal.throw_if_aborted()
    assert info.value is err

    c = AbortController()
    c.abort("text reason")
    with pytest.raises(AbortError) as info2:
        c.signal.throw_if_aborted()
    assert info2.value.cause == "text reason"


def test_remove_event_listener_and_once_and_dedupe():
    c = AbortController()
    s = c.signal
    got = []
    f = lambda: got.append("f")  # noqa: E731
    g = lambda: got.append("g")  # noqa: E731
    s.add_event_listener("abort", f)
    s.add_event_listener("abort", f)  # duplicate: ignored, like the DOM
    s.add_event_listener("abort", g, once=True)
    s.remove_event_listener("abort", g)
    s.remove_event_listener("abort", lambda: None)  # unknown: no-op
    c.abort()
    assert got == ["f"]


def test_onabort_attribute():
    c = AbortController()
    got = []
    c.signal.add_event_listener("abort", lambda: got.append("listener"))
    c.signal.onabort = lambda: got.append("onabort")
    c.abort()
    assert got == ["listener", "onabort"]


def test_onabort_cleared_is_not_called():
    c = AbortController()
    got = []
    c.signal.onabort = lambda: got.append("x")
    c.signal.onabort = None
    assert c.signal.onabort is None
    c.abort()
    assert got == []


def test_onabort_replaced_keeps_position():
    c = AbortController()
    got = []
    c.signal.onabort = lambda: got.append("old")
    c.signal.add_event_listener("abort", lambda: got.append("listener"))
    c.signal.onabort = lambda: got.append("new")
    c.abort()
    assert got == ["new", "listener"]


def test_listener_removed_during_abort_not_called_and_added_not_called():
    c = AbortController()
    s = c.signal
    got = []

    def second():
        got.append("second")

    def first():
        got.append("first")
        s.remove_event_listener("abort", second)
        s.add_event_listener("abort", lambda: got.append("late"))

    s.add_event_listener("abort", first)
    s.add_event_listener("abort", second)
    c.abort()
    assert got == ["first"]


def test_listener_added_after_abort_never_called():
    c = AbortController()
    c.abort()
    got = []
    c.signal.add_event_listener("abort", lambda: got.append(1))
    c.abort()
    assert got == []


def test_abort_listener_error_does_not_skip_others():
    c = AbortController()
    got = []

    def bad():
        raise RuntimeError("listener failed")

    c.signal.add_event_listener("abort", bad)
    c.signal.add_event_listener("abort", lambda: got.append("ran"))
    with pytest.raises(RuntimeError):
        c.abort()
    assert got == ["ran"]
    assert c.signal.aborted


def test_static_abort():
    s = AbortSignal.abort()
    assert s.aborted and isinstance(s.reason, AbortError)
    s2 = AbortSignal.abort("why")
    assert s2.aborted and s2.reason == "why"


def test_signal_duck_type():
    s = AbortController().signal
    assert hasattr(s, "aborted") and hasattr(s, "add_event_listener")


def test_any_signal():
    a, b = AbortController(), AbortController()
    s = AbortSignal.any([a.signal, b.signal])
    got = []
    s.add_event_listener("abort", lambda: got.append(s.reason))
    assert not s.aborted
    b.abort("b")
    a.abort("a")
    assert s.aborted and s.reason == "b" and got == ["b"]
    assert a.signal._listeners == []  # follower hooks released

    done = AbortController()
    done.abort("already")
    assert AbortSignal.any([AbortController().signal, done.signal]).reason == "already"
