# Sourced by the project's scripts: ensure_packages PKG... installs the Debian
# packages that are not installed yet (as root, or through sudo).
# Ask dpkg, not apt: it is fast, needs no network, and "installed" excludes
# packages that were removed but left their config files behind.
ensure_packages() {
  local package status missing=() sudo=()
  for package in "$@"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
    [[ $status == installed ]] || missing+=("$package")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    echo "==> all required Debian packages are installed"
    return 0
  fi
  echo "==> installing missing packages: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; return 1; }
    sudo=(sudo)
  fi
  # One update, only when something is missing: a fresh image has no package lists.
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}
