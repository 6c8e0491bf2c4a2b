#!/usr/bin/env python3
"""Checks that the workspace's declared `rust-version` is true, as far as a script can tell
without an older toolchain (only one is installed here; `make msrv-check`, part of `make test`).

What it checks, and fails on:

1. Every crate the workspace builds for this host, from the lock file: the normal and build
   dependencies of every workspace member, transitively, and the members' dev-dependencies (so
   that `cargo test` holds too). A crate needs at least its own `rust-version`, and at least 1.85
   if it is on edition 2024 (1.56 for 2021). None may need more than we declare.
2. The lock file's format: version 4 needs cargo 1.78.
3. Our own sources, by a short list of patterns for language syntax that clippy cannot see
   (clippy's `incompatible_msrv` covers library items only): see SYNTAX below. A grep, not a
   parser: it knows the features listed, nothing else.
4. That clippy's `incompatible_msrv` lint, which covers the standard library's items (methods,
   functions, types newer than `rust-version`), is not silenced anywhere and is also checked in
   test code (`check-incompatible-msrv-in-tests` in clippy.toml); `make lint` runs it with
   `-D warnings`.

It prints what the dependencies need at the most and which crate needs it, so that the declared
version can be set to exactly that.
"""

import json
import pathlib
import re
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE_FOLDERS = ["protocol", "server", "loadgen", "tests"]
EDITION_NEEDS = {"2015": (1, 0), "2018": (1, 31), "2021": (1, 56), "2024": (1, 85)}
LOCK_FORMAT_NEEDS = {4: (1, 78)}

# Syntax newer than 1.76 that a compiler accepts silently whatever `rust-version` says, matched
# in a line whose comment is cut off and whose string literals are emptied (`c"x"` -> `c""`).
# Features up to the declared version are kept as a guard for a lower one.
SYNTAX = [
    (r"&raw\s+(const|mut)\b", (1, 82), "`&raw const` / `&raw mut`"),
    (r"\bunsafe\s+extern\b", (1, 82), "`unsafe extern` blocks"),
    (r"#!?\[unsafe\(", (1, 82), "unsafe attributes `#[unsafe(..)]`"),
    (r"\+\s*use<", (1, 82), "precise capturing `+ use<..>`"),
    (r"\basync\s+(move\s+)?\|", (1, 85), "async closures"),
    (r"#!?\[expect\(", (1, 81), "`#[expect(..)]` lint attributes"),
    (r"#\[diagnostic::do_not_recommend", (1, 85), "`#[diagnostic::do_not_recommend]`"),
    (r"(?<![\w\"])const\s*\{", (1, 79), "inline `const { .. }` blocks"),
    (r"(?<![\w\"])c\"\"", (1, 77), "C string literals `c\"..\"`"),
    (r";\s*_\s*\]", (1, 89), "an inferred array length `[x; _]`"),
]
RAW_STRING = re.compile(r'\br(#*)".*?"\1')
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def version(text):
    """`1.88`, `1.88.0` -> (1, 88); patch levels do not change what a feature needs here."""
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


def show(needed):
    return f"{needed[0]}.{needed[1]}"


def metadata():
    host = subprocess.run(
        ["rustc", "-vV"], capture_output=True, text=True, check=True
    ).stdout
    host = re.search(r"^host: (\S+)$", host, re.MULTILINE).group(1)
    output = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", host],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if output.returncode != 0:
        sys.exit(f"msrv-check: cargo metadata failed:\n{output.stderr}")
    return host, json.loads(output.stdout)


def crates_built(meta, roots, with_dev=True):
    """The package ids built for this host from `roots` (members): their normal and build
    dependencies transitively, and the members' own dev-dependencies (with theirs)."""
    nodes = {node["id"]: node for node in meta["resolve"]["nodes"]}
    members = set(meta["workspace_members"])
    seen = set()
    pending = list(roots)
    while pending:
        package = pending.pop()
        if package in seen:
            continue
        seen.add(package)
        for dependency in nodes[package]["deps"]:
            kinds = {kind["kind"] for kind in dependency["dep_kinds"]}
            if kinds & {None, "build"} or (with_dev and package in members and "dev" in kinds):
                pending.append(dependency["pkg"])
    return seen - members


