#!/usr/bin/env bash
# Fail when an image carries a Debian package for which its release's security suite already
# publishes a newer version: a security update that was published but not applied.
#
#   scripts/check-image-updates.sh [--packages <codename>=<Packages file>]... <image or rootfs dir>...
#
# What is compared: the image's own dpkg database (/var/lib/dpkg/status, copied out of a created,
# never started container) against the `main` Packages index of <codename>-security, the codename
# read from the image's os-release. The index is fetched once per codename by apt itself, so its
# InRelease signature is verified with the host's debian-archive-keyring; it lands in a temporary
# directory and the host's own apt state is not touched. A package is pending when the suite has
# it, for the image's architecture or `all`, at a higher version (dpkg --compare-versions).
# --packages gives a Packages file instead of fetching one (the tests' made-up security suite).
# An image with no dpkg database (FROM scratch, e.g. local/traefik) is reported, not failed: apt has
# nothing to upgrade in it; its SBOM (scripts/sbom.sh) lists what it holds.
# Needs docker (for images), dpkg and apt-get on the host (Debian).
set -euo pipefail

SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
declare -A INDEX=()  # codename -> Packages file of <codename>-security

usage() {
  echo "usage: $0 [--packages <codename>=<Packages file>]... <image or rootfs dir>..." >&2
  exit 2
}

# copy_from_image <image> <dir>: the image's dpkg status and os-release into dir (what exists).
copy_from_image() {
  local image="$1" dir="$2" cid path
  # A command is given because rootfs images have none; the container is never started.
  cid="$(docker create "$image" check-image-updates)"
  docker cp "$cid:/var/lib/dpkg/status" "$dir/status" >/dev/null 2>&1 || true
  for path in /usr/lib/os-release /etc/os-release; do
    docker cp -L "$cid:$path" "$dir/os-release" >/dev/null 2>&1 && break
  done
  docker rm "$cid" >/dev/null
}

# copy_from_dir <rootfs dir> <dir>: the same files from an unpacked root filesystem.
copy_from_dir() {
  local root="$1" dir="$2" path
  cp "$root/var/lib/dpkg/status" "$dir/status" 2>/dev/null || true
  for path in usr/lib/os-release etc/os-release; do
    cp -L "$root/$path" "$dir/os-release" 2>/dev/null && break
  done
}

# fetch_index <codename>: INDEX[codename], the security suite's Packages index, fetched with apt.
fetch_index() {
  local codename="$1" apt="$WORK/apt" arch
  arch="$(dpkg --print-architecture)"
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
  # apt downloads as its unprivileged _apt user, which must reach the lists directory.
  chmod 0755 "$WORK" "$apt" "$apt/lists"
  echo "deb $SECURITY_MIRROR $codename-security main" >"$apt/$codename.list"
  apt-get update -qq -o Dir::Etc::sourcelist="$apt/$codename.list" -o Dir::Etc::sourceparts=- \
    -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache" -o APT::Get::List-Cleanup=0 \
    -o APT::Architectures="$arch" >&2
  INDEX[$codename]="$WORK/$codename-security.Packages"
  # apt keeps the index compressed (lz4 or not, by its configuration); apt-helper reads either.
  /usr/lib/apt/apt-helper cat-file "$apt/lists/"*"_dists_${codename}-security_main_binary-${arch}_Packages"* \
    >"${INDEX[$codename]}"
}

# candidates <status> <Packages>: "name installed-version suite-version..." for every installed
# package that the index also has (same architecture or `all`) at another version.
candidates() {
  awk -v RS= -F '\n' -v arch="$(dpkg --print-architecture)" '
    function field(name,   i) {
      for (i = 1; i <= NF; i++) if (index($i, name ": ") == 1) return substr($i, length(name) + 3)
      return ""
    }
    FILENAME == ARGV[1] { suite[field("Package")] = suite[field("Package")] " " field("Version"); next }
    field("Status") !~ / installed$/ { next }
    field("Architecture") != arch && field("Architecture") != "all" { next }
    { installed++; name = field("Package") }
    name in suite { listed++; if (suite[name] != " " field("Version")) print name, field("Version") suite[name] }
    END { printf "#stats %d %d\n", installed, listed }
  ' "$2" "$1"
}

# check <image or dir>: print the verdict; return 1 when a security update is pending.
check() {
  local target="$1" dir codename name installed versions version newest pending=() total=0 listed=0
  dir="$(mktemp -d "$WORK/target.XXXXXX")"
  if [[ -d "$target" ]]; then copy_from_dir "$target" "$dir"; else copy_from_image "$target" "$dir"; fi
  if [[ ! -s "$dir/status" ]]; then
    echo "no dpkg database: $target (nothing apt can upgrade; its SBOM lists what it holds)"
    return 0
  fi
  codename="$(sed -n 's/^VERSION_CODENAME=//p' "$dir/os-release" 2>/dev/null | tr -d '"')"
  if [[ -z "$codename" ]]; then
    echo "FAILED: $target: no VERSION_CODENAME in its os-release, so no security suite to compare with" >&2
    return 1
  fi
  [[ -n "${INDEX[$codename]:-}" ]] || fetch_index "$codename"
  while read -r name installed versions; do
    if [[ "$name" == "#stats" ]]; then total="$installed" listed="$versions" && continue; fi
    newest="$installed"
    for version in $versions; do
      dpkg --compare-versions "$version" gt "$newest" && newest="$version"
    done
    [[ "$newest" == "$installed" ]] || pending+=("$name $installed -> $newest")
  done < <(candidates "$dir/status" "${INDEX[$codename]}")
  if ((${#pending[@]} > 0)); then
    echo "FAILED: $target: ${#pending[@]} pending update(s) from $codename-security:" >&2
    printf '  %s\n' "${pending[@]}" >&2
    return 1
  fi
  echo "ok: $target: nothing pending from $codename-security ($total packages installed, $listed of them in the suite)"
}

main() {
  local targets=() target failures=0
  while (($# > 0)); do
    case "$1" in
      --packages) [[ "${2:-}" == *=* ]] || usage; INDEX[${2%%=*}]="${2#*=}"; shift 2 ;;
      -*) usage ;;
      *) targets+=("$1"); shift ;;
    esac
  done
  ((${#targets[@]} > 0)) || usage
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  for target in "${targets[@]}"; do
    check "$target" || failures=$((failures + 1))
  done
  if ((failures > 0)); then
    echo "check-image-updates: $failures of ${#targets[@]} image(s) have pending security updates" >&2
    return 1
  fi
}

main "$@"
