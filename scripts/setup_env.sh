#!/usr/bin/env bash
# Build the project's environment: apt packages, a venv with pinned pip packages (ROS 2 Kilted
# wheels included), the wmpo_interfaces package built into the venv, and the project's Python
# packages installed editable. Idempotent: every step is skipped when its inputs are unchanged.
#
# Usage: scripts/setup_env.sh            (VENV=.venv by default)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"
BUILD="$ROOT/build"
STAMPS="$VENV/.wmpo-stamps"
PY_PACKAGES=(wmpo_common wmpo_robot_io wmpo_policy wmpo_worldmodel wmpo_trainer wmpo_episodes wmpo_jobs wmpo_bringup)
APT_PACKAGES=(cmake g++ libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6 libusb-1.0-0 chromium)

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# Hash of the files that decide whether a step must run again.
inputs_hash() { cat "$@" | sha256sum | cut -d' ' -f1; }
is_current() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
mark_current() { mkdir -p "$STAMPS"; echo "$2" >"$STAMPS/$1"; }

# 1. System packages (EGL/OSMesa for headless MuJoCo, libusb for pyrealsense2, a C++ toolchain,
#    headless Chromium for the report page's test).
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "apt: installing ${missing[*]}"
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# 2. The venv and its pinned packages.
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating venv $VENV"
    "$PYTHON" -m venv "$VENV"
fi
pip_hash="$(inputs_hash "$ROOT/requirements.txt" "$ROOT/requirements.lock" "$ROOT/requirements-nodeps.txt")"
if ! is_current pip "$pip_hash"; then
    log "pip: installing requirements (pinned by requirements.lock)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "pip==24.3.1"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        -r "$ROOT/requirements.txt" -c "$ROOT/requirements.lock" 2> >(grep -v "is ignored: it is neither" >&2)
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
        -r "$ROOT/requirements-nodeps.txt" 2> >(grep -v "is ignored: it is neither" >&2)
    rm -f "$STAMPS/cmake-fix" "$STAMPS/interfaces"
    mark_current pip "$pip_hash"
fi

# 3. The wheels' exported CMake files name the wheel builder's Python and NumPy include dirs;
#    point them at this interpreter's (idempotent; redone after every reinstall of the wheels).
if ! is_current cmake-fix done; then
    log "cmake: rewriting the wheels' hard-coded include paths"
    "$VENV/bin/python" - "$VENV" <<'PY'
import pathlib, sys, sysconfig
import numpy
venv = pathlib.Path(sys.argv[1])
py_inc = sysconfig.get_paths()["include"]
np_inc = numpy.get_include()
wheel_py = "/opt/python/cp311-cp311/include/python3.11"
wheel_np = "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/core/include"
fixed = 0
for path in (venv / "share").rglob("*.cmake"):
    text = path.read_text()
    if "/opt/python/cp311-cp311" not in text:
        continue
    new = text.replace(wheel_np, np_inc).replace(wheel_py, py_inc)
    # Any remaining numpy include dir of the builder (other layouts) -> this numpy.
    import re
    new = re.sub(r"/opt/python/cp311-cp311/[^;\"\s]*numpy[^;\"\s]*/include", np_inc, new)
    path.write_text(new)
    fixed += 1
print(f"  rewrote {fixed} files")
PY
    mark_current cmake-fix done
fi

# 4. wmpo_interfaces, generated and installed straight into the venv.
iface_hash="$(inputs_hash "$ROOT"/src/wmpo_interfaces/{CMakeLists.txt,package.xml} \
    "$ROOT"/src/wmpo_interfaces/{msg,srv,action}/*)"
if ! is_current interfaces "$iface_hash"; then
    log "cmake: building wmpo_interfaces into the venv"
    rm -rf "$BUILD/wmpo_interfaces"; mkdir -p "$BUILD"
    (
        export AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
        cmake -S "$ROOT/src/wmpo_interfaces" -B "$BUILD/wmpo_interfaces" \
            -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
            -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF >"$BUILD/interfaces.log" 2>&1 \
            && cmake --build "$BUILD/wmpo_interfaces" -j "$(nproc)" >>"$BUILD/interfaces.log" 2>&1 \
            && cmake --install "$BUILD/wmpo_interfaces" >>"$BUILD/interfaces.log" 2>&1
    ) || { tail -40 "$BUILD/interfaces.log"; log "interface build failed (full log: $BUILD/interfaces.log)"; exit 1; }
    mark_current interfaces "$iface_hash"
fi

# 5. The project's ament_python packages, editable, so that source edits take effect at once.
src_hash="$(inputs_hash "$ROOT"/src/*/setup.py "$ROOT"/src/*/setup.cfg)"
if ! is_current packages "$src_hash"; then
    log "pip: installing the project's packages (editable)"
    args=()
    for pkg in "${PY_PACKAGES[@]}"; do args+=(-e "$ROOT/src/$pkg"); done
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation --use-pep517 \
        "${args[@]}" 2> >(grep -v "is ignored: it is neither" >&2)
    mark_current packages "$src_hash"
fi

AMENT_PREFIX_PATH="$VENV" "$VENV/bin/python" -c "import rclpy, wmpo_interfaces.msg, robosuite" \
    2> >(grep -v "^\[robosuite WARNING\]" >&2) || { log "environment check failed"; exit 1; }
log "environment ready: $VENV"
