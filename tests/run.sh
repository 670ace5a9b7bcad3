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
#
# The lab is one emulation thread: HA_KVMLAB_JOBS labs (default: the
# number of CPUs, at most 4) run side by side, each taking the next test
# not yet taken from a shared queue (HA_TEST_QUEUE, a directory on this
# machine's file system: a test is taken by creating its entry there), so
# that every test still runs once, in a lab of its own boot's making.
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

i=0
for t in "$@"; do
	name=$(basename "$t")
	i=$((i + 1))
	if [ -n "${HA_TEST_QUEUE:-}" ] && ! mkdir "$HA_TEST_QUEUE/$i" 2>/dev/null; then
		continue # another lab took it
	fi
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
	top=$(cd "$(dirname "$0")/.." && pwd)
	n=$(echo $labtests | wc -w)
	jobs=${HA_KVMLAB_JOBS:-$(nproc)}
	case $jobs in '' | *[!0-9]* | 0) echo "HA_KVMLAB_JOBS is a whole number >= 1, not '$jobs'"; exit 2 ;; esac
	[ "$jobs" -gt 4 ] && [ -z "${HA_KVMLAB_JOBS:-}" ] && jobs=4
	[ "$jobs" -gt "$n" ] && jobs=$n
	echo "=== KVM lab: these need KVM (or sch_plug) that this machine lacks, so they run in"
	echo "=== $jobs Linux VM(s) under QEMU (TCG, nested KVM, Debian's kernel), each taking the"
	echo "=== next test left:$labtests"
	"$top/tests/kvmlab/build.sh" >/dev/null || "$top/tests/kvmlab/build.sh"
	mkdir -p "$top/build/kvmlab"
	queue=$(mktemp -d "$top/build/kvmlab/queue.XXXXXX")
	label() { if [ "$jobs" -gt 1 ]; then sed -u "s/^/[lab $1] /"; else cat; fi; }
	for j in $(seq "$jobs"); do
		# Each lab's lines as they come, named by lab when there are several.
		# shellcheck disable=SC2086
		{
			HA_TEST_QUEUE=$queue KVMLAB_SLOT=$j KVMLAB_ENV="${KVMLAB_ENV:-} HA_TEST_QUEUE" \
				"$top/tests/kvmlab/run.sh" -- tests/run.sh "$build" $labtests 2>&1
			echo $? >"$queue/rc.$j"
		} | tee "$queue/out.$j" | label "$j" &
	done
	wait
	reported=0
	for j in $(seq "$jobs"); do
		rc=$(cat "$queue/rc.$j")
		res=$(sed -n 's/^check: \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped$/\1 \2 \3/p' "$queue/out.$j" | tail -n 1)
		if [ -n "$res" ]; then
			set -- $res
			pass=$((pass + $1)) fail=$((fail + $2)) skip=$((skip + $3))
			reported=$((reported + $1 + $2 + $3))
			failed="$failed$(sed -n 's/^failed://p' "$queue/out.$j" | tail -n 1)"
		else
			echo "--- FAIL KVM lab $j did not report (exit $rc): see build/kvmlab/console.$j.log"
			failed="$failed kvmlab.$j"
		fi
	done
	if [ "$reported" -lt "$n" ]; then
		echo "--- FAIL $((n - reported)) of the lab's $n tests did not report: they count as failed"
		fail=$((fail + n - reported))
	fi
	rm -rf "$queue"
fi
[ -n "$failed" ] && echo "failed:$failed"
echo "check: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
