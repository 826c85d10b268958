#!/usr/bin/env bash
# Runs every fuzz target under AFL++ for FUZZ_SECONDS (default 900) or FUZZ_EXECS executions
# (default 10,500,000), whichever comes first, one target after the other. Afterwards:
#   * every crash and hang is copied to fuzz/regressions/<target>/ (replayed by
#     `cargo test -p rivulet-fuzz` from then on) and the script exits non-zero;
#   * the queue is minimised with afl-cmin and merged into fuzz/corpus/<target>/;
#   * one line per target is appended to fuzz/runs.tsv (date, target, executions,
#     crashes, hangs), the record of how much fuzzing each target has had.
# Loopback-free and bounded: the targets never open a socket or a file.
set -euo pipefail

cd "$(dirname "$0")"
FUZZ_SECONDS=${FUZZ_SECONDS:-900}
FUZZ_EXECS=${FUZZ_EXECS:-10500000}
TARGETS=${FUZZ_TARGETS:-request record_batch coordinator_record peer_response}
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-${RIVULET_CACHE:-$HOME/.cache/rivulet}/fuzz-target}
# No CPU frequency governor or core-dump handler is ours to change on a shared machine.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1

cargo afl build --release --locked
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
for target in $TARGETS; do
    bin="$CARGO_TARGET_DIR/release/$target"
    out="$work/$target"
    echo "fuzzing $target for up to ${FUZZ_SECONDS}s / $FUZZ_EXECS executions"
    cargo afl fuzz -i "corpus/$target" -o "$out" -V "$FUZZ_SECONDS" -E "$FUZZ_EXECS" -t 2000 "$bin" \
        > "$work/$target.log" 2>&1 || { tail -20 "$work/$target.log"; exit 1; }
    stats="$out/default/fuzzer_stats"
    execs=$(awk '/^execs_done/ {print $3}' "$stats")
    crashes=$(awk '/^saved_crashes/ {print $3}' "$stats")
    hangs=$(awk '/^saved_hangs/ {print $3}' "$stats")
    for kind in crashes hangs; do
        for f in "$out/default/$kind"/id:*; do
            [ -e "$f" ] || continue
            mkdir -p "regressions/$target"
            cp "$f" "regressions/$target/$kind-$(sha256sum "$f" | cut -c1-16)"
            failed=1
        done
    done
    if cargo afl cmin -i "$out/default/queue" -o "$work/$target-min" -t 2000 -- "$bin" > /dev/null 2>&1; then
        for f in "$work/$target-min"/*; do
            [ -f "$f" ] && cp "$f" "corpus/$target/afl-$(sha256sum "$f" | cut -c1-16)"
        done
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%d)" "$target" "$execs" "$crashes" "$hangs" | tee -a runs.tsv
done
if [ "$failed" -ne 0 ]; then
    echo "crashes or hangs found: see fuzz/regressions/ (replay: cargo test -p rivulet-fuzz)" >&2
    exit 1
fi
