#!/usr/bin/env bash
# Install MinkowskiEngine 0.5.4 (CPU build), voxgen's second sparse backend (backend=minkowski).
#
#   bash tools/install_minkowski.sh            # build once (~8 min on 2 cores), then reuse the wheel
#
# The built wheel is cached in $VOXGEN_WHEEL_CACHE (default ~/.cache/voxgen/wheels), keyed by the
# Python and torch versions it was built against, so a second install takes seconds. The source
# comes through pip, so the user's pip configuration (index, mirror, proxy) applies, and is checked
# against its sha256. The recipe (../shared/reference.md): Debian's libopenblas-dev; a build
# environment with numpy<2 and setuptools<60; `setup.py ... --cpu_only --blas=openblas`; and
# `from collections import Sequence` changed to collections.abc. At run time it works with numpy 2.
set -euo pipefail

PYTHON=${PYTHON:-python}
VERSION=0.5.4
SHA256=b1879c00d0b0b1d30ba622cce239886a7e3c78ee9da1064cdfe2f64c2ab15f94
key=$("$PYTHON" -c "import sys, torch; print(f'py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__}')")
cache=${VOXGEN_WHEEL_CACHE:-$HOME/.cache/voxgen/wheels}/minkowskiengine-$VERSION-$key
if "$PYTHON" -c "import MinkowskiEngine" 2>/dev/null; then
    echo "MinkowskiEngine already installed"; exit 0
fi

wheel=$(ls "$cache"/*.whl 2>/dev/null | head -1 || true)
if [[ -z "$wheel" ]]; then
    if ! dpkg -s libopenblas-dev >/dev/null 2>&1; then
        if [[ $(id -u) -ne 0 ]]; then
            echo "install_minkowski: needs Debian's libopenblas-dev (sudo apt-get install libopenblas-dev)" >&2; exit 1
        fi
        apt-get install -y -q libopenblas-dev >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q libopenblas-dev >/dev/null; }
    fi
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    "$PYTHON" -m venv "$work/venv"   # pins only the build tools
    "$work/venv/bin/pip" install -q "numpy<2" "setuptools<60" wheel >"$work/pip.log" 2>&1 \
        || { cat "$work/pip.log" >&2; echo "install_minkowski: could not set up the build environment" >&2; exit 1; }
    # then it sees the installed torch: $PYTHON's site-packages after its own (its numpy<2 first),
    # whether $PYTHON is a system interpreter or itself a virtual environment's
    "$PYTHON" -c "import sysconfig; p = sysconfig.get_paths(); print(p['purelib']); print(p['platlib'])" \
        > "$("$work/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/parent-site.pth"
    # pip reads the source's metadata with its setup.py, which works only in the build environment
    "$work/venv/bin/pip" download -q --no-deps --no-binary :all: --no-build-isolation -d "$work" \
        "minkowskiengine==$VERSION" >"$work/download.log" 2>&1 \
        || { cat "$work/download.log" >&2; echo "install_minkowski: could not download the MinkowskiEngine $VERSION source" >&2; exit 1; }
    sdist=$(ls "$work"/*.tar.gz)
    echo "$SHA256  $sdist" | sha256sum -c --quiet \
        || { echo "install_minkowski: $(basename "$sdist") does not have the expected sha256" >&2; exit 1; }
    tar xzf "$sdist" -C "$work"
    src="$work/MinkowskiEngine-$VERSION"
    grep -rl "from collections import Sequence" "$src/MinkowskiEngine" | xargs sed -i \
        -e 's/^from collections import Sequence, namedtuple$/from collections import namedtuple\nfrom collections.abc import Sequence/' \
        -e 's/^from collections import Sequence$/from collections.abc import Sequence/'
    echo "building MinkowskiEngine $VERSION (CPU, OpenBLAS); about 8 minutes on 2 cores"
    (cd "$src" && MAX_JOBS=${MAX_JOBS:-2} "$work/venv/bin/python" setup.py -q bdist_wheel --cpu_only --blas=openblas >"$work/build.log" 2>&1) \
        || { tail -30 "$work/build.log" >&2; echo "install_minkowski: build failed" >&2; exit 1; }
    mkdir -p "$cache"
    cp "$src"/dist/*.whl "$cache/"
    wheel=$(ls "$cache"/*.whl | head -1)
fi
"$PYTHON" -m pip install -q "$wheel"   # its requirements: the installed torch, numpy (added if missing)
"$PYTHON" -c "import MinkowskiEngine as ME; print('MinkowskiEngine', ME.__version__)"
