#!/usr/bin/env bash
# Create ./.venv and install RPN Studio into it (editable, with the test extra).
# Idempotent: a second run only checks a stamp (the hash of pyproject.toml) and returns.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.rpn-studio-installed"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "RPN Studio needs Python >= 3.10 (found: $("$python" --version 2>&1))" >&2
  exit 1
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"

want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c 'import app, rpn_core' 2>/dev/null; then
  exit 0
fi
echo "Installing RPN Studio and its dependencies into $venv (first run: a few minutes)..." >&2
"$venv/bin/python" -m pip install --quiet --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet -e "$root[test]" >&2
echo "$want" > "$stamp"
