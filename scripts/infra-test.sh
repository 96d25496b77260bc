#!/usr/bin/env bash
# Prove ansible/playbooks/infra.yml against a local AWS API: moto's server on loopback
# (testkit/aws.py). Three lanes at once, each in its own region:
#   main      create; a second run with changed=0 and, meanwhile, the aws_ec2 inventory (groups,
#             first manager, addresses: what was created); destroy; then every resource kind is
#             listed: the account is as it was before, to the record;
#   partial   a create killed once its first instance exists, then destroy: the same check;
#   refusals  an unconfirmed destroy without credentials; SSH open to the world, a region without
#             the image and a domain without a hosted zone: refused, nothing changed.
# Prints what it created and its times; non-zero on any miss.
#
#   scripts/infra-test.sh
#
# Logs: artifacts/infra-test/. Traffic goes to 127.0.0.1 only: throwaway credentials, the instance
# metadata service off, and every other address behind a dead proxy.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/venv.sh
source "$REPO_ROOT/scripts/lib/venv.sh"
cd "$REPO_ROOT"
started=$SECONDS

LOG_DIR="$REPO_ROOT/artifacts/infra-test"
PROJECT=minitwit ENVIRONMENT=production
MAIN_REGION=eu-west-1 PARTIAL_REGION=eu-central-1 NO_IMAGE_REGION=ap-southeast-2
MAIN_ZONE=minitwit-infra.test PARTIAL_ZONE=minitwit-partial.test
# Ours after create: 3 instances with a root and a data volume each, the group, the key, the address.
MAIN_EXPECTED="elastic-ip=1 instance=3 key-pair=1 security-group=1 volume=6"

ensure_venv requirements-dev.txt
for tool in moto_server ansible-playbook ansible-inventory ansible; do
  [ -x ".venv/bin/$tool" ] || { skip_or_fail "$tool not installed (pip install -r requirements-dev.txt)"; exit 0; }
done
command -v ssh-keygen >/dev/null || { skip_or_fail "ssh-keygen not installed (apt-get install openssh-client)"; exit 0; }

