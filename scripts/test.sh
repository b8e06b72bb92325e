#!/usr/bin/env bash
# The project's test command (README "Run the tests"; .ci/run runs exactly this).
# Creates .venv if needed, installs driveferry with its test extras, makes sure a PostgreSQL server
# binary is available for the multi-worker journal tests (Debian package `postgresql`; the tests
# start their own throwaway cluster), Chromium for the HTML report test (Debian package `chromium`) and
# rclone, fuse3 and aria2 for the interop tests, then runs ruff, mypy --strict and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --disable-pip-version-check -e '.[test]'

have_pg() {
  command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}
if ! have_pg; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing PostgreSQL (Debian package) for the journal tests..."
    # The tests need only the server binaries (initdb, pg_ctl under /usr/lib/postgresql/*/bin) and the
    # `postgres` user the package creates (initdb refuses root); they start their own throwaway cluster.
    # No default cluster: it would take port 5432 and try to start a service in a container.
    mkdir -p /etc/postgresql-common/createcluster.d
    echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/driveferry.conf
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      postgresql >/dev/null) \
      || echo "warning: could not install PostgreSQL; its tests will skip (they fail under CI=true)"
  else
    echo "note: no PostgreSQL server binaries; PostgreSQL journal tests will skip (they fail under CI=true)"
  fi
fi

have_chromium() {
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
    || command -v google-chrome >/dev/null 2>&1
}
if ! have_chromium; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Chromium (Debian package) for the HTML report test..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "warning: could not install Chromium; the HTML report test will skip (it fails under CI=true)"
  else
    echo "note: no chromium binary; the HTML report test will skip (it fails under CI=true)"
  fi
fi

# Clients no one here wrote, for the interop tests (tests/interop): rclone against the emulator through its
# CONNECT proxy, its FUSE mount (fuse3), and aria2 (Debian packages rclone, fuse3, aria2).
missing_tools=()
command -v rclone >/dev/null 2>&1 || missing_tools+=(rclone)
command -v fusermount3 >/dev/null 2>&1 || missing_tools+=(fuse3)
command -v aria2c >/dev/null 2>&1 || missing_tools+=(aria2)
if [ ${#missing_tools[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing_tools[*]} (Debian packages) for the interop tests..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing_tools[@]}" >/dev/null) \
      || echo "warning: could not install ${missing_tools[*]}; their tests will skip (they fail under CI=true)"
  else
    echo "note: no ${missing_tools[*]}; their interop tests will skip (they fail under CI=true)"
  fi
fi

ruff check src tests benchmarks
mypy
pytest "$@"
