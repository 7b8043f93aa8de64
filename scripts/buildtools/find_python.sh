#!/bin/sh
# Prints the path of a working Python 3.13 interpreter (PATH first, then pyenv), or says what is missing.
set -u
WANT="${PYTHON_VERSION_WANTED:-3.13}"

works() {
    "$1" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$WANT' else 1)" >/dev/null 2>&1
}

# 1. An explicit choice wins.
if [ -n "${PYTHON:-}" ]; then
    if works "$PYTHON"; then echo "$PYTHON"; exit 0; fi
    echo "find_python: PYTHON=$PYTHON is not a working Python $WANT" >&2
    exit 1
fi

# 2. python3.13 on PATH (a pyenv shim on PATH only works when that version is selected).
if command -v "python$WANT" >/dev/null 2>&1 && works "python$WANT"; then
    command -v "python$WANT"
    exit 0
fi

# 3. pyenv's newest installed 3.13.x, whether or not it is selected.
root="${PYENV_ROOT:-}"
[ -n "$root" ] || root="$(pyenv root 2>/dev/null || true)"
[ -n "$root" ] || root="$HOME/.pyenv"
for candidate in $(ls -d "$root"/versions/"$WANT".*/bin/"python$WANT" 2>/dev/null | sort -V -r); do
    if works "$candidate"; then echo "$candidate"; exit 0; fi
done

cat >&2 <<MSG
find_python: no Python $WANT found.
  Looked for: python$WANT on PATH, and $root/versions/$WANT.*/bin/python$WANT (pyenv).
  Install it with 'pyenv install $WANT' (or your package manager), or set PYTHON=/path/to/python$WANT.
MSG
exit 1
