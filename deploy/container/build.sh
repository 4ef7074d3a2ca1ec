#!/usr/bin/env bash
# Builds alertpub's image with podman (Debian's podman and buildah), FROM scratch: no base image
# is pulled. Usage: deploy/container/build.sh [IMAGE] [BINARY]
#   IMAGE   defaults to localhost/alertpub:latest
#   BINARY  an alertpub binary already built; by default `cargo build --release` makes one.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
image="${1:-localhost/alertpub:latest}"
binary="${2:-}"
if [ -z "$binary" ]; then
    (cd "$root" && cargo build --release -p alertpub-server --bin alertpub)
    binary="${CARGO_TARGET_DIR:-$root/target}/release/alertpub"
fi
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
rootfs="$context/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/alertpub" "$rootfs/data" "$rootfs/tmp"
install -m 0755 "$binary" "$rootfs/usr/local/bin/alertpub"
# Every shared library the binary loads, and the loader, at the paths ldd gives.
ldd "$binary" | awk '/=> \// { print $3 } /^[[:space:]]*\// { print $1 }' | while read -r lib; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
done
# The CA roots for targets over HTTPS, and the user the image runs as.
mkdir -p "$rootfs/etc/ssl/certs"
cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
printf 'root:x:0:0:root:/:/sbin/nologin\nalertpub:x:65532:65532:alertpub:/data:/sbin/nologin\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nalertpub:x:65532:\n' > "$rootfs/etc/group"
# A config to start with; mount your own over /etc/alertpub.
cat > "$rootfs/etc/alertpub/alertpub.yaml" <<'YAML'
server:
  listen: "0.0.0.0:9097"
queue:
  path: /data/alertpub.redb
targets: []
YAML
chmod 1777 "$rootfs/tmp"
chown -R 65532:65532 "$rootfs/data"
cp "$here/Containerfile" "$context/Containerfile"
podman build --quiet --format docker --tag "$image" --file "$context/Containerfile" "$context"
echo "built $image"
