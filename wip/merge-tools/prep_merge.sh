#!/usr/bin/env bash
# Make <branch>-rl: main plus the branch's own changes, relayouted, ready to merge into main.
set -euo pipefail
b=$1
base=${2:-d0ca2939834d456fcca6d343cfd2e58a07752360}
d=/work/wt/rl-$b
RUFF="/work/main/.venv/bin/ruff"; export RUFF_NO_CACHE=true
git -C /work/main worktree remove --force "$d" 2>/dev/null || true
git -C /work/main branch -D "$b-rl" 2>/dev/null || true
git -C /work/main worktree add -q -b "$b-rl" "$d" "$b"
cd "$d"
python3 /work/wt/relayout.py
$RUFF check --fix -q . >/dev/null 2>&1 || true
$RUFF format -q . || true
RUFF=$RUFF python3 /work/wt/wrap_long.py
git add -A
git commit -qm "Relayout of $b into the callbridge namespace (mechanical: moved packages, rewritten module paths)"
python3 /work/wt/overlay.py "$base" "$b"
$RUFF check -q . --output-format concise | head -20 || true
git add -A
git commit -q --amend --no-edit
# Parents: main right after the relayout (the content's merge base) and the branch (its history).
c=$(git commit-tree "HEAD^{tree}" -p 6604fcb -p "$b" -m "Merge $b (relayouted into the callbridge namespace)")
git reset -q --hard "$c"
echo "ready: $b-rl"
