#!/usr/bin/env bash
# The images' base without a container registry: Debian bookworm (minbase) with python3.11,
# its venv module and CA certificates, made by mmdebstrap from Debian's packages (with this
# machine's apt sources on a Debian host, else mmdebstrap's default mirror), and imported into
# buildah's storage. Made once per key (the suite and package list), then reused. Prints the
# image's name, for BASE_IMAGE.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=images/common.sh
source "$here/common.sh"

SUITE=bookworm
PACKAGES=python3.11,python3.11-venv,ca-certificates,netbase,tzdata
RECIPE=3  # bump when the mmdebstrap options below change
key=$(echo "$SUITE $PACKAGES $RECIPE" | sha256sum | cut -c1-12)
name="localhost/musepose-base:$SUITE-$key"

if ! buildah_ inspect --type image "$name" >/dev/null 2>&1; then
  tarball="$cache/base-$SUITE-$key.tar"
  if [[ ! -s "$tarball" ]]; then
    # The sources this machine's apt uses when it is Debian, else mmdebstrap's default.
    sources=()
    if grep -qx 'ID=debian' /etc/os-release 2>/dev/null; then
      for file in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
        if [[ -s "$file" ]]; then sources=("$file"); break; fi
      done
    fi
    log "making the Debian $SUITE base with mmdebstrap (once; cached in $cache)"
    start=$SECONDS
    mmdebstrap --quiet --variant=minbase --format=tar --include="$PACKAGES" \
      --aptopt='Acquire::Languages "none"' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
      "$SUITE" "$tarball.tmp" "${sources[@]}"
    mv "$tarball.tmp" "$tarball"
    log "made the base in $((SECONDS - start)) s"
  fi
  ctr=$(buildah_ from scratch)
  buildah_ add --quiet "$ctr" "$tarball" / >/dev/null
  buildah_ config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd /bin/bash \
    --label org.opencontainers.image.description="Debian $SUITE minbase with $PACKAGES" "$ctr"
  buildah_ commit --quiet --rm "$ctr" "$name" >/dev/null
fi
echo "$name"
