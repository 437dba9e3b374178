#!/usr/bin/env bash
# Packages the SmartTLS tests need:
#  - testssl.sh (command `testssl`): the independent oracle for the protocol cross-check and the bench;
#  - python3 with the standard `ssl` module (system OpenSSL): the TLS 1.0-only legacy STARTTLS test server
#    (tests/legacy_smtp_server.py uses only the standard library, so no pip packages are needed);
#  - openssl: the CLI is handy when debugging the test PKI;
#  - unbound: the real validating resolver the testkit puts between the prober and the signed test zones
#    (tests/validating_resolver.rs; required: without it those tests fail under CI).
set -euo pipefail
need=()
command -v testssl >/dev/null || need+=(testssl.sh)
command -v python3 >/dev/null || need+=(python3)
command -v openssl >/dev/null || need+=(openssl)
[ -x /usr/sbin/unbound ] || command -v unbound >/dev/null || need+=(unbound)
# testssl.sh needs these helpers at run time (normally present on Debian; cheap to make sure).
command -v hexdump >/dev/null || need+=(bsdextrautils)
command -v dig >/dev/null || need+=(bind9-dnsutils)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
  # Never start daemons on install (Debian's policy-rc.d convention).
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null; $SUDO chmod +x /usr/sbin/policy-rc.d; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
