#!/usr/bin/env bash
# What the audit/admin tests need: openapi-spec-validator (PyPI) in the project's virtualenv .ci/venv,
# which scripts/test puts on PATH. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=0.9.0
if [ -x .ci/venv/bin/openapi-spec-validator ] && .ci/venv/bin/pip show openapi-spec-validator 2>/dev/null | grep -qx "Version: $VERSION"; then
  exit 0
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3 python3-venv
fi
[ -x .ci/venv/bin/pip ] || python3 -m venv .ci/venv
.ci/venv/bin/pip install -q "openapi-spec-validator==$VERSION"
