# Shared by images/*.sh: where the heavy build products live and how buildah is called.
# Everything is kept outside the repository in $MUSEPOSE_CACHE/images, keyed by what it
# was built from: buildah's own storage (vfs: works on any filesystem, no overlay or fuse
# needed) and the Debian base's tarball.
cache="${MUSEPOSE_CACHE:-$HOME/.cache/musepose-dev}/images"
mkdir -p "$cache"
# buildah's CNI lock goes here, not to /etc/cni/net.d (the real node's host check: docs/tests.md).
if [[ -z ${CONTAINERS_CONF:-} ]]; then
  export CONTAINERS_CONF="$cache/containers.conf"
  [[ -s $CONTAINERS_CONF ]] || printf '[network]\nnetwork_backend = "cni"\nnetwork_config_dir = "%s"\n' \
    "$cache/cni" >"$CONTAINERS_CONF"
fi
BUILDAH=(buildah --storage-driver vfs --root "$cache/storage" --runroot "$cache/run")
buildah_() { "${BUILDAH[@]}" "$@"; }
log() { echo "images: $*" >&2; }
