#!/usr/bin/env bash
# What the portal's accessibility run needs: axe-core from the npm registry (tests/a11y, pinned by its
# package-lock.json) and Node's npm to install it. Chromium itself comes from challenge.sh. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v npm >/dev/null; then
  SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi
if [ ! -f tests/a11y/node_modules/axe-core/axe.min.js ]; then
  (cd tests/a11y && npm ci --no-audit --no-fund --ignore-scripts)
fi
