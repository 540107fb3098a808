# Installs missing Debian packages. Sourced by scripts/run and scripts/test.
# Usage: ensure_debian_packages "what for" command:package [command:package ...]

ensure_debian_packages() {
  local why="$1"; shift
  local missing=() pair cmd pkg
  for pair in "$@"; do
    cmd="${pair%%:*}"; pkg="${pair#*:}"
    command -v "$cmd" >/dev/null 2>&1 && continue
    [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    local cmds=("${@%%:*}")
    echo "costream: $why: already installed (${cmds[*]})"
    return 0
  fi
  echo "costream: installing Debian packages for $why: ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "costream: installed ${missing[*]}"
}
