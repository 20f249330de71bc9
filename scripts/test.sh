#!/usr/bin/env bash
# Runs every test of the workspace. Does its own set-up on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."
FATE_SETUP=tests source scripts/setup.sh
export CARGO_INCREMENTAL=0
# Build everything first so test timings are not build timings.
cargo build --workspace --tests --locked
cargo test --workspace --locked
# The component suites that put work on tables again on the encoded engine (every kernel through
# the registry over encoded rows, as on Spark); CoordinatedLR and SecureBoost pass there too
# (FATE_TEST_ENGINE=encoded cargo test -p fate-components) but add ~6 minutes.
FATE_TEST_ENGINE=encoded cargo test --locked -p fate-components --test psi --test it --test evaluation
