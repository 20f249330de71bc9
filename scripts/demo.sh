#!/usr/bin/env bash
# The demo: builds fate-rs and runs FATE's toy example (1.x secure_add_example) between
# guest 9999 and host 10000 in one process. Expected: "success to calculate secure_sum, it is 2000.0".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build -q -p fate --locked
exec target/debug/fate toy --guest 9999 --host 10000 "$@"
