#!/usr/bin/env bash
# What `make image-test` needs, each installed only when missing (docs/deploy.md, "Container
# images"; the recipe: ../shared/guide/containers.md):
#   podman, buildah, runc and the rest   build and run the images (Debian packages)
#   mmdebstrap                           makes the Debian base image from the Debian archive
#   iptables                             podman's bridge network (netavark) needs it
#   podman-compose                       runs the compose example (PyPI, pinned, in
#                                        .images/tools, git-ignored)
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/../.."

PODMAN_COMPOSE='podman-compose==1.6.0'
packages=(podman buildah fuse-overlayfs slirp4netns uidmap netavark aardvark-dns catatonit
    mmdebstrap iptables runc python3-venv)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "image-test: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

tools=.images/tools
if ! "$tools/bin/podman-compose" --version 2>/dev/null | grep -q "${PODMAN_COMPOSE#*==}"; then
    echo "image-test: installing $PODMAN_COMPOSE into $tools"
    python3 -m venv "$tools"
    "$tools/bin/pip" install -q "$PODMAN_COMPOSE"
fi
