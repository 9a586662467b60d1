"""Run the test suite against the *installed* child_process, never a source tree.

Usage: python scripts/run-installed-tests.py TESTS_DIR [pytest args...]

Copies TESTS_DIR to a fresh temporary directory, checks from there that ``import child_process``
resolves to an installed copy (site-packages of this interpreter, not a checkout's src/), then runs
pytest on the copy. Used by cibuildwheel's test-command and by scripts/check-dist.sh. Exits with
pytest's status (or 3 when the import resolves to the wrong place).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    source = os.path.abspath(argv[0])
    extra = argv[1:]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)           # nothing may point the children at a checkout either
    with tempfile.TemporaryDirectory(prefix="cp-installed-tests-") as tmp:
        tests = os.path.join(tmp, "tests")
        shutil.copytree(source, tests,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
        where = subprocess.run(
            [sys.executable, "-c", "import child_process; print(child_process.__file__)"],
            cwd=tmp, env=env, stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
        installed = os.path.realpath(sysconfig.get_paths()["purelib"])
        platlib = os.path.realpath(sysconfig.get_paths()["platlib"])
        real = os.path.realpath(where)
        print(f"child_process imported from {where}")
        if not (real.startswith(installed + os.sep) or real.startswith(platlib + os.sep)):
            print(f"error: expected the installed copy under {installed}", file=sys.stderr)
            return 3
        return subprocess.call(
            [sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", tests, *extra],
            cwd=tmp, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
