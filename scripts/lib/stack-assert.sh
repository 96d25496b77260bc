#!/usr/bin/env bash
# `scripts/stack-test.sh up`: the assertions, all through 127.0.0.1 or `docker exec`.
# Sourced by scripts/stack-test.sh (needs lib/common.sh and lib/stack-up.sh).

STACK_CA_FILE="$STACK_STATE_DIR/acme-root.pem"

# curl over HTTPS through Traefik on 127.0.0.1, trusting only the ACME server's root.
https_curl() {
  local host="${HTTPS_HOST:-$STACK_DOMAIN}"
  curl -sS --max-time 10 --cacert "$STACK_CA_FILE" --resolve "$host:443:127.0.0.1" "$@"
}

# The id of a running container of stack service <short name>.
stack_container() {
  docker ps -q --filter "label=com.docker.swarm.service.name=${STACK_NAME}_$1" --filter status=running | head -1
}

# The certificate for the host name was issued over ACME by Pebble and verifies with its root.
assert_certificate() {
  local status details
  status="$(https_curl -o /dev/null -w '%{http_code}' "https://$STACK_DOMAIN/health")"
  [[ "$status" == 200 ]] || die "GET https://$STACK_DOMAIN/health with Pebble's root: $status"
  details="$(openssl s_client -connect 127.0.0.1:443 -servername "$STACK_DOMAIN" </dev/null 2>/dev/null |
    openssl x509 -noout -issuer -ext subjectAltName -text)"
  grep -q 'issuer=.*Pebble' <<<"$details" || die "certificate not issued by Pebble: $details"
  grep -q "DNS:$STACK_DOMAIN" <<<"$details" || die "certificate not for $STACK_DOMAIN: $details"
  # keyType EC256: a handshake costs Traefik an ECDSA P-256 signature, not an RSA-4096 one (~200x the CPU)
  grep -q 'Public Key Algorithm: id-ecPublicKey' <<<"$details" || die "certificate key is not ECDSA: $details"
  log "OK certificate for $STACK_DOMAIN (ECDSA key) issued over ACME by Pebble ($(grep issuer <<<"$details"))"
}

