# Shared by scripts/run, scripts/test and scripts/bench: install what is missing, quietly.
# Sourced, not run.

sluice_root() {
  cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd
}

# Installs Debian packages that are not installed yet. Needs root (or sudo).
sluice_apt_install() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$pkg")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "error: missing packages ${missing[*]} and not root; install them first" >&2
      return 1
    fi
  fi
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Several of these packages start a system service when installed under systemd (nginx and
  # caddy on :80, redis-server on :6379, prometheus on :9090, Sluice's default admin port).
  # The scripts start their own servers on their own ports, so none is started here: a
  # policy-rc.d that refuses every start, for this install only, unless the machine has one.
  local policy=/usr/sbin/policy-rc.d
  local made_policy=""
  if [ ! -e "$policy" ]; then
    $sudo sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy" && made_policy=1
  fi
  local status=0
  if ! $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/sluice-apt.log 2>&1; then
    $sudo apt-get update -qq >/tmp/sluice-apt.log 2>&1 || true
    if ! $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >>/tmp/sluice-apt.log 2>&1; then
      echo "error: apt-get install ${missing[*]} failed; see /tmp/sluice-apt.log" >&2
      tail -20 /tmp/sluice-apt.log >&2
      status=1
    fi
  fi
  if [ -n "$made_policy" ]; then
    $sudo rm -f "$policy"
  fi
  return $status
}

# Packages every Sluice build and test needs.
SLUICE_APT_PACKAGES=(libhiredis-dev pkg-config redis-server redis-tools)

# What the test suite adds: the gateways it puts in front of Sluice (nginx with auth_request, Caddy, HAProxy with Lua).
SLUICE_TEST_APT_PACKAGES=(nginx-light caddy haproxy prometheus)  # prometheus: promtool, for the /metrics format test

# The Debian redis-server package starts a system service where systemd runs; Sluice's
# scripts never rely on it: they start their own servers on their own ports.

sluice_require_swift() {
  if ! command -v swift >/dev/null 2>&1; then
    if [ -x /opt/swift/usr/bin/swift ]; then
      export PATH="/opt/swift/usr/bin:$PATH"
    else
      echo "error: swift is not on PATH; install the Swift 6 toolchain" >&2
      return 1
    fi
  fi
}

# A free TCP port on 127.0.0.1.
sluice_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
