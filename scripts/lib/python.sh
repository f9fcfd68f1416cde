# Python tools for the test suite (schemathesis against the OpenAPI document, the
# Prometheus text parser for /metrics), in a venv of their own: installed when missing,
# quietly. Sourced after setup.sh, not run.

# Pinned: the versions the suite was written against (both install from PyPI as wheels).
SLUICE_PY_SCHEMATHESIS_VERSION=4.32.5
SLUICE_PY_PROMETHEUS_CLIENT_VERSION=0.26.0

# Creates a venv at DIR when there is none and installs what it misses; prints one line.
# Afterwards DIR/bin/python and DIR/bin/schemathesis (also DIR/bin/st) are there.
sluice_python_tools() {
  local dir="${1:?usage: sluice_python_tools DIR}"
  local log=/tmp/sluice-python.log
  if ! command -v python3 >/dev/null 2>&1; then
    sluice_apt_install python3 python3-venv || return 1
  fi
  if [ ! -x "$dir/bin/python" ] || ! "$dir/bin/python" -c 'import sys' >/dev/null 2>&1; then
    # Debian's python3 ships without ensurepip: venv needs python3-venv.
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
      sluice_apt_install python3-venv || return 1
    fi
    rm -rf "$dir"
    if ! python3 -m venv "$dir" >"$log" 2>&1; then
      echo "error: python3 -m venv $dir failed; see $log" >&2
      tail -20 "$log" >&2
      return 1
    fi
  fi
  local py="$dir/bin/python"
  local wanted=()
  # Installed and at the pinned version, or installed again.
  if ! "$py" -c "import importlib.metadata as m, schemathesis; assert m.version('schemathesis') == '$SLUICE_PY_SCHEMATHESIS_VERSION'" >/dev/null 2>&1; then
    wanted+=("schemathesis==$SLUICE_PY_SCHEMATHESIS_VERSION")
  fi
  if ! "$py" -c "import importlib.metadata as m, prometheus_client; assert m.version('prometheus_client') == '$SLUICE_PY_PROMETHEUS_CLIENT_VERSION'" >/dev/null 2>&1; then
    wanted+=("prometheus_client==$SLUICE_PY_PROMETHEUS_CLIENT_VERSION")
  fi
  if [ ${#wanted[@]} -gt 0 ]; then
    echo "installing (pip): ${wanted[*]}" >&2
    if ! "$py" -m pip install --quiet --disable-pip-version-check --no-input "${wanted[@]}" >"$log" 2>&1; then
      echo "error: pip install ${wanted[*]} failed; see $log" >&2
      tail -20 "$log" >&2
      return 1
    fi
  fi
  echo "python tools: schemathesis $SLUICE_PY_SCHEMATHESIS_VERSION, prometheus_client $SLUICE_PY_PROMETHEUS_CLIENT_VERSION in $dir" >&2
}
