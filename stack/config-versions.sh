#!/usr/bin/env bash
# Print the content version of each group of Swarm configs in stack/minitwit.yml, one
# `NAME=value` line per group, ready for `set -a; eval "$(stack/config-versions.sh)"; set +a`.
#
# Scheme: version = first 12 hex digits of the SHA-256 of the group's files concatenated in
# the order listed below (dashboards sorted by name). Any change to a file gives its group a
# new version, hence new config names, hence a rolling update of the services using them.
set -euo pipefail
cd "$(dirname "$0")/.."

# version <file>...: the 12-digit content hash of the files, in order.
version() {
    cat "$@" | sha256sum | cut -c1-12
}

echo "TRAEFIK_CONFIG_VERSION=$(version traefik/traefik.yml traefik/dynamic/middlewares.yml traefik/dynamic/tls.yml)"
echo "PROMETHEUS_CONFIG_VERSION=$(version stack/prometheus/prometheus.yml \
    stack/prometheus/rules/recording.yml stack/prometheus/rules/alerts.yml \
    stack/prometheus/rules/infrastructure.yml)"
echo "ALERTMANAGER_CONFIG_VERSION=$(version stack/alertmanager/alertmanager.yml stack/alertmanager/ci_sink.py)"
echo "LOKI_CONFIG_VERSION=$(version stack/loki/loki.yml)"
echo "ALLOY_CONFIG_VERSION=$(version stack/alloy/config.alloy)"
mapfile -t dashboards < <(LC_ALL=C ls stack/grafana/dashboards/*.json)
echo "GRAFANA_CONFIG_VERSION=$(version stack/grafana/provisioning/datasources/datasources.yml \
    stack/grafana/provisioning/dashboards/dashboards.yml "${dashboards[@]}")"
