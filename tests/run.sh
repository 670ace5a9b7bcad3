#!/bin/sh
# Runs every test given on the command line and prints one summary line.
# A test passes with exit 0, is skipped with exit 77 (it must say why on its
# output), and fails otherwise. Integration tests (*.sh) get the build
# directory as $HA_BUILD.
set -u
build=$1
shift
export HA_BUILD="$build"
pass=0 fail=0 skip=0 failed=""
for t in "$@"; do
	name=$(basename "$t")
	echo "=== $name"
	case "$t" in
	*.sh) sh "$t" ;;
	*) "$t" ;;
	esac
	rc=$?
	case $rc in
	0) pass=$((pass + 1)); echo "--- PASS $name" ;;
	77) skip=$((skip + 1)); echo "--- SKIP $name" ;;
	*) fail=$((fail + 1)); failed="$failed $name"; echo "--- FAIL $name (exit $rc)" ;;
	esac
done
[ -n "$failed" ] && echo "failed:$failed"
echo "check: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
