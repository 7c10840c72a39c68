#!/usr/bin/env python3
"""Clang's -Wthread-safety over every server/ and client/ source.

GCC (our compiler) ignores the ABSL_GUARDED_BY / ABSL_EXCLUSIVE_LOCKS_REQUIRED
annotations; clang checks them. This reruns each file's compile command from
compile_commands.json with clang++ -fsyntax-only -Wthread-safety -Werror
(without GCC's precompiled header) and fails on any finding.

Usage: check_thread_safety.py <build dir> [source file... (checked instead)]
Exits 77 (ctest: skipped) when clang++ is not installed.
"""
import concurrent.futures
import json
import os
import shlex
import shutil
import subprocess
import sys

CHECKED_DIRS = ("/server/", "/client/")


def clang_command(entry, clang, source):
    args = shlex.split(entry["command"])
    command = [clang, "-fsyntax-only", "-Wthread-safety", "-Werror=thread-safety",
               "-Wno-unknown-warning-option"]
    skip_next = False
    for arg in args[1:]:
        if skip_next:
            skip_next = False
            continue
        if arg in ("-o", "-include", "-Xclang"):
            skip_next = True  # GCC's PCH flags and the output file
            continue
        if arg == "-c" or arg.endswith((".o", ".cc")) or "cmake_pch" in arg:
            continue
        if arg.startswith("-Winvalid-pch"):
            continue
        command.append(arg)
    command.append(source)
    return command


def main():
    build = sys.argv[1]
    clang = shutil.which("clang++") or shutil.which("clang++-14")
    if clang is None:
        print("clang++ is not installed: thread-safety analysis skipped")
        return 77
    with open(os.path.join(build, "compile_commands.json")) as f:
        entries = json.load(f)
    checked = [e for e in entries
               if any(d in e["file"] for d in CHECKED_DIRS) and "/tests/" not in e["file"]]
    if not checked:
        print("no server/ or client/ sources in compile_commands.json")
        return 1
    # Given files (the self-test) are checked instead, with the first
    # server/client entry's flags.
    jobs = ([(checked[0], s) for s in sys.argv[2:]] or
            [(e, e["file"]) for e in checked])
    def check(job):
        entry, source = job
        return source, subprocess.run(clang_command(entry, clang, os.path.abspath(source)),
                                      cwd=entry["directory"], capture_output=True, text=True)

    failures = 0
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for source, result in pool.map(check, jobs):
            if result.returncode != 0:
                failures += 1
                print(f"FAIL {source}\n{result.stderr[-3000:]}")
    print(f"thread-safety analysis: {len(jobs) - failures}/{len(jobs)} files clean")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
