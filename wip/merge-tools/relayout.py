"""One-off: move the packages into the ``callbridge`` namespace and rewrite module paths.

Run at the top of a git work tree of callbridge (before the move). Idempotent on an already
moved tree (it then only rewrites leftover old paths). Python files: import statements are
rewritten token by token; dotted paths inside strings and comments are rewritten only when
they name a real module of the old tree (so ``bridge.send_signal`` on a local variable stays).
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path.cwd()
TOPS = ("bridge", "adapters", "emulators", "bench", "examples")
SERVICE_FROM_BRIDGE = {
    "admission", "cli", "config_cli", "delivery", "housekeeping", "logs", "loop", "metrics",
    "store", "store_cli", "webhook", "warning_handlers",
}
SERVICE_FROM_ADAPTERS = {"app": "app", "http": "http", "service": "serve", "console": "console"}
EXTRA = {  # new modules a branch may add that belong to the service side
    "bridge.migrations": "callbridge.service.migrations",
    "bridge.campaigns": "callbridge.service.campaigns",
    "bridge.tracing": "callbridge.service.tracing",
    "bridge.recording": "callbridge.service.recording",
}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def old_modules() -> set[str]:
    mods: set[str] = set()
    files = git("ls-files", "-co", "--exclude-standard").splitlines()
    for f in files:
        p = Path(f)
        if p.parts and p.parts[0] in TOPS and p.suffix == ".py":
            parts = list(p.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            for i in range(1, len(parts) + 1):
                mods.add(".".join(parts[:i]))
    return mods


def new_name(old: str) -> str:
    for k, v in EXTRA.items():
        if old == k or old.startswith(k + "."):
            return v + old[len(k):]
    parts = old.split(".")
    top, rest = parts[0], parts[1:]
    if top == "bridge":
        if rest and rest[0] in SERVICE_FROM_BRIDGE:
            return ".".join(["callbridge", "service", *rest])
        return ".".join(["callbridge", "bridge", *rest])
    if top == "adapters":
        if rest and rest[0] in SERVICE_FROM_ADAPTERS:
            return ".".join(["callbridge", "service", SERVICE_FROM_ADAPTERS[rest[0]], *rest[1:]])
        return ".".join(["callbridge", "adapters", *rest])
    return ".".join(["callbridge", top, *rest])


def move_files() -> None:
    if not Path("bridge").is_dir():
        return
    Path("callbridge/service").mkdir(parents=True, exist_ok=True)
    git("mv", "bridge", "callbridge/bridge")
    git("mv", "adapters", "callbridge/adapters")
    git("mv", "emulators", "callbridge/emulators")
    git("mv", "bench", "callbridge/bench")
    Path("bench").mkdir(exist_ok=True)  # results and the benchmark's README stay at the top
    for keep in ("results", "README.md"):
        if Path(f"callbridge/bench/{keep}").exists():
            git("mv", f"callbridge/bench/{keep}", f"bench/{keep}")
    Path("callbridge/examples").mkdir(exist_ok=True)
    for f in sorted(Path("examples").glob("*.py")):
        git("mv", str(f), f"callbridge/examples/{f.name}")
    for m in sorted(SERVICE_FROM_BRIDGE):
        src = Path(f"callbridge/bridge/{m}.py")
        if src.exists():
            git("mv", str(src), f"callbridge/service/{m}.py")
    for m, n in SERVICE_FROM_ADAPTERS.items():
        for src in (Path(f"callbridge/adapters/{m}.py"), Path(f"callbridge/adapters/{m}")):
            if src.exists():
                dst = f"callbridge/service/{n}" + (".py" if src.suffix else "")
                git("mv", str(src), dst)


DOTTED = re.compile(r"(?<![\w.])(?:bridge|adapters|emulators|bench|examples)(?:\.[A-Za-z_]\w*)+")


def rewrite_text(text: str, mods: set[str]) -> str:
    def repl(m: re.Match[str]) -> str:
        parts = m.group(0).split(".")
        for i in range(len(parts), 0, -1):
            head = ".".join(parts[:i])
            if head in mods and (i > 1 or False):
                return new_name(head) + ("." + ".".join(parts[i:]) if parts[i:] else "")
        return m.group(0)

    return DOTTED.sub(repl, text)


def rewrite_python(src: str, mods: set[str]) -> str:
    tokens = list(tokenize.generate_tokens(io.StringIO(src).readline))
    out: list[tuple[int, str]] = []
    i = 0
    line_start_kw: str | None = None
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == tokenize.NAME and tok.string in ("import", "from") and (
            i == 0 or tokens[i - 1].type in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT,
                                             tokenize.DEDENT, tokenize.COMMENT)
            or tokens[i - 1].string == ";"
        ):
            line_start_kw = tok.string
        if tok.type in (tokenize.NEWLINE,):
            line_start_kw = None
        if (
            line_start_kw
            and tok.type == tokenize.NAME
            and tok.string in TOPS
            and (i == 0 or tokens[i - 1].string in ("import", "from", ","))
        ):
            # collect a dotted name
            j = i
            names = [tok.string]
            while (
                j + 2 < len(tokens)
                and tokens[j + 1].string == "."
                and tokens[j + 2].type == tokenize.NAME
            ):
                names.append(tokens[j + 2].string)
                j += 2
            dotted = ".".join(names)
            # `from bridge import x` style: the module is the dotted name itself
            if dotted in mods:
                out.append((i, new_name(dotted)))
                for k in range(i + 1, j + 1):
                    out.append((k, ""))
                i = j + 1
                continue
        if tok.type in (tokenize.STRING, tokenize.COMMENT):
            new = rewrite_text(tok.string, mods)
            if new != tok.string:
                out.append((i, new))
        i += 1
    if not out:
        return src
    repl = dict(out)
    lines = src.splitlines(keepends=True)
    # apply from the end so positions stay valid
    edits = []
    for idx, new in repl.items():
        t = tokens[idx]
        edits.append((t.start, t.end, new))
    edits.sort(reverse=True)
    for (sr, sc), (er, ec), new in edits:
        if sr == er:
            line = lines[sr - 1]
            lines[sr - 1] = line[:sc] + new + line[ec:]
        else:
            first = lines[sr - 1][:sc] + new + lines[er - 1][ec:]
            lines[sr - 1 : er] = [first]
    return "".join(lines)


FROM_PKG = re.compile(r"^(\s*)from callbridge\.(bridge|adapters) import (\w+)(\s*(?:#.*)?)$", re.M)


def fix_from_package(src: str) -> str:
    """``from bridge import loop`` names a module that moved to the service package."""

    def repl(m: re.Match[str]) -> str:
        indent, pkg, name, tail = m.groups()
        if pkg == "bridge" and name in SERVICE_FROM_BRIDGE:
            return f"{indent}from callbridge.service import {name}{tail}"
        if pkg == "adapters" and name in SERVICE_FROM_ADAPTERS:
            new = SERVICE_FROM_ADAPTERS[name]
            alias = "" if new == name else f" as {name}"
            return f"{indent}from callbridge.service import {new}{alias}{tail}"
        return m.group(0)

    return FROM_PKG.sub(repl, src)


def main() -> int:
    mods = old_modules()
    if not mods:  # already moved: rebuild the old names from the new tree
        mods = set()
        for f in git("ls-files", "-co", "--exclude-standard").splitlines():
            p = Path(f)
            if p.parts[:1] == ("callbridge",) and p.suffix == ".py":
                pass
        print("tree already moved; pass --mods-from REV to rewrite leftovers", file=sys.stderr)
    move_files()
    files = git("ls-files", "-co", "--exclude-standard").splitlines()
    changed = 0
    for f in files:
        p = Path(f)
        if not p.is_file():
            continue
        if p.suffix == ".py":
            src = p.read_text()
            new = fix_from_package(rewrite_python(src, mods))
        elif p.suffix in (".md", ".toml", ".yml", ".yaml", ".cfg", ".ini", ".txt", ".sh") or p.name in (
            "Makefile", "Dockerfile", "run"
        ):
            src = p.read_text()
            new = rewrite_text(src, mods)
        else:
            continue
        if new != src:
            p.write_text(new)
            changed += 1
    print(f"rewrote {changed} files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def new_path(old: str) -> str:
    """Where a file of the old layout lives after the move (for paths a branch changed)."""
    p = Path(old)
    parts = p.parts
    if not parts:
        return old
    top = parts[0]
    if top == "bench" and len(parts) > 1 and parts[1] in ("results", "README.md"):
        return old
    if top == "examples":
        return old if len(parts) > 1 and parts[1] == "tenants" else str(Path("callbridge", *parts))
    if top in ("emulators", "bench"):
        return str(Path("callbridge", *parts))
    if top == "bridge":
        if old == "bridge/py.typed":
            return "callbridge/py.typed"
        if len(parts) == 2 and p.stem in SERVICE_FROM_BRIDGE and p.suffix == ".py":
            return f"callbridge/service/{parts[1]}"
        return str(Path("callbridge", *parts))
    if top == "adapters":
        if len(parts) >= 2:
            stem = Path(parts[1]).stem
            if stem in SERVICE_FROM_ADAPTERS:
                new = SERVICE_FROM_ADAPTERS[stem]
                rest = parts[2:]
                name = new + (".py" if parts[1].endswith(".py") else "")
                return str(Path("callbridge", "service", name, *rest))
        return str(Path("callbridge", *parts))
    return old
