#!/usr/bin/env bash
# Festival and its three English voices from Debian, for the cross-engine evaluation folder
# (`kws-search data synth --engine festival`). Needs root. Idempotent; everything it says goes
# to stderr.
set -euo pipefail
PACKAGES=(festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "festival.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
fi
festival --version >&2
