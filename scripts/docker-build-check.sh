#!/usr/bin/env bash
# No Docker engine in CI: run the Dockerfile's build step the way the build
# stage would, and check the result is a static binary (required by the
# distroless/static final stage).
#
# Single source of truth: the build command is taken from the Dockerfile's
# `RUN CGO_ENABLED=0 go build ...` line and run verbatim, with its output
# path /out/nemidp replaced by a temp file.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="/usr/local/go/bin:$PATH"
fi

line=$(grep -E '^RUN CGO_ENABLED=0 go build ' Dockerfile || true)
[[ -n "$line" ]] || { echo "ERROR: no 'RUN CGO_ENABLED=0 go build ...' line in Dockerfile" >&2; exit 1; }
[[ $(grep -cE '^RUN CGO_ENABLED=0 go build ' Dockerfile) -eq 1 ]] || { echo "ERROR: more than one build line in Dockerfile" >&2; exit 1; }
[[ "$line" == *" -o /out/nemidp "* ]] || { echo "ERROR: Dockerfile build line does not output to /out/nemidp: $line" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nemidp-docker-check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cmd=${line#RUN }
cmd=${cmd/ -o \/out\/nemidp / -o \"\$tmp\/nemidp\" }
echo "==> (Dockerfile build step) $cmd" >&2
eval "$cmd"

bin="$tmp/nemidp"
[[ -x "$bin" ]] || { echo "ERROR: build produced no binary" >&2; exit 1; }

# Static check: go's own build info, plus file/ldd when present.
if ! go version -m "$bin" | grep -qE '^\s+build\s+CGO_ENABLED=0$'; then
  echo "ERROR: binary was not built with CGO_ENABLED=0:" >&2
  go version -m "$bin" >&2
  exit 1
fi
if command -v file >/dev/null 2>&1; then
  desc=$(file -b "$bin")
  if [[ "$desc" != *"statically linked"* ]]; then
    echo "ERROR: binary is not statically linked: $desc" >&2
    exit 1
  fi
fi
if command -v ldd >/dev/null 2>&1; then
  if ldd "$bin" 2>&1 | grep -q '=>'; then
    echo "ERROR: binary has dynamic dependencies:" >&2
    ldd "$bin" >&2
    exit 1
  fi
fi
echo "==> docker build step OK: static binary, $(du -h "$bin" | cut -f1)" >&2
