#!/bin/bash
# Boots the Xen lab under QEMU (TCG) and runs the lab tests in its dom0.
#
#   tests/lab/run.sh BUILD [TEST...]     e.g. tests/lab/run.sh build/default 30-xl-remus
#
# Builds the lab first (tests/lab/build.sh, cached). The serial log is kept
# in build/lab/serial.log, and a failed run's also in
# build/lab/serial-failed-TIME.log, which the next run leaves alone. Prints "lab: N passed, N failed, N skipped" and
# exits non-zero on a failed test, a boot that never reached the tests, a
# dom0 that stopped early, or a timeout. Environment: LAB_TIMEOUT (whole
# run, seconds, default 3600), LAB_TEST_TIMEOUT (default per test, 300);
# for experiments (docs/lab.md, "Crashes"): LAB_QEMU (the QEMU binary;
# default: tests/qemu/build.sh's), LAB_QEMU_ACCEL, LAB_QEMU_CPU,
# LAB_QEMU_SMP (QEMU's -accel, -cpu and -smp), LAB_QEMU_ARGS (more QEMU
# options, e.g. a monitor socket), LAB_XEN_ARGS and LAB_DOM0_ARGS
# (appended to Xen's and dom0's command lines).
set -uo pipefail
export LC_ALL=C