rm -rf "$LOG_DIR" && mkdir -p "$LOG_DIR"/{main,partial,refusals}
secrets="$(mktemp -d)"
moto_pid=""
cleanup() {
  [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null
  rm -rf "$secrets"
}
trap cleanup EXIT

# --- The local AWS, and an environment that can reach nothing else.
port="$(.venv/bin/python -c 'from testkit.ports import free_port; print(free_port())')"
.venv/bin/python -m testkit.aws serve "$port" "$MAIN_REGION" "$PARTIAL_REGION" >"$LOG_DIR/moto.log" 2>&1 &
moto_pid=$!
retry 100 0.1 bash -c "echo >/dev/tcp/127.0.0.1/$port" 2>/dev/null || die "moto did not listen on port $port"
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_URL AWS_CA_BUNDLE
printf '[minitwit-infra-test]\naws_access_key_id = testing\naws_secret_access_key = testing\n' >"$secrets/credentials"
export AWS_SHARED_CREDENTIALS_FILE="$secrets/credentials" AWS_CONFIG_FILE="$secrets/config"
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_EC2_METADATA_DISABLED=true
export HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY=127.0.0.1 no_proxy=127.0.0.1
export ANSIBLE_NOCOLOR=1 PYTHONWARNINGS=ignore::DeprecationWarning
ssh-keygen -q -t ed25519 -N "" -C minitwit-infra-test -f "$secrets/id_ed25519"

aws_py() { .venv/bin/python -m testkit.aws "$@"; }
# infra <log> <extra vars file> [args...]: infra.yml with the aws inventory, as an operator runs it.
infra() {
  local log="$1" vars="$2"
  shift 2
  timeout 300 .venv/bin/ansible-playbook ansible/playbooks/infra.yml -i ansible/inventories/aws -e "@$vars" "$@" >"$log" 2>&1
}
recap() { grep -A1 '^PLAY RECAP' "$1" | tail -1; }
# vars_file <path> <domain> <managers> <workers> [cidr]: the operator's settings for a lane.
vars_file() {
  printf 'minitwit_domain: %s\ninfra_managers: %s\ninfra_workers: %s\ninfra_ssh_admin_cidrs: ["%s"]\ninfra_ssh_public_key_file: %s\n' \
    "$2" "$3" "$4" "${5:-198.51.100.7/32}" "$secrets/id_ed25519.pub" >"$1"
}
# kinds < file: "kind=count ..." of a `testkit.aws tagged` answer.
kinds() {
  .venv/bin/python -c 'import json, sys; print(" ".join(f"{k}={len(v)}" for k, v in sorted(json.load(sys.stdin).items())))'
}
# timed <name> <file> <command>...: run it; append "name seconds" to file; keep its status.
timed() {
  local name="$1" file="$2" t0=$SECONDS status=0
  shift 2
  "$@" || status=$?
  echo "$name $((SECONDS - t0))s" >>"$file"
  return "$status"
}
fail() {
  log "FAILED: $*"
  exit 1
}
# inventory_view: on one line, what the playbooks see through the aws inventory: the swarm
# groups in order, the first manager, every node as name=address/private-address.
inventory_view() {
  local view="managers={{ groups.swarm_managers | join(',') }} first={{ groups.swarm_managers[0] }}"
  view+=" workers={{ groups.swarm_workers | join(',') }} nodes={% for h in groups.aws_ec2 | sort %}"
  view+="{{ h }}={{ hostvars[h].ansible_host }}/{{ hostvars[h].private_ip_address }},{% endfor %}"
  ANSIBLE_CALLBACK_RESULT_FORMAT=json .venv/bin/ansible localhost -i ansible/inventories/aws \
    -m ansible.builtin.debug -a "{\"msg\": \"$view\"}" 2>/dev/null | sed -n 's/^ *"msg": "\(.*\)"$/\1/p'
}

# --- Lane main: create, second run, inventory, destroy; the account as before.
# check_inventory <dir>: the groups and addresses the inventory gives are the instances created.
check_inventory() {
  local dir="$1" name="$PROJECT-$ENVIRONMENT" created expected seen
  created="$(awk '{printf "%s=%s/%s,", $1, $4, $5}' "$dir/nodes.txt")"
  expected="managers=$name-1,$name-2 first=$name-1 workers=$name-3 nodes=$created"
  seen="$(inventory_view)"
  [ "$seen" = "$expected" ] || fail "the inventory gives: $seen; EC2 has: $expected"
  echo "inventory: $seen" >>"$dir/checks.txt"
}

lane_main() {
  local dir="$LOG_DIR/main" address names=(
    "$MAIN_ZONE" "grafana.$MAIN_ZONE" "traefik.$MAIN_ZONE"
  )
  export AWS_PROFILE=minitwit-infra-test AWS_REGION="$MAIN_REGION"
  vars_file "$dir/vars.yml" "$MAIN_ZONE" 2 1
  aws_py seed "$MAIN_REGION" "$MAIN_ZONE"
  aws_py snapshot "$MAIN_REGION" "$MAIN_ZONE" >"$dir/before.json"

  timed create "$dir/times.txt" infra "$dir/create.log" "$dir/vars.yml" || fail "create: $(recap "$dir/create.log")"
  aws_py tagged "$MAIN_REGION" "$PROJECT" "$ENVIRONMENT" >"$dir/created.json"
  [ "$(kinds <"$dir/created.json")" = "$MAIN_EXPECTED" ] || fail "created $(kinds <"$dir/created.json"), expected $MAIN_EXPECTED"
  aws_py nodes "$MAIN_REGION" "$PROJECT" "$ENVIRONMENT" >"$dir/nodes.txt"
  address="$(awk '$3 == "true" {print $4}' "$dir/nodes.txt")"
  aws_py snapshot "$MAIN_REGION" "$MAIN_ZONE" >"$dir/created-all.json"
  for name in "${names[@]}"; do
    grep -qF "\"$name. A ['$address']\"" "$dir/created-all.json" || fail "no A record $name -> $address"
  done
  echo "created: $(kinds <"$dir/created.json") dns-record=3 (A -> $address)" >>"$dir/checks.txt"
  # What cloud-init gets on node 1, as Ansible rendered it: the account, the key, the data volume.
  aws_py user-data "$MAIN_REGION" "$PROJECT-$ENVIRONMENT-1" >"$dir/user-data-1.yml"
  .venv/bin/python - "$dir/user-data-1.yml" "$dir/created.json" "$secrets/id_ed25519.pub" <<'EOF' \
    || fail "the user data of node 1 is not the account and volume it should set up ($dir/user-data-1.yml)"
import json, sys, yaml
text, created, key = (open(path).read() for path in sys.argv[1:])
config = yaml.safe_load(text)
[user], [command] = config["users"], config["runcmd"]
assert text.startswith("#cloud-config\n") and user["name"] == "deploy" and user["ssh_authorized_keys"] == [key.strip()]
assert command[1] in json.loads(created)["volume"] and command[-1] == "/var/lib/docker/volumes"
EOF
  echo "user data of node 1: the deploy account with the key, its data volume by id" >>"$dir/checks.txt"

  # The second run, and meanwhile the inventory.
  timed second-run "$dir/times.txt" infra "$dir/again.log" "$dir/vars.yml" &
  local again=$!
  check_inventory "$dir"
  wait "$again" || fail "second run: $(recap "$dir/again.log")"
  recap "$dir/again.log" | grep -qE 'changed=0 .*failed=0' || fail "second run changed something: $(recap "$dir/again.log")"
  [ "$(aws_py tagged "$MAIN_REGION" "$PROJECT" "$ENVIRONMENT")" = "$(cat "$dir/created.json")" ] \
    || fail "the second run changed the resources"
  echo "second run: $(recap "$dir/again.log" | sed 's/  */ /g')" >>"$dir/checks.txt"

  timed destroy "$dir/times.txt" infra "$dir/destroy.log" "$dir/vars.yml" -e infra_state=absent \
    -e "infra_destroy_confirm=$ENVIRONMENT" || fail "destroy: $(recap "$dir/destroy.log")"
  aws_py snapshot "$MAIN_REGION" "$MAIN_ZONE" >"$dir/after.json"
  diff -u "$dir/before.json" "$dir/after.json" >&2 || fail "after destroy the account differs from before (diff above)"
  [ "$(aws_py tagged eu-north-1 "$PROJECT" "$ENVIRONMENT")" = "{}" ] || fail "resources in eu-north-1: AWS_REGION ignored"
  echo "destroyed: every kind listed, as before create (untagged and staging resources kept)" >>"$dir/checks.txt"
}

# --- Lane partial: a create killed after its first instance, then destroy.
lane_partial() {
  local dir="$LOG_DIR/partial" pid t0=$SECONDS
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION="$PARTIAL_REGION"
  vars_file "$dir/vars.yml" "$PARTIAL_ZONE" 1 1
  aws_py seed "$PARTIAL_REGION" "$PARTIAL_ZONE"
  aws_py snapshot "$PARTIAL_REGION" "$PARTIAL_ZONE" >"$dir/before.json"
  setsid timeout 300 .venv/bin/ansible-playbook ansible/playbooks/infra.yml -i ansible/inventories/aws \
    -e "@$dir/vars.yml" >"$dir/create.log" 2>&1 &
  pid=$!
  aws_py wait-for "$PARTIAL_REGION" "$PROJECT" "$ENVIRONMENT" instance || fail "no instance appeared"
  kill -KILL -- "-$pid"
  wait "$pid" 2>/dev/null || true
  echo "create-until-killed $((SECONDS - t0))s" >>"$dir/times.txt"
  aws_py tagged "$PARTIAL_REGION" "$PROJECT" "$ENVIRONMENT" >"$dir/interrupted.json"
  if ! grep -q '"instance"' "$dir/interrupted.json" || grep -q '"elastic-ip"' "$dir/interrupted.json"; then
    fail "the interrupted create was not partial: $(kinds <"$dir/interrupted.json")"
  fi
  echo "interrupted create left: $(kinds <"$dir/interrupted.json")" >>"$dir/checks.txt"

  timed destroy "$dir/times.txt" infra "$dir/destroy.log" "$dir/vars.yml" -e infra_state=absent \
    -e "infra_destroy_confirm=$ENVIRONMENT" || fail "destroy: $(recap "$dir/destroy.log")"
  aws_py snapshot "$PARTIAL_REGION" "$PARTIAL_ZONE" >"$dir/after.json"
  diff -u "$dir/before.json" "$dir/after.json" >&2 || fail "after destroy the account differs from before (diff above)"
  echo "destroyed: every kind listed, as before create" >>"$dir/checks.txt"
}

# --- Lane refusals: the preflight stops before anything is created, and says the way out.
# refused <log> <message>...: the run failed and said each message.
refused() {
  local log="$1" message
  shift
  grep -q 'INFRA PREFLIGHT REFUSED' "$log" || fail "no refusal in $log: $(recap "$log")"
  for message in "$@"; do
    grep -qF "$message" "$log" || fail "the refusal in $log does not say: $message"
  done
}

lane_refusals() {
  local dir="$LOG_DIR/refusals"
  vars_file "$dir/vars.yml" no-zone.test 1 0
  AWS_REGION="$MAIN_REGION" timed no-credentials "$dir/times.txt" infra "$dir/no-credentials.log" "$dir/vars.yml" \
    -e infra_state=absent && fail "destroy ran without credentials or confirmation"
  refused "$dir/no-credentials.log" "No usable AWS credentials" "export AWS_PROFILE" \
    "repeat with -e infra_destroy_confirm=$ENVIRONMENT"

  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION="$NO_IMAGE_REGION"
  vars_file "$dir/open-ssh.yml" no-zone.test 1 0 0.0.0.0/0
  aws_py snapshot "$NO_IMAGE_REGION" no-zone.test >"$dir/before.json"
  timed no-image-no-zone "$dir/times.txt" infra "$dir/no-image-no-zone.log" "$dir/open-ssh.yml" \
    && fail "ran without image and hosted zone"
  refused "$dir/no-image-no-zone.log" "holds 0.0.0.0/0" "No image in region $NO_IMAGE_REGION" "choose a region" \
    "no public hosted zone for no-zone.test" "aws route53 create-hosted-zone"
  aws_py snapshot "$NO_IMAGE_REGION" no-zone.test >"$dir/after.json"
  diff -u "$dir/before.json" "$dir/after.json" >&2 || fail "a refused run changed the account"
  echo "refused, nothing changed: an unconfirmed destroy without credentials; SSH from 0.0.0.0/0," \
    "a region without the image, a domain without a hosted zone (all listed at once)" >>"$dir/checks.txt"
}

# The main lane is the longest: the other two take the CPU it leaves (nice), not its share.
declare -A lane_pids
for lane in main partial refusals; do
  "lane_$lane" >"$LOG_DIR/$lane/lane.log" 2>&1 &
  lane_pids[$lane]=$!
  [ "$lane" = main ] || renice -n 10 -p "${lane_pids[$lane]}" >/dev/null
done
failed=()
for lane in main partial refusals; do
  wait "${lane_pids[$lane]}" || failed+=("$lane")
done

for lane in main partial refusals; do
  echo "== $lane ($(paste -sd' ' "$LOG_DIR/$lane/times.txt" 2>/dev/null))"
  cat "$LOG_DIR/$lane/checks.txt" 2>/dev/null || true
done
if ((${#failed[@]})); then
  for lane in "${failed[@]}"; do
    log "lane $lane failed; its log (artifacts/infra-test/$lane/):"
    tail -25 "$LOG_DIR/$lane/lane.log" >&2
  done
  die "infra-test FAILED (${failed[*]}) after $((SECONDS - started)) s"
fi
log "infra-test passed in $((SECONDS - started)) s"
