# Shared by scripts/serve and scripts/test: install whatever is missing,
# then build the site once (server binary, WASM bundle, CSS) in release mode.
# Every step is idempotent and quick when there is nothing to do.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CARGO_LEPTOS_VERSION=0.3.10
WASM_BINDGEN_VERSION=0.2.130

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
