#!/bin/sh
# docs/errors.md must be what the catalogue's tests produce, and cover the
# whole API:
#  1. its table of rows (between the "rows:begin" and "rows:end" markers)
#     must equal the table the three catalogue binaries print with
#     DUET_ERRORS_DOC=1: every example message is copied from a run, and a
#     changed message or a new row fails `make test` until the doc follows
#     (regenerate with: tests/check_errors_doc.sh --print build);
#  2. every DUET_API function of include/duet.h that takes a pointer must
#     be named in docs/errors.md and called in the catalogue's tests (the
#     NULL rows N1-N9 pass NULL for each of its pointers).
#
#   tests/check_errors_doc.sh [--print] BUILD_DIR [header] [doc]
set -u

print=0
if [ "${1:-}" = "--print" ]; then print=1; shift; fi
build=${1:?usage: check_errors_doc.sh [--print] BUILD_DIR [header] [doc]}
hdr=${2:-include/duet.h}
doc=${3:-docs/errors.md}
tests="tests/test_errors.c tests/test_errors_modes.c tests/test_errors_nan.c"
for f in "$hdr" "$doc" $tests "$build/tests/test_errors" "$build/tests/test_errors_modes" \
         "$build/tests/test_errors_nan"; do
    [ -r "$f" ] || { echo "check_errors_doc: cannot read $f" >&2; exit 2; }
done

tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
for t in test_errors test_errors_modes test_errors_nan; do
    if ! DUET_ERRORS_DOC=1 CK_FORK=no "$build/tests/$t" > "$tmp/$t.out" 2>&1; then
        echo "check_errors_doc: $build/tests/$t failed:" >&2
        grep -v '^| ' "$tmp/$t.out" >&2
        exit 1
    fi
done
grep -h "^| [A-Z][0-9]* |" "$tmp/test_errors.out" "$tmp/test_errors_modes.out" \
    "$tmp/test_errors_nan.out" > "$tmp/run"
if [ "$print" = 1 ]; then cat "$tmp/run"; exit 0; fi

sed -n '/<!-- rows:begin/,/<!-- rows:end/p' "$doc" | grep '^| [A-Z][0-9]* |' > "$tmp/doc"
nrun=$(grep -c . "$tmp/run")
if [ "$nrun" -lt 60 ]; then
    echo "check_errors_doc: only $nrun rows printed by the tests" >&2
    exit 1
fi
if ! diff -u "$tmp/doc" "$tmp/run" > "$tmp/diff"; then
    echo "check_errors_doc: the rows of $doc differ from the tests' run (- doc, + run):" >&2
    cat "$tmp/diff" >&2
    exit 1
fi

# DUET_API declarations, each joined onto one line up to its ';'.
decls=$(awk '/DUET_API/ && !/#[ \t]*define/ { d = $0; while (d !~ /;/ && (getline l) > 0) d = d " " l;
             print d }' "$hdr")
missing=""
n=0
for name in $(printf '%s\n' "$decls" | grep '(.*\*.*)' |
              sed -n 's/.*[[:space:]*]\(duet_[A-Za-z0-9_]*\)[[:space:]]*(.*/\1/p'); do
    n=$((n + 1))
    grep -qw "$name" "$doc" || missing="$missing $name(doc)"
    cat $tests | grep -qw "$name" || missing="$missing $name(tests)"
done
if [ -n "$missing" ] || [ "$n" -lt 50 ]; then
    echo "check_errors_doc: functions with pointer parameters ($n found) not covered:$missing" >&2
    exit 1
fi
echo "check_errors_doc: $nrun rows of $doc match the run; all $n functions with pointer parameters are covered"
