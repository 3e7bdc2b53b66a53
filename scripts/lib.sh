# Shared by scripts/serve and scripts/test: install whatever is missing,
# then build the site once (server binary, WASM bundle, CSS) in release mode.
# Every step is idempotent and quick when there is nothing to do.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CARGO_LEPTOS_VERSION=0.3.10
WASM_BINDGEN_VERSION=0.2.130
SQLX_CLI_VERSION=0.8.6
CARGO_MACHETE_VERSION=0.9.2

# The variables cargo-leptos sets when it builds the server. The tests are
# built with the same ones so that they reuse the server's build instead of
# compiling the dependency tree a second time.
export LEPTOS_OUTPUT_NAME=bitgate LEPTOS_SITE_ROOT=target/site LEPTOS_SITE_PKG_DIR=pkg \
  LEPTOS_SITE_ADDR=127.0.0.1:3000 LEPTOS_RELOAD_PORT=3001 LEPTOS_LIB_DIR=frontend LEPTOS_BIN_DIR=server \
  LEPTOS_JS_MINIFY=true LEPTOS_HASH_FILES=true LEPTOS_HASH_FILE_NAME=hash.txt
# Queries are checked against the committed .sqlx/ data, never a live server.
export SQLX_OFFLINE=true
export PATH="$HOME/.cargo/bin:$ROOT/end2end/node_modules/.bin:$PATH"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else fail "installing system packages needs root: run 'apt-get install $*' as root first"; fi
}

apt_install() {
  command -v apt-get >/dev/null || fail "$* is missing and this is not a Debian-like system: install it with your package manager"
  say "installing $* (Debian packages)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null \
    || { as_root apt-get update -q >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
}

ensure_rust() {
  command -v cargo >/dev/null || fail "Rust is missing: install it from https://rustup.rs"
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  if ! cargo leptos --version 2>/dev/null | grep -q " $CARGO_LEPTOS_VERSION"; then
    say "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 20 minutes the first time)"
    cargo install cargo-leptos --locked --version "$CARGO_LEPTOS_VERSION"
  fi
  if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION"; then
    say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
  fi
}

# The checks only the test command runs: that .sqlx/ matches the queries
# (sqlx-cli) and that no crate declares a dependency it does not use.
ensure_lint_tools() {
  if ! cargo sqlx --version 2>/dev/null | grep -q " $SQLX_CLI_VERSION"; then
    say "installing sqlx-cli $SQLX_CLI_VERSION (PostgreSQL only)"
    cargo install sqlx-cli --locked --version "$SQLX_CLI_VERSION" --no-default-features --features postgres,rustls
  fi
  if ! cargo machete --version 2>/dev/null | grep -qx "$CARGO_MACHETE_VERSION"; then
    say "installing cargo-machete $CARGO_MACHETE_VERSION"
    cargo install cargo-machete --locked --version "$CARGO_MACHETE_VERSION"
  fi
}

# The PostgreSQL server the tests used: BITGATE_TEST_DATABASE_URL, the
# local one on 127.0.0.1:5432, or the private cluster the tests started
# under target/ when there is neither (the tests' helper leaves it running).
test_server_url() {
  if [ -n "${BITGATE_TEST_DATABASE_URL:-}" ]; then
    printf '%s' "$BITGATE_TEST_DATABASE_URL"
  elif (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
    printf 'postgres://postgres@127.0.0.1:5432/postgres'
  else
    printf 'postgres://postgres@localhost/postgres?host=%s' "$ROOT/target/test-postgres/run"
  fi
}

# Checks that the committed .sqlx/ is what the queries of the sources give
# against the migrations of migrations/: a query changed without
# `cargo sqlx prepare --workspace` fails here, as does a file left behind.
check_offline_queries() {
  local server database
  server="$(test_server_url)"
  # Named like the tests' databases, whose helper drops any an interrupted run leaves behind.
  database="bitgate_test_sqlx_check_$$"
  # The database's name replaces the server URL's path; its query (a socket directory) stays.
  local base="${server%%\?*}" query=""
  [ "$base" = "$server" ] || query="?${server#*\?}"
  local url="${base%/*}/$database$query"
  DATABASE_URL="$url" sqlx database create
  local status=0 log
  log="$(mktemp)"
  {
    DATABASE_URL="$url" sqlx migrate run --source migrations >/dev/null &&
      DATABASE_URL="$url" SQLX_OFFLINE=false cargo sqlx prepare --workspace --check -- --release --locked --all-targets \
        2>&1 | tee "$log"
  } || status=$?
  # sqlx-cli only warns about files no query uses any more: they fail here.
  if grep -q "potentially unused queries" "$log"; then
    printf 'error: .sqlx/ holds files no query uses: run `cargo sqlx prepare --workspace` and commit the result\n' >&2
    status=1
  fi
  rm -f "$log"
  # The database goes whatever happened (one left behind is dropped by the next test run).
  DATABASE_URL="$url" sqlx database drop -y >/dev/null || true
  return "$status"
}

# wasm-opt (npm binaryen) and the browser tests' packages; cargo-leptos would
# otherwise try to download wasm-opt from GitHub.
ensure_npm_packages() {
  command -v npm >/dev/null || apt_install nodejs npm
  if [ ! -x end2end/node_modules/.bin/wasm-opt ] || [ end2end/package-lock.json -nt end2end/node_modules/.installed ]; then
    say "installing the npm packages of end2end/"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed)
  fi
}

# PostgreSQL's server binaries, for the embedded cluster (DATABASE_URL unset).
ensure_postgres_binaries() {
  [ -n "${DATABASE_URL:-}" ] && return 0
  if command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then return 0; fi
  apt_install postgresql
}

build_site() {
  say "building Bitgate (server, WASM islands, stylesheet)"
  cargo leptos build --release --precompress
}

# The embedded cluster runs as the `postgres` user when we are root: it must
# be able to enter the data directory's parents (not so under /root).
choose_data_dir() {
  if [ -n "${BITGATE_DATA_DIR:-}" ] || [ -n "${DATABASE_URL:-}" ] || [ "$(id -u)" != 0 ]; then return 0; fi
  local user=postgres
  id "$user" >/dev/null 2>&1 || user=nobody
  if ! su "$user" -s /bin/sh -c "test -x '$ROOT'" 2>/dev/null; then
    export BITGATE_DATA_DIR="/var/tmp/bitgate-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
    say "user $user cannot enter $ROOT: the embedded database goes to $BITGATE_DATA_DIR"
  fi
}
