#!/usr/bin/env python3
"""The lint of the test command (scripts/test.sh, hence CI): fails on any clang-format
difference and on any clang-tidy finding (the repo's .clang-format and .clang-tidy, naming rules
included).

  clang-format  every tracked C++ and CUDA file (a second or two).
  clang-tidy    the C++ translation units of build/compile_commands.json that changed, or that
                include a header that changed (from the build's dependency records), against a
                base revision:
                  WEIGHTSYNC_LINT_BASE=<revision>  that revision (e.g. the commit a CI run's
                                                   change is based on)
                  else, on a branch off origin/main  their merge base (the whole branch)
                  else                             HEAD's first parent: the commit under test
                                                   (for a merge, the whole merged branch)
                plus uncommitted changes. Without a base (a clone without history) it checks
                every translation unit under src/. WEIGHTSYNC_LINT_ALL=1 checks every one.

Usage: scripts/lint.py [--build DIR] [--jobs N]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("*.cc", "*.h", "*.cu", "*.cuh")


def git(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                          check=check)


def tracked_sources() -> list[str]:
    return [f for f in git("ls-files", "--", *SOURCES).stdout.split() if (ROOT / f).exists()]


def check_format(files: list[str]) -> list[str]:
    """Files whose clang-format output differs from their contents."""
    bad = []
    for start in range(0, len(files), 100):
        run = subprocess.run(["clang-format", "--dry-run", "-Werror", *files[start:start + 100]],
                             cwd=ROOT, capture_output=True, text=True)
        for line in run.stderr.splitlines():
            if ": error: code should be clang-formatted" in line:
                bad.append(line.split(":", 1)[0])
    return sorted(set(bad))


def changed_files(base: str) -> set[str]:
    """Repo-relative paths changed between `base` and the working tree (committed or not)."""
    out = git("diff", "--name-only", "--diff-filter=d", base, "--").stdout.split()
    out += git("ls-files", "--others", "--exclude-standard").stdout.split()
    return set(out)


def lint_base() -> str | None:
    base = os.environ.get("WEIGHTSYNC_LINT_BASE", "")
    if base:
        if git("rev-parse", "--verify", "--quiet", base + "^{commit}", check=False).returncode:
            sys.exit(f"lint: WEIGHTSYNC_LINT_BASE={base} is not a commit of this clone")
        return base
    head = git("rev-parse", "HEAD").stdout.strip()
    merge_base = git("merge-base", "HEAD", "origin/main", check=False)
    if merge_base.returncode == 0 and merge_base.stdout.strip() != head:
        return merge_base.stdout.strip()
    if git("rev-parse", "--verify", "--quiet", "HEAD^1", check=False).returncode == 0:
        return "HEAD^1"
    return None


def translation_units(build: Path) -> dict[str, str]:
    """Repo-relative source -> its object (C++ only: nvcc's command lines are not clang's)."""
    units = {}
    for entry in json.loads((build / "compile_commands.json").read_text()):
        path = Path(entry["directory"], entry["file"]).resolve()
        if path.suffix != ".cc" or ROOT not in path.parents or build in path.parents:
            continue
        units[str(path.relative_to(ROOT))] = entry.get("output", "")
    return units


def header_users(build: Path, headers: set[str]) -> set[str]:
    """Sources whose recorded dependencies (ninja's deps log) include one of `headers`."""
    if not headers:
        return set()
    run = subprocess.run(["ninja", "-C", str(build), "-t", "deps"], capture_output=True,
                         text=True)
    if run.returncode != 0:
        return set()  # not a ninja build: changed sources only
    users, source, deps = set(), None, []

    def flush() -> None:
        if source and any(d in headers for d in deps):
            users.add(source)

    for line in run.stdout.splitlines():
        if line and not line.startswith(" "):
            flush()
            source, deps = None, []
        elif line.strip():
            path = (build / line.strip()).resolve()
            if ROOT not in path.parents:
                continue
            rel = str(path.relative_to(ROOT))
            if source is None:
                source = rel
            deps.append(rel)
    flush()
    return users


def tidy(build: Path, unit: str) -> tuple[str, int, str]:
    run = subprocess.run(["clang-tidy", "-p", str(build), "--quiet", "--warnings-as-errors=*",
                          unit], cwd=ROOT, capture_output=True, text=True)
    findings = [l for l in run.stdout.splitlines() if ": error: " in l or ": warning: " in l]
    return unit, run.returncode, "\n".join(findings) if findings else run.stdout[-4000:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    build = Path(args.build).resolve()
    start = time.monotonic()

    unformatted = check_format(tracked_sources())
    for f in unformatted:
        print(f"lint: {f} differs from clang-format (clang-format -i {f})")

    if not (build / "compile_commands.json").exists():
        sys.exit(f"lint: {build}/compile_commands.json is missing (configure with CMake first)")
    units = translation_units(build)
    base = lint_base()
    if os.environ.get("WEIGHTSYNC_LINT_ALL") == "1":
        todo, why = sorted(units), "every translation unit"
    elif base is None:
        todo, why = sorted(u for u in units if u.startswith("src/")), "no base revision: src/"
    else:
        changed = changed_files(base)
        headers = {f for f in changed if f.endswith((".h", ".cuh"))}
        todo = sorted((changed & units.keys()) | (header_users(build, headers) & units.keys()))
        why = f"changed since {base}"
    print(f"lint: clang-format on {len(tracked_sources())} files; clang-tidy on {len(todo)} "
          f"translation units ({why})", flush=True)

    failed = []
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        for unit, code, output in pool.map(lambda u: tidy(build, u), todo):
            if code != 0:
                failed.append(unit)
                print(f"lint: clang-tidy {unit}:\n{output}", flush=True)
    seconds = time.monotonic() - start
    if unformatted or failed:
        print(f"lint: FAILED ({len(unformatted)} unformatted files, {len(failed)} translation "
              f"units with clang-tidy findings) in {seconds:.0f} s")
        return 1
    print(f"lint: clean in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
