#!/usr/bin/env bash
# Runs every fuzz target under AFL++ for FUZZ_SECONDS (default 900) or FUZZ_EXECS executions
# (default 10,500,000), whichever comes first, one target after the other. Afterwards:
#   * every crash and hang is copied to fuzz/regressions/<target>/ (replayed by
#     `cargo test -p rivulet-fuzz` from then on) and the script exits non-zero;
#   * the queue is minimised with afl-cmin and merged into fuzz/corpus/<target>/;
#   * one line per target is appended to fuzz/runs.tsv (date, target, executions,
#     crashes, hangs), the record of how much fuzzing each target has had.
# With FUZZ_SMOKE=1 (`make test`), a short run that changes nothing in the repository: each
# target starts from its corpus and its regressions together (AFL++ refuses to start if any
# of them crashes or hangs, which is the regression check with the harness's overflow
# checks on), runs FUZZ_SECONDS (default 15), and a crash found fails the run and is kept
# under $RIVULET_CACHE/fuzz-smoke/ to be added to regressions/ by hand.
# Loopback-free and bounded: the targets never open a socket or a file.
set -euo pipefail

cd "$(dirname "$0")"
FUZZ_SMOKE=${FUZZ_SMOKE:-0}
if [ "$FUZZ_SMOKE" = 1 ]; then FUZZ_SECONDS=${FUZZ_SECONDS:-15}; fi
FUZZ_SECONDS=${FUZZ_SECONDS:-900}
FUZZ_EXECS=${FUZZ_EXECS:-10500000}
TARGETS=${FUZZ_TARGETS:-request record_batch coordinator_record peer_response}
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-${RIVULET_CACHE:-$HOME/.cache/rivulet}/fuzz-target}
# No CPU frequency governor or core-dump handler is ours to change on a shared machine.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1

cargo afl build --release --locked
# AFL++'s own tools, where cargo-afl built them for this compiler.
rustc_id=$(rustc -V | awk '{print $2 "-" substr($3, 2, 7)}')
afl_bin=$(ls -d "${XDG_DATA_HOME:-$HOME/.local/share}/afl.rs/rustc-$rustc_id"/afl.rs-*/afl/bin | tail -1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
for target in $TARGETS; do
    bin="$CARGO_TARGET_DIR/release/$target"
    out="$work/$target"
    seeds="corpus/$target"
    if [ "$FUZZ_SMOKE" = 1 ]; then
        seeds="$work/$target-seeds"
        mkdir -p "$seeds"
        cp "corpus/$target"/* "$seeds"/
        if [ -d "regressions/$target" ]; then cp "regressions/$target"/* "$seeds"/; fi
    fi
    echo "fuzzing $target for up to ${FUZZ_SECONDS}s / $FUZZ_EXECS executions"
    cargo afl fuzz -i "$seeds" -o "$out" -V "$FUZZ_SECONDS" -E "$FUZZ_EXECS" -t 2000 "$bin" \
        > "$work/$target.log" 2>&1 || { tail -20 "$work/$target.log"; exit 1; }
    stats="$out/default/fuzzer_stats"
    execs=$(awk '/^execs_done/ {print $3}' "$stats")
    crashes=$(awk '/^saved_crashes/ {print $3}' "$stats")
    hangs=$(awk '/^saved_hangs/ {print $3}' "$stats")
    if [ "$FUZZ_SMOKE" = 1 ]; then
        echo "$target: $execs executions, $crashes crashes, $hangs hangs"
        if [ "$crashes" != 0 ] || [ "$hangs" != 0 ]; then
            keep="${RIVULET_CACHE:-$HOME/.cache/rivulet}/fuzz-smoke/$target"
            mkdir -p "$keep"
            cp "$out/default"/crashes/id:* "$out/default"/hangs/id:* "$keep"/ 2>/dev/null || true
            echo "$target: inputs kept in $keep; copy them to fuzz/regressions/$target/" >&2
            failed=1
        fi
        continue
    fi
    for kind in crashes hangs; do
        for f in "$out/default/$kind"/id:*; do
            [ -e "$f" ] || continue
            mkdir -p "regressions/$target"
            cp "$f" "regressions/$target/$kind-$(sha256sum "$f" | cut -c1-16)"
            failed=1
        done
    done
    # The awk afl-cmin: the Python one (what `cargo afl cmin` runs) records no coverage
    # from these persistent-mode targets and keeps nothing.
    AFL_PATH="$afl_bin" "$afl_bin/afl-cmin.awk" -i "$out/default/queue" -o "$work/$target-min" \
        -t 2000 -- "$bin" > "$work/$target-cmin.log" 2>&1 || { tail -20 "$work/$target-cmin.log"; exit 1; }
    kept=0
    for f in "$work/$target-min"/*; do
        [ -f "$f" ] || continue
        cp "$f" "corpus/$target/afl-$(sha256sum "$f" | cut -c1-16)"
        kept=$((kept + 1))
    done
    echo "$target: $kept inputs of the minimised queue merged into corpus/$target/"
    printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%d)" "$target" "$execs" "$crashes" "$hangs" | tee -a runs.tsv
done
if [ "$failed" -ne 0 ]; then
    if [ "$FUZZ_SMOKE" = 1 ]; then
        echo "crashes or hangs found (above)" >&2
    else
        echo "crashes or hangs found: see fuzz/regressions/ (replay: cargo test -p rivulet-fuzz)" >&2
    fi
    exit 1
fi
