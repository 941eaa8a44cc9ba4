#!/usr/bin/env bash
# Runs the whole nemidp test suite. This is THE one command CI runs
# (.ci/run execs it). Works from any cwd, as root or not, with no stdin.
#
# Usage: scripts/test.sh [--check-redis] [extra go test args...]
#   --check-redis   only find/start a Redis, print it, and exit.
#   extra args      are appended to `go test -race -count=1 -timeout 20m ./...`
#
# Environment:
#   NEMIDP_REDIS_URL                 Redis to use if it answers PING.
#   NEMIDP_TEST_DEFAULT_REDIS_PORT   port probed on 127.0.0.1 before starting our
#                                    own redis-server (default 6379; for testing
#                                    this script).
# Exported to the tests:
#   NEMIDP_REDIS_URL=redis://HOST:PORT/DB
#   NEMIDP_TEST_REDIS_SERVER=/path/to/redis-server (when available)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

# Go is at /usr/local/go on the CI machine; it may not be on PATH.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
export PATH="$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin:$PATH"

CHECK_REDIS_ONLY=0
if [[ "${1:-}" == "--check-redis" ]]; then
  CHECK_REDIS_ONLY=1
  shift
fi

log()  { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- cleanup
WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/nemidp-test.XXXXXX")
REDIS_PID=""
cleanup() {
  local rc=$?
  if [[ -n "$REDIS_PID" ]] && kill -0 "$REDIS_PID" 2>/dev/null; then
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
  fi
  rm -rf "$WORKDIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo -n "$@"; fi
}

apt_install() {
  log "installing $* via apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" </dev/null >&2
}

# ---------------------------------------------------------------- redis
# Parse redis://[user[:pass]@]host[:port][/db] into R_HOST R_PORT R_USER R_PASS R_DB.
parse_redis_url() {
  local u=$1 auth="" hostport path
  u=${u#redis://}
  if [[ "$u" == *@* ]]; then auth=${u%%@*}; u=${u#*@}; fi
  hostport=${u%%/*}
  path=""; [[ "$u" == */* ]] && path=${u#*/}
  R_HOST=${hostport%%:*}; [[ -z "$R_HOST" ]] && R_HOST=127.0.0.1
  R_PORT=6379; [[ "$hostport" == *:* ]] && R_PORT=${hostport##*:}
  R_DB=${path%%\?*}; [[ -z "$R_DB" ]] && R_DB=0
  R_USER=""; R_PASS=""
  if [[ -n "$auth" ]]; then
    if [[ "$auth" == *:* ]]; then R_USER=${auth%%:*}; R_PASS=${auth#*:}; else R_PASS=$auth; fi
  fi
}

# PING host port [user] [pass] over bash /dev/tcp; succeeds on +PONG.
tcp_ping() {
  timeout 3 bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    if [[ -n "$4" ]]; then
      if [[ -n "$3" ]]; then printf "AUTH %s %s\r\n" "$3" "$4" >&3; else printf "AUTH %s\r\n" "$4" >&3; fi
      IFS= read -r -t 2 line <&3 || exit 1
      [[ "$line" == "+OK"* ]] || exit 1
    fi
    printf "PING\r\n" >&3
    IFS= read -r -t 2 line <&3 || exit 1
    [[ "$line" == "+PONG"* ]]
  ' _ "$1" "$2" "${3:-}" "${4:-}" 2>/dev/null
}

# PING a redis URL: redis-cli -u if available, else /dev/tcp.
url_ping() {
  local url=$1
  if [[ "$url" != redis://* ]]; then
    # rediss:// or unix sockets: only redis-cli can check those.
    command -v redis-cli >/dev/null 2>&1 || return 1
  fi
  if command -v redis-cli >/dev/null 2>&1; then
    # redis-cli 7.0 sends AUTH "" pass for redis://:pass@...; name the default user.
    [[ "$url" == redis://:* ]] && url="redis://default:${url#redis://:}"
    [[ "$(timeout 3 redis-cli --no-auth-warning -u "$url" ping 2>/dev/null </dev/null)" == PONG* ]]
    return
  fi
  parse_redis_url "$url"
  tcp_ping "$R_HOST" "$R_PORT" "$R_USER" "$R_PASS"
}

wait_for_ping() { # url seconds
  local url=$1 deadline=$((SECONDS + $2))
  while (( SECONDS < deadline )); do
    url_ping "$url" && return 0
    if [[ -n "$REDIS_PID" ]] && ! kill -0 "$REDIS_PID" 2>/dev/null; then
      return 1
    fi
    sleep 0.2
  done
  url_ping "$url"
}

# URL with any password masked, for logs.
redact() { sed -E 's#^([a-z]+://[^:/@]*:)[^@]*@#\1***@#' <<<"$1"; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_own_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    apt_install redis-server || die "redis-server is not installed and apt-get install redis-server failed"
    # Debian's package starts a system instance on 6379 under systemd; we
    # don't rely on it and start our own anyway.
    command -v redis-server >/dev/null 2>&1 || die "redis-server still not found after install"
  fi
  local attempt port
  for attempt in 1 2 3 4 5; do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    port_in_use "$port" && continue
    mkdir -p "$WORKDIR/redis"
    log "starting own redis-server on 127.0.0.1:$port (dir $WORKDIR/redis)"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --daemonize no --dir "$WORKDIR/redis" \
      --logfile "$WORKDIR/redis/redis.log" </dev/null >/dev/null 2>&1 &
    REDIS_PID=$!
    if wait_for_ping "redis://127.0.0.1:$port/0" 10; then
      REDIS_URL="redis://127.0.0.1:$port/0"
      REDIS_SOURCE="own redis-server (pid $REDIS_PID, stopped on exit)"
      return 0
    fi
    warn "redis-server on port $port did not answer PING; log:"
    sed 's/^/    /' "$WORKDIR/redis/redis.log" >&2 2>/dev/null || true
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=""
  done
  die "could not start a redis-server that answers PING within 10s"
}

find_redis() {
  REDIS_URL="" REDIS_SOURCE=""
  if [[ -n "${NEMIDP_REDIS_URL:-}" ]]; then
    if wait_for_ping "$NEMIDP_REDIS_URL" 10; then
      REDIS_URL=$NEMIDP_REDIS_URL
      REDIS_SOURCE='$NEMIDP_REDIS_URL'
      return 0
    fi
    warn "NEMIDP_REDIS_URL=$(redact "$NEMIDP_REDIS_URL") does not answer PING; looking elsewhere"
  fi
  local dport=${NEMIDP_TEST_DEFAULT_REDIS_PORT:-6379}
  if tcp_ping 127.0.0.1 "$dport"; then
    REDIS_URL="redis://127.0.0.1:$dport/0"
    REDIS_SOURCE="existing Redis on 127.0.0.1:$dport"
    return 0
  fi
  start_own_redis
}

find_redis
export NEMIDP_REDIS_URL=$REDIS_URL
if command -v redis-server >/dev/null 2>&1; then
  export NEMIDP_TEST_REDIS_SERVER
  NEMIDP_TEST_REDIS_SERVER=$(command -v redis-server)
fi
log "Redis: $(redact "$NEMIDP_REDIS_URL")  [$REDIS_SOURCE]"
log "NEMIDP_TEST_REDIS_SERVER=${NEMIDP_TEST_REDIS_SERVER:-<unset>}"

if (( CHECK_REDIS_ONLY )); then
  url_ping "$NEMIDP_REDIS_URL" && log "PING ok"
  exit 0
fi

# ---------------------------------------------------------------- checks
# -race needs cgo and a C compiler.
if ! command -v gcc >/dev/null 2>&1 && ! command -v cc >/dev/null 2>&1; then
  apt_install gcc libc6-dev || die "go test -race needs a C compiler; installing gcc failed"
fi
export CGO_ENABLED=1

# The browser test (integration-tests/browser_test.go) drives Debian's chromium through
# chromedriver. Without them it skips locally but fails under CI, so install them here
# (chromium-driver pulls the chromium of the same version).
have_chromedriver() { command -v chromedriver >/dev/null 2>&1 || [[ -x /usr/bin/chromedriver ]]; }
if [[ ! -x /usr/bin/chromium ]] || ! have_chromedriver; then
  if ! apt_install chromium chromium-driver || [[ ! -x /usr/bin/chromium ]] || ! have_chromedriver; then
    if [[ -n "${CI:-}" ]]; then
      die "CI is set and installing chromium + chromium-driver failed; TestBrowserLogin needs them"
    fi
    warn "could not install chromium + chromium-driver; TestBrowserLogin will be skipped"
  fi
fi
log "browser: $( [[ -x /usr/bin/chromium ]] && timeout 10 /usr/bin/chromium --version 2>/dev/null | tail -n1 || echo '<none>')," \
  "chromedriver: $(have_chromedriver && { command -v chromedriver || echo /usr/bin/chromedriver; } || echo '<none>')"

log "go version: $(go version)"

log "gofmt -l"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # tracked + untracked-but-not-ignored .go files
  mapfile -t GOFILES < <(git ls-files -z --cached --others --exclude-standard -- '*.go' | tr '\0' '\n' | sort -u)
else
  mapfile -t GOFILES < <(find . -name '*.go' -not -path './vendor/*' -not -path './.git/*')
fi
if ((${#GOFILES[@]})); then
  existing=()
  for f in "${GOFILES[@]}"; do [[ -f "$f" ]] && existing+=("$f"); done
  unformatted=$(gofmt -l "${existing[@]}")
  if [[ -n "$unformatted" ]]; then
    printf 'ERROR: these files are not gofmt-formatted (run gofmt -w):\n%s\n' "$unformatted" >&2
    exit 1
  fi
fi

log "go vet ./..."
go vet ./...

STATICCHECK=honnef.co/go/tools/cmd/staticcheck@v0.8.2
log "staticcheck ($STATICCHECK)"
# Equivalent to `go run $STATICCHECK ./...`, but fetching and running are
# separate steps so a download failure (no network) is only a warning while
# problems staticcheck reports still fail the run. GOBIN keeps it out of go.mod.
if GOBIN="$WORKDIR/bin" GOFLAGS="${GOFLAGS:-}" go install "$STATICCHECK" </dev/null >"$WORKDIR/staticcheck-install.log" 2>&1; then
  "$WORKDIR/bin/staticcheck" ./...
else
  warn "could not download/build $STATICCHECK; skipping staticcheck:"
  sed 's/^/    /' "$WORKDIR/staticcheck-install.log" >&2
fi

log "go test -race -count=1 -timeout 20m ./... $*"
go test -race -count=1 -timeout 20m ./... "$@"

log "Dockerfile build step check"
bash "$ROOT/scripts/docker-build-check.sh"

log "all checks passed (Redis: $(redact "$NEMIDP_REDIS_URL") [$REDIS_SOURCE])"
