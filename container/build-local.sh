#!/usr/bin/env bash
# Build the CPU image on a machine with no image registry, and run podman against it.
#
#   container/build-local.sh build            # base image (once), then localhost/virnucpro:cpu
#   TORCH=cuda container/build-local.sh build # PyPI's CUDA torch: localhost/virnucpro:cuda
#   container/build-local.sh podman ARGS...   # podman with this script's storage and settings
#
# The base is Debian's own: debootstrap makes a minimal bookworm root file system with
# python3 and venv (from the Debian mirror, no registry), `podman import` turns it into
# localhost/virnucpro-base:bookworm, and the Containerfile builds on it with TORCH=cpu. Python
# is bookworm's 3.11; a CPU torch wheel for it found in pip's find-links folders is copied into
# container/wheels/ for the length of the build, so that it downloads no torch.
#
# Nothing of the machine's podman set-up is touched: its own containers.conf (CONTAINERS_CONF;
# default_ulimits = [] and cgroup_manager = "cgroupfs", which this kind of VM needs), its own
# storage (--root/--runroot) under $VIRNUCPRO_CONTAINER_WORK (default
# ~/.cache/virnucpro-container), host networking for the build. A TLS-intercepting proxy's CA
# bundle ($CA_BUNDLE, default the system's) reaches pip as a build secret, never a layer.
#
# Needs root (debootstrap, rootful podman) and Debian's podman, runc and debootstrap.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=${VIRNUCPRO_CONTAINER_WORK:-$HOME/.cache/virnucpro-container}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=${DEBIAN_SUITE:-bookworm}
base=localhost/virnucpro-base:$suite
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/pyproject.toml" | head -n 1)
torch=${TORCH:-cpu}
image=${IMAGE:-localhost/virnucpro:$torch}
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

say() { printf 'build-local: %s\n' "$*" >&2; }

setup() {
    mkdir -p "$work/storage" "$work/run"
    cat > "$work/containers.conf" <<'EOF'
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    export CONTAINERS_CONF=$work/containers.conf
}

pm() {
    podman --root "$work/storage" --runroot "$work/run" --storage-driver overlay "$@"
}

need() {
    local missing=()
    for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
    if ((${#missing[@]})); then
        say "missing: ${missing[*]} (Debian: apt-get install podman runc debootstrap)"
        exit 3
    fi
}

make_base() {
    if pm image exists "$base"; then
        say "base $base is there"
        return
    fi
    local rootfs=$work/rootfs-$suite
    rm -rf "$rootfs"
    say "debootstrap $suite from $mirror"
    local started=$SECONDS
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$suite" "$rootfs" "$mirror" > "$work/debootstrap.log" 2>&1 \
        || { tail -n 20 "$work/debootstrap.log" >&2; exit 4; }
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* \
        "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    tar -C "$rootfs" -c . | pm import --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
    rm -rf "$rootfs"
    say "base $base made in $((SECONDS - started)) s"
}

local_torch() {
    # The CPU wheel of the pinned torch for bookworm's Python, from pip's find-links folders.
    local pinned dirs
    pinned=$(sed -n 's/^ARG TORCH_VERSION=//p' "$repo/Containerfile")
    dirs=$(python3 -m pip config get global.find-links 2>/dev/null || true)
    dirs="$dirs ${PIP_FIND_LINKS:-}"
    for dir in $dirs; do
        dir=${dir#file://}
        for wheel in "$dir"/torch-"$pinned"+cpu-cp311-cp311-*x86_64.whl; do
            [[ -f $wheel ]] || continue
            copied=$repo/container/wheels/$(basename "$wheel")
            cp "$wheel" "$copied"
            trap 'rm -f "$copied"' EXIT   # for this build only: a CUDA build must not see it
            say "torch from $wheel"
            torch_index=https://pypi.org/simple   # its dependencies
            return
        done
    done
    say "no local CPU torch wheel: the build asks download.pytorch.org"
}

build() {
    need podman debootstrap runc
    make_base
    local secret=() revision="" origin="" torch_index=""
    [[ $torch == cpu ]] && local_torch
    [[ -s $ca ]] && secret=(--secret "id=ca,src=$ca")
    revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || true)
    origin=$(git -C "$repo" remote get-url origin 2>/dev/null || true)
    [[ $origin == https://* ]] || origin=""   # a local path or an ssh address says nothing
    say "building $image"
    local started=$SECONDS
    pm build --network host -f "$repo/Containerfile" "${secret[@]}" \
        --build-arg "BASE=$base" --build-arg "TORCH=$torch" --build-arg "TORCH_INDEX=$torch_index" \
        --build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "SOURCE=$origin" \
        -t "$image" -t "localhost/virnucpro:$version-$torch" "$repo"
    say "built $image in $((SECONDS - started)) s, $(pm image inspect --format '{{.Size}}' "$image") bytes"
}

setup
case "${1:-build}" in
    build) build ;;
    podman) shift; pm "$@" ;;
    *) say "usage: $0 [build | podman ARGS...]"; exit 2 ;;
esac
