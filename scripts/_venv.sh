# Sourced by scripts/run_station and scripts/test: make sure ./.venv exists and holds this
# checkout (editable) with its test tools. Re-installs when pyproject.toml changes.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "IONM Station needs Python 3.10 or newer ($PY is $("$PY" --version 2>&1 || echo missing))." >&2
    exit 2
fi
STAMP="$VENV/.installed-$(sha1sum "$ROOT/pyproject.toml" | cut -c1-12)"
if [ ! -x "$VENV/bin/python" ]; then
    echo "Creating virtual environment in $VENV ..." >&2
    "$PY" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ]; then
    echo "Installing IONM Station and its dependencies into $VENV ..." >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e "$ROOT[test]"
    rm -f "$VENV"/.installed-*
    touch "$STAMP"
fi
