#!/usr/bin/env bash
# Build one image (operator or runner). With Docker (its daemon answers, or
# IMAGE_BUILDER=docker): `docker build`, from the Dockerfile's default BASE_IMAGE. Otherwise
# daemonless with buildah (IMAGE_BUILDER=buildah), from the Debian base that images/base.sh
# makes with mmdebstrap, unless BASE_IMAGE names another base. The result is tagged
#   [localhost/]musepose-NAME:KEY  and  [localhost/]musepose-NAME:dev
# where KEY hashes everything the image is built from (Dockerfile, lock, sources, base), so
# an unchanged tree reuses the image. Prints the image's name.
#   images/build.sh operator|runner
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
# shellcheck source=images/common.sh
source "$here/common.sh"
name=$1
case $name in operator|runner) ;; *) echo "usage: $0 operator|runner" >&2; exit 2 ;; esac
builder=${IMAGE_BUILDER:-}
if [[ -z $builder ]]; then
  if docker info >/dev/null 2>&1; then builder=docker; else builder=buildah; fi
fi

if [[ $builder == docker ]]; then
  base=${BASE_IMAGE:-} from=$base
else
  base=${BASE_IMAGE:-$(bash "$here/base.sh")}
  from=$(buildah_ inspect --type image --format '{{.FromImageID}}' "$base")
fi
cd "$root"
# The base (by content for buildah) and the build context as .dockerignore leaves it.
key=$( { echo "$builder $from"; sha256sum "Dockerfile.$name" .dockerignore pyproject.toml \
         README.md requirements/*.txt
         find operator runner -type f ! -name '*.pyc' ! -path '*.egg-info/*' -print0 | sort -z | xargs -0 sha256sum; } \
       | sha256sum | cut -c1-12)
args=(--build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)")
[[ -z $base ]] || args+=(--build-arg BASE_IMAGE="$base")

if [[ $builder == docker ]]; then
  image="musepose-$name:$key"
  log "building $image with docker"
  docker build -f "Dockerfile.$name" "${args[@]}" -t "$image" -t "musepose-$name:dev" . >&2
  echo "$image"
  exit 0
fi

image="localhost/musepose-$name:$key"
if buildah_ inspect --type image "$image" >/dev/null 2>&1; then
  log "musepose-$name is up to date ($image)"
else
  log "building musepose-$name from $base"
  start=$SECONDS
  # Trust what this machine trusts (a TLS-intercepting proxy's CA, if any) while building.
  bundle=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
  if [[ -s "$bundle" ]]; then
    args+=(--volume "$bundle:/run/musepose-build-ca.crt:ro"
           --build-arg PIP_CERT=/run/musepose-build-ca.crt)
  fi
  # No --layers: with vfs every layer is a full copy of the root (the runner's is 7 GB), so
  # each stage is committed once (a rebuild downloads the wheels again: buildah 1.28 does
  # not keep the Dockerfile's pip cache mount between builds here; BuildKit does).
  buildah_ bud --quiet --isolation chroot -f "Dockerfile.$name" "${args[@]}" \
    -t "$image" . >/dev/null
  log "built musepose-$name in $((SECONDS - start)) s"
fi
buildah_ tag "$image" "localhost/musepose-$name:dev"
# Only the newest build of each image is kept (the runner's takes 7 GB in vfs storage).
buildah_ images --format '{{.Name}}:{{.Tag}}' | grep "^localhost/musepose-$name:" \
  | grep -v -e ":$key\$" -e ':dev$' | xargs -r -n1 "${BUILDAH[@]}" rmi >/dev/null 2>&1 || true
echo "$image"