B=${1:?usage: tests/lab/run.sh BUILD [TEST...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
lab=$top/build/lab
timeout_s=${LAB_TIMEOUT:-3600}
test_timeout=${LAB_TEST_TIMEOUT:-300}

if ! command -v qemu-system-x86_64 >/dev/null; then
	echo "LAB: SKIP lab: qemu-system-x86_64 is not installed (Debian package qemu-system-x86:" \
		"run scripts/install-deps.sh as root); the Xen lab did not run"
	echo "lab: 0 passed, 0 failed, 1 skipped"
	exit 0
fi

"$here/build.sh" "$B" || { echo "lab: building the lab failed (see above)"; echo "lab: 0 passed, 1 failed, 0 skipped"; exit 1; }
# QEMU: Debian's, built with the fix to its emulated SVM that the lab's
# domUs need (tests/qemu/build.sh; docs/lab.md, "Crashes"). LAB_QEMU
# names another binary (e.g. qemu-system-x86_64, Debian's own, to compare).
if [ -n "${LAB_QEMU:-}" ]; then
	qemu=$LAB_QEMU
else
	qemu=$("$top/tests/qemu/build.sh") ||
		{ echo "lab: building QEMU failed (see above)"; echo "lab: 0 passed, 1 failed, 0 skipped"; exit 1; }
fi
img=$lab/current
tests=$(IFS=+; echo "$*")
log=$lab/serial.log
: >"$log"

dom0_args="console=hvc0 earlyprintk=xen rdinit=/init lab.timeout=$test_timeout"
[ -n "$tests" ] && dom0_args="$dom0_args lab.tests=$tests"
[ -n "${LAB_DOM0_ARGS:-}" ] && dom0_args="$dom0_args $LAB_DOM0_ARGS"
# guest_loglvl=error/warning: a guest's errors, such as Xen's "Triple
# fault" line, are never rate-limited away; conring_size: dom0 reads Xen's
# console after each test (init.sh) and must find all of it there.
xen_args="console=com1 com1=115200,8n1 dom0_mem=1536M,max:1536M dom0_max_vcpus=2 noreboot"
xen_args="$xen_args guest_loglvl=error/warning conring_size=1m${LAB_XEN_ARGS:+ $LAB_XEN_ARGS}"
# One TCG thread for both emulated CPUs: under multi-threaded TCG the
# domUs still died now and then, at boot and under checkpoints, with the
# SVM fix in (docs/lab.md, "Crashes"); with one thread none did, at about
# the same speed here.
accel=${LAB_QEMU_ACCEL:-tcg,thread=single}
cpu=${LAB_QEMU_CPU:-qemu64,+svm,+npt}
smp=${LAB_QEMU_SMP:-2}

echo "lab: booting Xen under $qemu (-accel $accel -cpu $cpu -smp $smp), at most ${timeout_s}s; serial log: $log"
echo "lab: Xen: $xen_args"
t0=$(date +%s)
# LAB_QEMU_ARGS is split into words on purpose.
# shellcheck disable=SC2086
timeout -k 10 "$timeout_s" "$qemu" \
	-accel "$accel" -cpu "$cpu" -m 3072 -smp "$smp" \
	-display none -nodefaults -no-reboot -monitor none -serial "file:$log" \
	-kernel "$img/xen" -append "$xen_args" \
	-initrd "$img/vmlinuz $dom0_args,$img/dom0.gz" ${LAB_QEMU_ARGS:-} &
qpid=$!
# Show the result lines as they come.
tail -n +1 -s 1 -f --pid=$qpid "$log" 2>/dev/null |
	grep --line-buffered -a -E '^(LAB: |lab: )' | sed -u 's/\r$//' &
tpid=$!
wait $qpid
qrc=$?
wait $tpid 2>/dev/null
secs=$(($(date +%s) - t0))

res=$(tr -d '\r' <"$log" | grep -a '^LAB: ')
pass=$(grep -c '^LAB: PASS ' <<<"$res")
fail=$(grep -c '^LAB: FAIL ' <<<"$res")
skip=$(grep -c '^LAB: SKIP ' <<<"$res")
bad=""
echo "lab: QEMU ran ${secs}s (exit $qrc)"
if ! grep -q '^LAB: READY' <<<"$res"; then
	bad="the boot never reached the tests"
	[ "$qrc" -eq 124 ] && bad="$bad (timed out after ${timeout_s}s)"
	tail -n 25 "$log" | tr -d '\r'
elif ! grep -q '^LAB: DONE' <<<"$res"; then
	last=$(grep '^LAB: BEGIN ' <<<"$res" | tail -n 1 | cut -d' ' -f3)
	if [ "$qrc" -eq 124 ]; then
		bad="timed out after ${timeout_s}s, in test ${last:-?}"
	else
		bad="dom0 stopped before the end (QEMU exit $qrc), in test ${last:-?}"
	fi
	tail -n 25 "$log" | tr -d '\r'
	fail=$((fail + 1))
fi
grep '^LAB: FIGURE ' <<<"$res" | sed 's/^LAB: FIGURE /lab: figure /'
grep -E '^LAB: (FAIL|SKIP) ' <<<"$res" | sed 's/^LAB: /lab: /'
# Every triple fault Xen logged must be some test's failure: dom0 counts
# them per test from Xen's console ring; this counts them on the serial
# console, which dom0 cannot lose.
tf_serial=$(tr -d '\r' <"$log" | grep -a -c '^(XEN) .*Triple fault')
tf_tests=$(grep '^LAB: FIGURE ' <<<"$res" | grep -v '^LAB: FIGURE crashes ' |
	grep -o 'domu_triple_faults=[0-9]*' | awk -F= '{s += $2} END {print s + 0}')
echo "lab: Xen logged $tf_serial triple fault(s) on the serial console; the tests counted $tf_tests"
if [ "$tf_serial" -gt "$tf_tests" ] && [ -z "$bad" ]; then
	bad="Xen logged $tf_serial triple fault(s), the tests counted $tf_tests"
fi
[ -n "$bad" ] && echo "lab: FAIL: $bad; serial log: $log"
[ -n "$bad" ] && [ "$fail" -eq 0 ] && fail=1
if [ "$fail" -ne 0 ]; then
	kept=$lab/serial-failed-$(date -u +%Y%m%dT%H%M%S).log
	cp "$log" "$kept" && echo "lab: this failed run's serial log is kept in $kept"
fi
echo "lab: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ -z "$bad" ]
