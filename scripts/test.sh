#!/usr/bin/env bash
# Runs every test of the workspace. Does its own set-up on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."
FATE_SETUP=tests source scripts/setup.sh
export CARGO_INCREMENTAL=0
# Build everything first so test timings are not build timings.
cargo build --workspace --tests --locked
cargo test --workspace --locked
