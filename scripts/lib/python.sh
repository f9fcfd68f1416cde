# Python tools for the test suite, in a venv of their own: schemathesis (runs the OpenAPI
# document openapi/sluice.yaml against a live server) and prometheus_client (parses
# /metrics, see Tests/IntegrationTests/Support/parse_metrics.py). Installed when missing,
# quietly. Sourced after setup.sh, not run.

# Pinned: what the suite was written against; both install from PyPI as wheels.
SLUICE_PY_SCHEMATHESIS_VERSION=4.32.5
SLUICE_PY_PROMETHEUS_CLIENT_VERSION=0.26.0

# Makes DIR a venv holding the pinned tools: creates it when it is missing or broken,
# pip-installs only what its python cannot import at the pinned version. Prints one line.
# Then DIR/bin/python, DIR/bin/schemathesis and DIR/bin/st are there.
sluice_python_tools() {
  local dir="${1:?usage: sluice_python_tools DIR}"
  local log=/tmp/sluice-python.log
  if ! command -v python3 >/dev/null 2>&1; then
    sluice_apt_install python3 python3-venv || return 1
  fi
  if ! "$dir/bin/python" -c 'import sys' >/dev/null 2>&1; then
    if [ -e "$dir" ] && [ ! -f "$dir/pyvenv.cfg" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
      echo "error: $dir exists and is not a venv; remove it or pick another directory" >&2
      return 1
    fi
    # Debian's python3 comes without ensurepip, which venv needs: python3-venv has it.
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
      sluice_apt_install python3-venv || return 1
    fi
    if ! python3 -m venv --clear "$dir" >"$log" 2>&1; then
      echo "error: python3 -m venv $dir failed; see $log" >&2
      tail -20 "$log" >&2
      return 1
    fi
  fi
  local missing
  missing="$("$dir/bin/python" - "$SLUICE_PY_SCHEMATHESIS_VERSION" "$SLUICE_PY_PROMETHEUS_CLIENT_VERSION" 2>/dev/null <<'PY'
import importlib, importlib.metadata, sys
for module, dist, version in (("schemathesis", "schemathesis", sys.argv[1]),
                              ("prometheus_client", "prometheus_client", sys.argv[2])):
    try:
        importlib.import_module(module)
        ok = importlib.metadata.version(dist) == version
    except Exception:
        ok = False
    if not ok:
        print(f"{dist}=={version}")
PY
)" || missing="schemathesis==$SLUICE_PY_SCHEMATHESIS_VERSION prometheus_client==$SLUICE_PY_PROMETHEUS_CLIENT_VERSION"
  local verb="ready"
  if [ -n "$missing" ]; then
    # shellcheck disable=SC2086 # one requirement per word
    if ! "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input $missing >"$log" 2>&1; then
      echo "error: pip install $(echo $missing) failed; see $log" >&2
      tail -20 "$log" >&2
      return 1
    fi
    verb="installed"
  fi
  echo "python tools $verb: schemathesis $SLUICE_PY_SCHEMATHESIS_VERSION, prometheus_client $SLUICE_PY_PROMETHEUS_CLIENT_VERSION ($dir)" >&2
}
