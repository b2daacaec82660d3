"""In a relayouted branch work tree: make every file the branch did not change equal to main.

Usage: python3 overlay.py BASE BRANCH   (run in the -rl work tree, after relayout.py)
"""
import subprocess, sys
sys.path.insert(0, "/work/wt")
from relayout import new_path

def git(*a): return subprocess.run(["git", *a], check=True, capture_output=True, text=True).stdout

base, branch = sys.argv[1], sys.argv[2]
REF = "6604fcb"  # main right after the relayout: the merge base for content
changed, deleted = set(), set()
for line in git("diff", "--name-status", "-M", base, branch).splitlines():
    status, *paths = line.split("\t")
    if status.startswith("R"):
        deleted.add(new_path(paths[0])); changed.add(new_path(paths[1]))
    elif status == "D":
        deleted.add(new_path(paths[0]))
    else:
        changed.add(new_path(paths[0]))
deleted -= changed
main_files = set(git("ls-tree", "-r", "--name-only", REF).splitlines())
mine = set(git("ls-files").splitlines())
missing = [c for c in changed if c not in mine]
if missing:
    print("changed paths not found after relayout:", missing)
git("checkout", REF, "--", ".")
keep = [c for c in changed if c in mine]
if keep:
    git("checkout", "HEAD", "--", *keep)
extra = (set(git("ls-files").splitlines()) - main_files - set(keep)) | (deleted & main_files)
for f in sorted(extra):
    git("rm", "-q", "-f", "--", f)
print(f"branch changes kept: {len(keep)} files; removed {len(extra)}: {sorted(extra)[:10]}")
