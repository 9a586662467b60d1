"""Cheap packaging invariants: what a wheel must hold for type checkers and users (PEP 561
marker, a stub beside every compiled module, stubs that match the modules), the public names
of the contract, and -- when mypy and ruff are installed and the source tree is here -- that
both are clean."""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import child_process

PACKAGE_DIR = os.path.dirname(child_process.__file__)
COMPILED = ["_spawn", "_loop_core", "_io", "_sync", "_wire", "_v8"]
#: the source tree, when these tests run from a checkout (None against an installed copy)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if not os.path.isfile(os.path.join(ROOT, "pyproject.toml")):
    ROOT = None

#: every public name of the contract (SPEC.md §2-§8)
SPEC_NAMES = [
    "spawn", "exec", "exec_file", "fork", "spawn_sync", "exec_sync", "exec_file_sync",
    "exec_async", "exec_file_async", "run", "parent", "ChildProcess", "EventEmitter",
    "Readable", "Writable", "SpawnSyncResult", "SpawnError", "ExecError", "AbortError",
    "AbortController", "AbortSignal", "NodeTypeError", "NodeValueError", "RangeError",
]


def _compiled_files() -> dict[str, str]:
    """module name -> file of every extension module in the package directory."""
    found = {}
    for name in os.listdir(PACKAGE_DIR):
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            if name.endswith(suffix):           # the most specific suffix comes first
                found[name[: -len(suffix)]] = name
                break
    return found


def _stub_names(tree: ast.Module | ast.ClassDef) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return {n for n in names if not n.startswith("_")}


def _runtime_names(module: object) -> set[str]:
    """Public names the compiled module defines (not what it merely imports)."""
    names = set()
    for name in dir(module):
        if name.startswith("_"):
            continue
        value = getattr(module, name)
        if isinstance(value, type(os)):
            continue
        owner = getattr(value, "__module__", None)
        if callable(value) and owner != module.__name__:     # e.g. deque, monotonic
            continue
        names.add(name)
    return names


def _load_stub(name: str) -> ast.Module:
    with open(os.path.join(PACKAGE_DIR, name + ".pyi"), encoding="utf-8") as f:
        return ast.parse(f.read())


def test_py_typed_marker_is_shipped():
    assert os.path.isfile(os.path.join(PACKAGE_DIR, "py.typed"))


def test_every_compiled_module_has_a_stub_beside_it():
    compiled = _compiled_files()
    assert set(COMPILED) <= set(compiled), f"compiled modules missing: {compiled}"
    missing = [n for n in compiled if not os.path.isfile(os.path.join(PACKAGE_DIR, n + ".pyi"))]
    assert not missing, f"no .pyi stub for {missing}"


@pytest.mark.parametrize("name", COMPILED)
def test_stub_lists_what_the_compiled_module_exposes(name):
    module = importlib.import_module(f"child_process.{name}")
    stub = _load_stub(name)
    assert _stub_names(stub) == _runtime_names(module), (
        f"child_process/{name}.pyi is out of date with cext/{name}.pyx")
    # and every public class lists the public members the compiled class has
    for node in stub.body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            cls = getattr(module, node.name)
            inherited = set()
            for base in cls.__mro__[1:]:
                inherited |= set(vars(base))
            runtime = {n for n in vars(cls) if not n.startswith("_")} - inherited
            declared = _stub_names(node)
            for base in node.bases:       # members the stub declares on a stub base class
                if isinstance(base, ast.Name):
                    for other in stub.body:
                        if isinstance(other, ast.ClassDef) and other.name == base.id:
                            declared |= _stub_names(other)
            assert runtime <= declared, f"{name}.{node.name}: stub lacks {runtime - declared}"


def test_every_spec_name_is_exported():
    exported = set(child_process.__all__)
    assert not [n for n in SPEC_NAMES if n not in exported]
    assert not [n for n in exported if not hasattr(child_process, n)]
    assert len(child_process.__all__) == len(exported), "a name is listed twice in __all__"


def test_reference_documents_every_public_name():
    if ROOT is None:
        pytest.skip("the docs are in the source tree only")
    with open(os.path.join(ROOT, "docs", "reference.md"), encoding="utf-8") as f:
        headings = {line[4:].strip().strip("`") for line in f if line.startswith("### ")}
    missing = sorted(set(child_process.__all__) - headings)
    assert not missing, f"docs/reference.md has no entry for {missing}"


def _tool(module: str) -> None:
    pytest.importorskip(module, reason=f"{module} is not installed (pip install -e '.[lint]')")
    if ROOT is None:
        pytest.skip("runs against the source tree only (this is an installed copy of the tests)")


@pytest.mark.no_leak_check
def test_mypy_strict_is_clean(tmp_path):
    _tool("mypy")
    # the package, and a user's strictly typed program calling the public API
    user = tmp_path / "user.py"
    user.write_text(textwrap.dedent("""\
        import asyncio
        from child_process import (AbortController, ChildProcess, ExecError, exec_async,
                                   exec_sync, fork, spawn, spawn_sync)

        def on_exit(code: int | None, signal: str | None) -> None:
            print(code, signal)

        controller = AbortController()
        child: ChildProcess = spawn("ls", ["-l"], cwd="/", env={"PATH": "/bin"},
                                    stdio=["pipe", "inherit", 2], timeout=1.5,
                                    kill_signal="SIGKILL", signal=controller.signal)
        child.on("exit", on_exit).on("close", print)

        @child.on("close")
        def closed(code: int | None) -> None:
            print(code)

        result = spawn_sync("tr", ["a-z", "A-Z"], input=b"hi", encoding="utf-8")
        status: int | None = result.status
        worker = fork("worker.py", serialization="advanced", exec_argv=["-u"])
        worker.send({"n": 1})
        try:
            exec_sync("exit 3")
        except ExecError as err:
            print(err.status)

        async def main() -> None:
            out = await exec_async("ls", timeout=2)
            print(out.stdout)
        asyncio.run(main())
        """))
    env = dict(os.environ, MYPYPATH=os.path.join(ROOT, "src"))
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           "--python-version", "3.10", str(user)],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    assert proc.returncode == 0, proc.stdout
    proc = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.no_leak_check
def test_ruff_is_clean():
    _tool("ruff")
    ruff = shutil.which("ruff")
    command = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    proc = subprocess.run(command + ["check", "src", "tests", "benchmarks"], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout
