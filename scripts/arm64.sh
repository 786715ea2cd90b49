#!/usr/bin/env bash
# Builds every Lambda for arm64 (Graviton, provided.al2023) in release, as the deploy
# ships them, and prints each bootstrap's size against the 8 MB goal.
#
# rustup cannot fetch an aarch64 standard library here, but Debian packages one for its
# own Rust: rustc-web/cargo-web (1.96) with libstd-rust-web-dev:arm64, linked as the
# rustup toolchain `debian-web`; gcc-aarch64-linux-gnu links, qemu-user runs the
# binaries for the bootstrap test on Debian's multiarch libc6:arm64. Installed once,
# reused after.
# Usage: scripts/arm64.sh [build|toolchain|dir]
#   build      the toolchain if missing, then the release build and the sizes
#   toolchain  only the toolchain (the deploy workflow's `sam build` uses it too)
#   dir        where the binaries land
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
TARGET=aarch64-unknown-linux-gnu
TOOLCHAIN=debian-web
OUT="${CARGO_TARGET_DIR:-$REPO/target}/$TARGET/release"
GOAL_BYTES=$((8 * 1024 * 1024))
export DEBIAN_FRONTEND=noninteractive

log() { echo "arm64: $*" >&2; }

install_toolchain() {
  if rustup toolchain list | grep -q "^$TOOLCHAIN" && [ -d /usr/lib/rustlib/$TARGET ] &&
    command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64 >/dev/null &&
    [ -e /lib/ld-linux-aarch64.so.1 ]; then
    return
  fi
  log "installing Debian's Rust with an aarch64 standard library, the cross linker and qemu-user"
  dpkg --add-architecture arm64
  apt-get update -q >&2
  apt-get install -y -q rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu \
    libc6-dev-arm64-cross libc6:arm64 qemu-user >&2
  rustup toolchain link "$TOOLCHAIN" /usr
}

build() {
  install_toolchain
  cd "$REPO"
  # One cargo invocation: the dependencies are built once for all functions.
  cargo "+$TOOLCHAIN" build --release --locked --target "$TARGET" \
    --config "target.$TARGET.linker=\"aarch64-linux-gnu-gcc\"" \
    --workspace --exclude flashsale-local --bins
  local over=0 bin size
  printf '%-16s %10s  %s\n' bootstrap bytes "MB (goal <= 8)" >&2
  for bin in $(cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(" ".join(t["name"] for p in json.load(sys.stdin)["packages"] if p["name"] != "flashsale-local" for t in p["targets"] if "bin" in t["kind"]))'); do
    size=$(stat -c %s "$OUT/$bin")
    [ "$size" -le "$GOAL_BYTES" ] || over=$((over + 1))
    printf '%-16s %10d  %s\n' "$bin" "$size" "$(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }')" >&2
  done
  [ "$over" = 0 ] && log "every bootstrap within 8 MB" || log "$over bootstrap(s) above the 8 MB goal"
}

case "${1:-build}" in
  build) build ;;
  toolchain) install_toolchain ;;
  dir) echo "$OUT" ;;
  *) echo "usage: $0 [build|toolchain|dir]" >&2; exit 2 ;;
esac
