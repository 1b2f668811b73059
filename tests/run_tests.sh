#!/bin/sh
# Runs test binaries under each kernel table, several at a time: most test
# binaries keep one CPU busy, so on a 2-CPU machine two at once halve the
# suite's wall time (make test, test-threads, sanitize, test-noavx2 all come
# here). Each binary's output is printed whole when it ends, so runs never
# interleave; the exit status is 1 if any binary failed, and the failed
# ones are listed at the end.
#
#   sh tests/run_tests.sh BIN...
#
# Environment (all optional):
#   TEST_ISAS    kernel tables to run, "scalar avx2" by default (avx2 is
#                skipped where the CPU lacks it); "auto" leaves DUET_ISA
#                unset so that the library's detection decides
#   TEST_ENV     VAR=value words put in front of every run
#   TEST_RUNNER  a command every binary runs under (valgrind, qemu)
#   TEST_JOBS    how many at once (default: the CPUs this process may use)
#   TEST_LABEL   put at the head of each run's first line
#   TEST_ALONE   binary names that use the thread team heavily: they run
#                one at a time after the rest, so that two of them never
#                spin against each other for the same CPUs
set -u

TEST_ENV=${TEST_ENV:-}
TEST_RUNNER=${TEST_RUNNER:-}
TEST_LABEL=${TEST_LABEL:-}

# Runs one binary under one table ($0 --one isa binary, from xargs below);
# prints its log under a lock when it ends.
if [ "${1:-}" = --one ]; then
  isa=$2 t=$3
  log="$out/$(echo "$isa $t" | tr '/ ' '__').log"
  if [ "$isa" = auto ]; then
    head="== ${TEST_LABEL:+$TEST_LABEL: }$TEST_RUNNER $t"
    set -- env -u DUET_ISA CK_FORK=no $TEST_ENV $TEST_RUNNER "$t"
  else
    head="== ${TEST_LABEL:+$TEST_LABEL: }DUET_ISA=$isa $t"
    set -- env DUET_ISA="$isa" CK_FORK=no $TEST_ENV $TEST_RUNNER "$t"
  fi
  { echo "$head"; "$@"; } >"$log" 2>&1
  rc=$?
  [ $rc = 0 ] || echo "$head (exit $rc)" >>"$out/failed"
  flock "$out/print" cat "$log"
  exit 0
fi

isas=${TEST_ISAS:-scalar avx2}
jobs=${TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}
alone=${TEST_ALONE:-}
out=$(mktemp -d "${TMPDIR:-/tmp}/duet-tests.XXXXXX") || exit 1
trap 'rm -rf "$out"' EXIT INT TERM

# One line per run: "isa binary", first those that may share the machine.
for pass in shared alone; do
  for isa in $isas; do
    if [ "$isa" = avx2 ] && ! grep -q avx2 /proc/cpuinfo; then
      [ $pass = shared ] && echo "== AVX2 not supported here: avx2 runs skipped"
      continue
    fi
    for t in "$@"; do
      case " $alone " in *" $(basename "$t") "*) is_alone=alone ;; *) is_alone=shared ;; esac
      [ $is_alone = $pass ] && echo "$isa $t" >>"$out/$pass"
    done
  done
done

export out TEST_ENV TEST_RUNNER TEST_LABEL
run_list() { # file, parallelism
  [ -s "$1" ] || return 0
  xargs -P "$2" -L 1 sh "$0" --one <"$1"
}

run_list "$out/shared" "$jobs"
run_list "$out/alone" 1

if [ -s "$out/failed" ]; then
  echo "== failed:"
  cat "$out/failed"
  exit 1
fi
exit 0
