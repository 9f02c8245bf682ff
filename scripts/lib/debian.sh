# Shared by scripts/run and scripts/test: install a missing Debian package when root, else say
# what to run. Source it after defining say and die.

apt_updated=""
apt_install() { # package why: installs a Debian package when root on Debian
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing $1 (for $2)"
        if [ -z "$apt_updated" ]; then
            DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
            apt_updated=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null \
            || die "apt-get install $1 failed"
    fi
}
install_pkg() { # command package
    command -v "$1" >/dev/null 2>&1 && return 0
    apt_install "$2" "$1"
    command -v "$1" >/dev/null 2>&1
}
# The one C library dialerd links: libopus (Opus on browser legs), which the audiopus crate
# finds with pkg-config.
need_libopus() {
    install_pkg pkg-config pkg-config || die "pkg-config is missing and cannot be installed here: run 'apt-get install pkg-config' as root"
    pkg-config --exists opus || apt_install libopus-dev "Opus on browser legs"
    pkg-config --exists opus || die "libopus is missing and cannot be installed here: run 'apt-get install libopus-dev' as root"
}