# Plain HTTP answers with a permanent redirect to the same URL over HTTPS.
assert_redirect() {
  local answer
  answer="$(curl -sS --max-time 10 -o /dev/null -w '%{http_code} %{redirect_url}' \
    --resolve "$STACK_DOMAIN:80:127.0.0.1" "http://$STACK_DOMAIN/public")"
  [[ "$answer" =~ ^30[18]\ https://$STACK_DOMAIN/public$ ]] || die "HTTP is not redirected to HTTPS: $answer"
  log "OK http://$STACK_DOMAIN/public -> $answer"
}

# Requests spread over all 3 replicas (X-Served-By), which echo X-Request-ID and log it.
assert_replicas_serve() {
  local i headers served_by=() first_id="stack-test-$$-1" first_host=""
  for ((i = 1; i <= 30; i++)); do
    headers="$(https_curl -o /dev/null -D - -H "X-Request-ID: stack-test-$$-$i" "https://$STACK_DOMAIN/api/latest")"
    grep -qi "^x-request-id: stack-test-$$-$i" <<<"$headers" || die "X-Request-ID not echoed: $headers"
    served_by+=("$(sed -n 's/^[Xx]-[Ss]erved-[Bb]y: *\([^[:space:]]*\).*/\1/p' <<<"$headers")")
  done
  first_host="${served_by[0]}"
  local distinct
  distinct="$(printf '%s\n' "${served_by[@]}" | sort -u | grep -c .)"
  ((distinct == 3)) || die "30 requests were served by $distinct replica(s), expected 3: ${served_by[*]}"
  # That replica's own log line for the first request, via `docker logs` of its container
  # (bounded; `docker service logs` can hang on tasks whose containers are gone).
  local container logged=""
  container="$(docker ps -q --no-trunc --filter "id=$first_host" --filter "label=com.docker.swarm.service.name=${STACK_NAME}_app")"
  if [[ -n "$container" ]]; then
    logged="$(timeout 20 docker logs --since 10m "$container" 2>&1 | grep -F "$first_id" || true)"
  fi
  [[ "$logged" == *"\"host\": \"$first_host\""* ]] || die "request $first_id not logged by replica $first_host"
  log "OK 30 requests spread over $distinct replicas ($(printf '%s\n' "${served_by[@]}" | sort | uniq -c | xargs))"
}

# Only Traefik publishes ports (80 and 443, host mode); every other service publishes nothing.
assert_only_traefik_publishes() {
  local service ports services
  services="$(docker service ls --format '{{.Name}}' --filter "label=com.docker.stack.namespace=$STACK_NAME")"
  # Alertmanager and the exporters must be among them (and so publish nothing).
  for service in alertmanager node-exporter postgres-exporter; do
    grep -qx "${STACK_NAME}_$service" <<<"$services" || die "${STACK_NAME}_$service is not deployed"
  done
  for service in $services; do
    ports="$(docker service inspect --format \
      '{{range .Spec.EndpointSpec.Ports}}{{.PublishedPort}}/{{.PublishMode}} {{end}}' "$service" | xargs)"
    if [[ "$service" == "${STACK_NAME}_traefik" ]]; then
      [[ "$ports" == "80/host 443/host" ]] || die "traefik publishes '$ports', expected '80/host 443/host'"
    else
      [[ -z "$ports" ]] || die "$service publishes $ports; only Traefik may"
    fi
  done
  log "OK only ${STACK_NAME}_traefik publishes ports (80/host 443/host); alertmanager and the exporters publish none"
}

# The Traefik dashboard is behind basic auth.
assert_dashboard_auth() {
  local host="traefik.$STACK_DOMAIN" url anonymous authorised password
  url="https://$host/dashboard/"
  password="$(cat "$STACK_STATE_DIR/secrets/traefik_dashboard_password")"
  # Pebble issues this host's certificate when Traefik first sees its router: allow 30 s.
  local i
  for ((i = 0; i < 15; i++)); do
    HTTPS_HOST="$host" https_curl -o /dev/null "$url" 2>/dev/null && break
    sleep 2
  done
  anonymous="$(HTTPS_HOST="$host" https_curl -o /dev/null -w '%{http_code}' "$url")"
  authorised="$(HTTPS_HOST="$host" https_curl -o /dev/null -w '%{http_code}' -u "admin:$password" "$url")"
  [[ "$anonymous" == 401 && "$authorised" == 200 ]] ||
    die "dashboard: anonymous $anonymous (want 401), with credentials $authorised (want 200)"
  log "OK Traefik dashboard: 401 without credentials, 200 with"
}

# Register a user and post messages through the simulator API (real writes through Traefik).
post_through_api() {
  local user="stacktest$$" auth i status
  auth="$(simulator_default_auth)"
  status="$(https_curl -o /dev/null -w '%{http_code}' -u "$auth" -H 'Content-Type: application/json' \
    -d "{\"username\": \"$user\", \"email\": \"$user@example.org\", \"pwd\": \"pw-$user\"}" \
    "https://$STACK_DOMAIN/api/register?latest=1")"
  [[ "$status" == 204 ]] || die "POST /api/register answered $status"
  for ((i = 1; i <= 3; i++)); do
    status="$(https_curl -o /dev/null -w '%{http_code}' -u "$auth" -H 'Content-Type: application/json' \
      -d "{\"content\": \"stack test message $i\"}" "https://$STACK_DOMAIN/api/msgs/$user?latest=$((i + 1))")"
    [[ "$status" == 204 ]] || die "POST /api/msgs/$user answered $status"
  done
}

# A 5 MB body to the API (over the app's 64 KiB, under Traefik's body-limit of 10 MiB) gets the
# app's 413 JSON through Traefik, not a reset connection; over 10 MiB, Traefik's own 413.
assert_body_limits() {
  local auth url="https://$STACK_DOMAIN/api/msgs/stacktest$$" answer
  auth="$(simulator_default_auth)"
  answer="$(head -c 5000000 /dev/zero | tr '\0' x | https_curl -u "$auth" -H 'Content-Type: application/json' \
    --data-binary @- -w ' %{http_code}' "$url")" || die "a 5 MB POST through Traefik failed: $answer"
  [[ "$answer" == '{"error_msg":"The request body is too large.","status":413}'*' 413' ]] ||
    die "a 5 MB POST through Traefik answered: ${answer:0:200}"
  # Traefik answers 413 once it has read 10 MiB and closes, so curl may still be sending and exit
  # with a broken pipe after reading the answer: the status it read is what counts here.
  answer="$(head -c 11000000 /dev/zero | https_curl -u "$auth" -H 'Content-Type: application/json' \
    --data-binary @- -o /dev/null -w '%{http_code}' "$url")" || true
  [[ "$answer" == 413 ]] || die "an 11 MB POST through Traefik answered ${answer:-nothing}, not Traefik's 413"
  log "body limits: 5 MB -> the app's 413 JSON, 11 MB -> Traefik's 413"
}

# The project's own suites against the deployed URL: the API contract, then the browser e2e.
run_project_suites() {
  log "API contract suite against https://$STACK_DOMAIN/api"
  MINITWIT_API_URL="https://$STACK_DOMAIN/api" MINITWIT_CA_BUNDLE="$STACK_CA_FILE" \
    timeout 600 "$REPO_ROOT/.venv/bin/pytest" -q -p no:cacheprovider tests/app/test_api_contract.py ||
    die "API contract suite failed against the deployment"
  log "e2e suite against https://$STACK_DOMAIN"
  E2E_BASE_URL="https://$STACK_DOMAIN" E2E_CA_BUNDLE="$STACK_CA_FILE" \
    E2E_HOST_RESOLVER_RULES="MAP $STACK_DOMAIN 127.0.0.1" \
    timeout 1200 scripts/e2e.sh || die "e2e suite failed against the deployment"
}
