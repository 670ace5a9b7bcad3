#!/bin/sh
# Runs every test given on the command line and prints one summary line.
# A test passes with exit 0, is skipped with exit 77 (it must say why on its
# output), and fails otherwise. Integration tests (*.sh) get the build
# directory as $HA_BUILD.
#
# Tests that run guests in ha-vm say so with a line "# needs: kvm" (a
# comment in a script, a string in a test binary: test_vmm.c). Where
# this machine has no usable /dev/kvm they run in the KVM lab
# (tests/kvmlab/run.sh: a Linux VM under QEMU whose /dev/kvm is nested, on
# Debian's kernel), together in one boot, each with its own result line;
# the summary counts them with the rest. HA_KVM=lab sends them to the lab
# even where /dev/kvm exists, HA_KVM=host never (they then skip, saying
# why). Tests marked "# needs: sch_plug" go there too when this machine's
# kernel lacks the plug qdisc (unless HA_KVM=host).
set -u
build=$1
shift
export HA_BUILD="$build"
pass=0 fail=0 skip=0 failed="" labtests=""

use_lab=0
case ${HA_KVM:-auto} in
lab) use_lab=1 ;;
host) ;;
auto) [ -w /dev/kvm ] || use_lab=1 ;;
*) echo "HA_KVM is auto, lab or host, not '$HA_KVM'"; exit 2 ;;
esac
plug_lab=0
[ "${HA_KVM:-auto}" != host ] && ! [ -d /sys/module/sch_plug ] &&
	! modprobe -q sch_plug 2>/dev/null && plug_lab=1
if [ "${HA_KVMLAB:-0}" = 1 ]; then # already inside it
	use_lab=0 plug_lab=0
fi

for t in "$@"; do
	name=$(basename "$t")
	if { [ "$use_lab" = 1 ] && grep -aq '^# needs: kvm' "$t"; } 2>/dev/null ||
		{ [ "$plug_lab" = 1 ] && grep -q '^# needs: sch_plug' "$t"; } 2>/dev/null; then
		labtests="$labtests $t"
		continue
	fi
	echo "=== $name"
	t0=$(date +%s)
	case "$t" in
	*.sh) sh "$t" ;;
	*) "$t" ;;
	esac
	rc=$?
	secs=$(($(date +%s) - t0))
	case $rc in
	0) pass=$((pass + 1)); echo "--- PASS $name (${secs} s)" ;;
	77) skip=$((skip + 1)); echo "--- SKIP $name" ;;
	*) fail=$((fail + 1)); failed="$failed $name"; echo "--- FAIL $name (exit $rc, ${secs} s)" ;;
	esac
done

if [ -n "$labtests" ]; then
	echo "=== KVM lab: these need KVM (or sch_plug) that this machine lacks, so they run in a"
	echo "=== Linux VM under QEMU (TCG, nested KVM, Debian's kernel):$labtests"
	out=$(mktemp)
	# shellcheck disable=SC2086
	{
		"$(dirname "$0")/kvmlab/run.sh" -- tests/run.sh "$build" $labtests
		echo $? >"$out.rc"
	} | tee "$out"
	rc=$(cat "$out.rc")
	res=$(sed -n 's/^check: \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped$/\1 \2 \3/p' "$out" | tail -n 1)
	if [ -n "$res" ]; then
		set -- $res
		pass=$((pass + $1)) fail=$((fail + $2)) skip=$((skip + $3))
		failed="$failed$(sed -n 's/^failed://p' "$out" | tail -n 1)"
	else
		n=$(echo $labtests | wc -w)
		echo "--- FAIL the KVM lab did not report (exit $rc): its $n tests count as failed"
		fail=$((fail + n)) failed="$failed kvmlab"
	fi
	rm -f "$out" "$out.rc"
fi
[ -n "$failed" ] && echo "failed:$failed"
echo "check: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
