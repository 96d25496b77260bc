#!/usr/bin/env bash
# Make a throwaway CA and a TLS certificate for the host name "pebble" (Pebble's own HTTPS
# listener) into <dir>: ca.pem (Traefik trusts it via LEGO_CA_CERTIFICATES), cert.pem, key.pem.
# Pebble ships no certificates of its own; these exist for one CI run and are never committed.
# Usage: docker/ci/pebble/make-certs.sh <dir>
set -euo pipefail

dir="${1:?usage: make-certs.sh <dir>}"
mkdir -p "$dir"
cd "$dir"

openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=MiniTwit CI Pebble CA" \
    -keyout ca-key.pem -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=pebble" -keyout key.pem -out cert.csr 2>/dev/null
openssl x509 -req -in cert.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 7 \
    -extfile <(printf 'subjectAltName=DNS:pebble,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n') \
    -out cert.pem 2>/dev/null
# Pebble runs as nobody and reads the key from a Swarm secret (mode 0444 by default).
chmod 0644 key.pem
rm -f cert.csr ca.srl ca-key.pem
echo "Pebble certificates in $dir: ca.pem cert.pem key.pem"
