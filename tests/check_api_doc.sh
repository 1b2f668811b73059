#!/bin/sh
# docs/api.md must cover the whole public API: every function declared with
# DUET_API in include/duet.h has to appear there as a heading or as a code
# span (`name` or `name(...)`). A function added to the header without its
# entry fails `make test`, naming what is missing; so does a declaration
# this script cannot parse, so the check cannot pass by reading nothing.
#
#   tests/check_api_doc.sh [header] [doc]
set -u

hdr=${1:-include/duet.h}
doc=${2:-docs/api.md}
for f in "$hdr" "$doc"; do
    [ -r "$f" ] || { echo "check_api_doc: cannot read $f" >&2; exit 2; }
done

# Declarations are one line each from DUET_API to the name's '('; the macro's
# own #define is not one.
decls=$(grep -n 'DUET_API' "$hdr" | grep -v '#[[:space:]]*define')
names=$(printf '%s\n' "$decls" |
        sed -n 's/^[0-9]*:[[:space:]]*DUET_API[^(]*[[:space:]*]\(duet_[A-Za-z0-9_]*\)[[:space:]]*(.*/\1/p')
ndecl=$(printf '%s\n' "$decls" | grep -c .)
nname=$(printf '%s\n' "$names" | grep -c .)
if [ "$ndecl" -ne "$nname" ] || [ "$nname" -eq 0 ]; then
    echo "check_api_doc: $ndecl DUET_API lines in $hdr but $nname function names parsed;" >&2
    echo "check_api_doc: keep each declaration's name on its DUET_API line:" >&2
    printf '%s\n' "$decls" | grep -v 'DUET_API[^(]*duet_[A-Za-z0-9_]*[[:space:]]*(' >&2
    exit 1
fi

missing=""
for n in $names; do
    # A heading that names it as a whole word, or a code span starting with it.
    if grep -Eq "^#.*[^A-Za-z0-9_]${n}([^A-Za-z0-9_]|\$)" "$doc" ||
       grep -Eq "\`${n}[\`(]" "$doc"; then
        continue
    fi
    missing="$missing $n"
done

if [ -n "$missing" ]; then
    echo "check_api_doc: DUET_API functions of $hdr missing from $doc:" >&2
    for n in $missing; do echo "  $n" >&2; done
    exit 1
fi
echo "check_api_doc: all $nname DUET_API functions of $hdr are in $doc"
