#!/usr/bin/env bash
# What the tests need besides pip packages, on a fresh Debian machine (idempotent, quick when done):
#   Debian's `dataset-fashion-mnist` (the real Fashion-MNIST) and `chromium` (for the browser tests),
#   and the CIFAR-10 image-folder copy, unpacked from ../shared/data/cifar10-jpg.tar.gz when present.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || need+=(dataset-fashion-mnist)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing Debian packages: ${need[*]}"
    $sudo apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi

root="${CNNVIZ_DATA:-data}"
archive=../shared/data/cifar10-jpg.tar.gz
if [ ! -d "$root/cifar10-jpg/test" ] && [ -z "${CNNVIZ_CIFAR10_DIR:-}" ]; then
    if [ -f "$archive" ]; then
        echo "unpacking $archive into $root/"
        mkdir -p "$root"
        tar xzf "$archive" -C "$root"
    else
        echo "note: no CIFAR-10 found ($root/cifar10-jpg or $archive); its tests will skip, or fail under CI" >&2
    fi
fi
