#!/bin/sh
# Installs what mplock needs to build and test on Debian 12, if missing.
# Uses sudo when not root. Safe to run again: it only installs what is absent.
set -eu

# Build: compiler, meson, libsystemd, json-c, python3-dev (the Python bridge
# embeds libpython) and python3-cloudpickle (it pickles the callbacks).
# Tests: Check, python3, python3-pytest and python3-numpy (the Python
# package's tests), tmux (a terminal for the tests of watch and top), procps
# (pgrep), passwd (useradd, for the shared-machine tests), debootstrap +
# systemd-container for the tests under a real systemd (tests/systemd),
# qemu-system-x86 and e2fsprogs for the same in a VM with cgroup v2
# (tests/systemd/vm.py: the scope limits, which a container here cannot show),
# slurm-wlm and munge for the Slurm tests' cluster (tests/slurm), clang
# with its sanitizer and libFuzzer runtimes for the fuzz targets, and
# bash-completion and zsh (tests/integration/test_cli.py types into both).
PACKAGES="gcc libc6-dev meson ninja-build pkg-config libsystemd-dev libjson-c-dev check python3 python3-dev python3-cloudpickle python3-pytest
          python3-numpy tmux procps passwd systemd debootstrap systemd-container qemu-system-x86 e2fsprogs slurm-wlm munge clang libclang-rt-14-dev
          bash-completion zsh"

missing=""
for p in $PACKAGES; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
                missing="$missing $p"
        fi
done
[ -z "$missing" ] && exit 0

echo "Installing:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || { echo "Need root or sudo to install:$missing" >&2; exit 1; }
        SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
