#!/usr/bin/env bash
# Lint the Ansible code: ansible-lint (production profile, offline) and yamllint.
# Honours MINITWIT_STRICT=1 (a missing linter is a failure, not a skip).
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

venv_bin="$REPO_ROOT/.venv/bin"
export PATH="$venv_bin:$PATH"

status=0
if command -v yamllint >/dev/null; then
  log "yamllint ansible/"
  yamllint --strict -c ansible/.yamllint ansible/ || status=1
else
  skip_or_fail "yamllint not installed (pip install -r requirements-dev.txt)"
fi

if command -v ansible-lint >/dev/null; then
  log "ansible-lint --offline --profile production"
  # ansible-lint keeps its cache in <project>/.ansible; keep it out of the tree.
  PYTHONWARNINGS=ignore::DeprecationWarning ANSIBLE_HOME="${TMPDIR:-/tmp}/minitwit-ansible-home" \
    ansible-lint --offline --profile production -c ansible/.ansible-lint \
    ansible/playbooks ansible/roles ansible/inventories || status=1
else
  skip_or_fail "ansible-lint not installed (pip install -r requirements-dev.txt)"
fi
exit "$status"
