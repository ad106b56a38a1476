#!/usr/bin/env bash
# Build kb's image and run the compose stack for real, on loopback: ingest the sample documents
# through the API, ask a question through the OpenAI endpoint, check the cited answer, tear down.
#
#   make container-test        (needs root, podman, podman-compose, runc, debootstrap)
#
# No container registry is reachable here, so the base image is made once with debootstrap and
# imported (localhost/kb-base:bookworm); pip inside the build sees the host's CA bundle
# (PIP_CERT) and, when present, the host's pip configuration, local wheels and wheel cache.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/deploy/containers.conf}
BASE_IMAGE=${BASE_IMAGE:-localhost/kb-base:bookworm}
export KB_IMAGE=${KB_IMAGE:-localhost/kb:test}
export KB_API_KEYS=${KB_API_KEYS:-container-test-key-$(date +%s)}
export KB_PORT=${KB_PORT:-18080}
export KB_UI_PORT=${KB_UI_PORT:-18501}
CA=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
PY=${PYTHON:-$ROOT/.venv/bin/python}
COMPOSE=(podman-compose -p kb-container-test -f deploy/compose.yaml)

for tool in podman podman-compose runc; do
    command -v "$tool" >/dev/null || { echo "container-test: $tool is not installed" >&2; exit 2; }
done

if ! podman image exists "$BASE_IMAGE"; then
    command -v debootstrap >/dev/null || { echo "container-test: debootstrap is not installed" >&2; exit 2; }
    rootfs=$(mktemp -d)
    echo "making the base image $BASE_IMAGE with debootstrap (about a minute)"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
    tar -C "$rootfs" -c . | podman import - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
fi

mounts=(--volume "$CA:/etc/ssl/certs/host-ca.crt:ro")
# The host's pip configuration (local wheels such as the CPU build of torch, local indexes).
for path in /etc/pip.conf "$HOME/.config/pip/pip.conf" /opt/wheels /opt/pypi /opt/pypi-more; do
    if [ -e "$path" ]; then mounts+=(--volume "$path:${path/#$HOME//root}:ro"); fi
done
# A copy of the host's pip cache: llama-cpp-python's compiled wheel is reused, and the build
# may write to (and empty) the copy without touching the host's cache.
cache=$(mktemp -d)
if [ -d "${PIP_CACHE_SOURCE:-$HOME/.cache/pip}" ]; then
    cp -a "${PIP_CACHE_SOURCE:-$HOME/.cache/pip}/." "$cache/"
fi
mounts+=(--volume "$cache:/var/cache/kb-pip")
echo "building $KB_IMAGE from $BASE_IMAGE"
podman build -f deploy/Containerfile -t "$KB_IMAGE" \
    --build-arg BASE="$BASE_IMAGE" --build-arg PIP_CERT=/etc/ssl/certs/host-ca.crt \
    "${mounts[@]}" . || { rm -rf "$cache"; exit 1; }

cleanup() { "${COMPOSE[@]}" down -v >/dev/null 2>&1 || true; rm -rf "$cache"; }
trap cleanup EXIT
"${COMPOSE[@]}" up -d

"$PY" - <<'PYTHON'
import os, sys, time
from pathlib import Path

import httpx
import openai

url = f"http://127.0.0.1:{os.environ['KB_PORT']}"
key = os.environ["KB_API_KEYS"].split(",")[0]
headers = {"Authorization": f"Bearer {key}"}
deadline = time.monotonic() + 600
while True:
    try:
        health = httpx.get(f"{url}/health", timeout=5)
        if health.status_code == 200:
            break
    except httpx.HTTPError:
        pass
    if time.monotonic() > deadline:
        sys.exit("kb serve did not become ready in the container stack")
    time.sleep(2)
assert httpx.get(f"{url}/v1/models").status_code == 401, "keys are enforced"
samples = Path("data/samples")
files = [("files", (p.name, p.read_bytes())) for p in sorted(samples.rglob("*")) if p.is_file()]
ingest = httpx.post(f"{url}/v1/ingest", files=files, headers=headers, timeout=900)
ingest.raise_for_status()
failed = [f for f in ingest.json()["files"] if f["status"] == "failed"]
assert not failed, failed
client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, timeout=600)
reply = client.chat.completions.create(
    model="default",
    messages=[{"role": "user", "content": "When does the Singapore office open?"}],
)
info = reply.model_extra["kb"]
print(reply.choices[0].message.content)
assert not info["refused"] and "March 2027" in info["answer"], info
assert info["sources"][0]["source"] == "q3-all-hands.pptx", info["sources"]
print("container test passed")
PYTHON
