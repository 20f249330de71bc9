#!/usr/bin/env bash
# The demo: builds fate-rs (release) and, in one process, runs FATE's toy example between guest
# 9999 and host 10000 (prints "success to calculate secure_sum, it is 2000.0"), then FATE's
# benchmark jobs on the breast dataset (PSI + CoordinatedLR and PSI + SecureBoost, with
# evaluation), each with its time and AUC next to FATE 2.2's; the jobs are on the board at the
# printed URL, which stays up until Ctrl-C (`--exit` to leave at once).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build -q --release -p fate --locked
exec target/release/fate demo "$@"
