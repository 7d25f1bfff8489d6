# scripts/lib.sh: shared set-up for scripts/run and scripts/test: install the
# Debian packages the build needs when they are missing, then configure and
# build with meson. Sourced, not run.

NB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Packages every build needs; scripts may add their own before nb_install.
NB_PACKAGES="build-essential meson ninja-build pkg-config libmpfr-dev libgmp-dev libcriterion-dev libopenblas-serial-dev libdnnl-dev gcovr libopenmpi-dev openmpi-bin libtorch-dev g++"

nb_log() { printf '%s\n' "$*" >&2; }

# Install the named Debian packages that are not installed yet.
nb_install() {
    local missing=()
    local p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    nb_log "installing: ${missing[*]}"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >/dev/null || { nb_log "apt-get update failed"; return 1; }
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        { nb_log "apt-get install failed for: ${missing[*]}"; return 1; }
}

# nb_build DIR [meson options...]: configure (once) and build.
nb_build() {
    local dir="$1"
    shift
    if [ ! -f "$NB_ROOT/$dir/build.ninja" ]; then
        meson setup "$NB_ROOT/$dir" "$NB_ROOT" "$@" >/dev/null ||
            { nb_log "meson setup $dir failed"; return 1; }
    fi
    ninja -C "$NB_ROOT/$dir" >/dev/null || { ninja -C "$NB_ROOT/$dir"; return 1; }
}
