#!/usr/bin/env bash
# What the recipient-2FA tests need: moto's SNS server in the project's virtualenv (.ci/venv) and Debian's
# Chromium for the portal screenshots. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .ci/venv/bin/moto_server ]; then
  python3 -m venv .ci/venv
  .ci/venv/bin/pip install -q --disable-pip-version-check moto flask flask-cors
fi
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core
fi
