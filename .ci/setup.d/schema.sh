#!/usr/bin/env bash
# What the admin API's schema test needs: schemathesis (pinned) in the project's virtualenv (.ci/venv),
# which runs the served OpenAPI document against a real gateway. Idempotent: a second run checks the
# version and returns.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=4.32.5
if ! .ci/venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('schemathesis') != '$version')" 2>/dev/null; then
  [ -x .ci/venv/bin/python ] || python3 -m venv .ci/venv
  .ci/venv/bin/pip install -q --disable-pip-version-check "schemathesis==$version"
fi