def highest_need(meta, packages, member, with_dev):
    """What the dependencies of one member need at the most, and which crates need that."""
    built = crates_built(meta, [member["id"]], with_dev)
    found = [(needs(packages[id])[0], packages[id]) for id in built]
    if not found:
        return "nothing"
    highest = max(needed for needed, _ in found)
    names = sorted({f"{package['name']} {package['version']}" for needed, package in found
                    if needed == highest})
    return f"{show(highest)} ({', '.join(names)})"


def needs(package):
    """What building `package` needs at the least, and why."""
    found = [(EDITION_NEEDS[package["edition"]], f"edition {package['edition']}")]
    if package.get("rust_version"):
        found.append((version(package["rust_version"]), f"rust-version {package['rust_version']}"))
    return max(found)


def syntax_findings():
    for folder in SOURCE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.rs")):
            if "target" in path.relative_to(ROOT).parts:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                code = STRING.sub('""', RAW_STRING.sub('""', line)).split("//")[0]
                for pattern, needed, feature in SYNTAX:
                    if re.search(pattern, code):
                        yield needed, f"{path.relative_to(ROOT)}:{number}: {feature}"


def lint_findings():
    """Places where `incompatible_msrv` would be kept from firing."""
    clippy = ROOT / "clippy.toml"
    settings = tomllib.loads(clippy.read_text()) if clippy.exists() else {}
    if settings.get("check-incompatible-msrv-in-tests") is not True:
        yield "clippy.toml: check-incompatible-msrv-in-tests = true is missing (tests unchecked)"
    if "msrv" in settings:
        yield "clippy.toml: an `msrv` setting overrides the rust-version clippy checks against"
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]
    lints = workspace.get("lints", {}).get("clippy", {})
    level = lints.get("incompatible_msrv")
    if isinstance(level, dict):
        level = level.get("level")
    if level in ("allow", "expect"):
        yield "Cargo.toml: [workspace.lints.clippy] allows incompatible_msrv"
    for folder in SOURCE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.rs")):
            if "target" in path.relative_to(ROOT).parts:
                continue
            text = path.read_text()
            if re.search(r"clippy::(msrv|incompatible_msrv)\b", text):
                yield f"{path.relative_to(ROOT)}: silences or moves incompatible_msrv"


def main():
    host, meta = metadata()
    packages = {package["id"]: package for package in meta["packages"]}
    members = [packages[member] for member in meta["workspace_members"]]
    declared_texts = {member.get("rust_version") for member in members}
    if len(declared_texts) != 1 or None in declared_texts:
        sys.exit(f"msrv-check: the members must share one rust-version, found {declared_texts}")
    declared = version(declared_texts.pop())
    failures = []

    for member in members:
        needed, why = needs(member)
        if needed > declared:
            failures.append(f"{member['name']} itself needs {show(needed)} ({why})")

    built = crates_built(meta, meta["workspace_members"])
    for package_id in sorted(built):
        package = packages[package_id]
        needed, why = needs(package)
        if needed > declared:
            name = f"{package['name']} {package['version']}"
            failures.append(f"dependency {name} needs {show(needed)} ({why})")

    lock = tomllib.loads((ROOT / "Cargo.lock").read_text())
    lock_needs = LOCK_FORMAT_NEEDS.get(lock.get("version", 1), (1, 0))
    if lock_needs > declared:
        failures.append(f"Cargo.lock format {lock['version']} needs cargo {show(lock_needs)}")

    for needed, where in syntax_findings():
        if needed > declared:
            failures.append(f"{where} needs {show(needed)}")

    failures.extend(lint_findings())

    print(
        f"msrv-check: rust-version {show(declared)} declared; {len(built)} dependencies built "
        f"for {host} (normal, build, and the members' dev-dependencies)"
    )
    for member in members:
        print(
            f"msrv-check:   {member['name']} needs {highest_need(meta, packages, member, False)}"
            f" to build, {highest_need(meta, packages, member, True)} with its dev-dependencies"
        )
    if failures:
        for failure in failures:
            print(f"msrv-check: FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    print("msrv-check: OK (std items newer than rust-version are clippy's incompatible_msrv, "
          "checked by `make lint` in all targets, tests included)")


if __name__ == "__main__":
    main()
