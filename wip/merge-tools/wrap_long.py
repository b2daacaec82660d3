"""Split E501 lines (after the relayout lengthened module paths) at a space, same indent."""
import os, re, subprocess, sys
from collections import defaultdict
from pathlib import Path
out = subprocess.run([os.environ.get("RUFF", "/work/main/.venv/bin/ruff"), "check", ".", "--select", "E501", "--output-format", "concise"],
                     capture_output=True, text=True).stdout
hits = defaultdict(list)
for line in out.splitlines():
    m = re.match(r"(.+?):(\d+):\d+: E501", line)
    if m:
        hits[m[1]].append(int(m[2]))
left = []
for f, nums in hits.items():
    lines = Path(f).read_text().splitlines(keepends=True)
    for n in sorted(nums, reverse=True):
        s = lines[n - 1].rstrip("\n")
        indent = re.match(r"\s*", s).group(0)
        stripped = s[len(indent):]
        prefix = ""
        if stripped.startswith("# "):
            prefix = "# "
        cut = s.rfind(" ", len(indent) + len(prefix) + 1, 100)
        quotes = s.count('"') % 2 or s.count("'") % 2
        if cut <= len(indent) + len(prefix) or (not prefix and ('"' in s[cut:] and not s.rstrip().endswith('"""')) and not stripped.startswith(('"""', "`", "(", "-", "*")) and quotes):
            left.append(f"{f}:{n}")
            continue
        first, rest = s[:cut], s[cut + 1:]
        lines[n - 1] = first + "\n" + indent + prefix + rest + "\n"
    Path(f).write_text("".join(lines))
print("left:", *left, sep="\n")
