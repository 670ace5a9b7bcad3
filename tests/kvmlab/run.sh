#!/bin/bash
# Runs a command inside the KVM lab: Debian's kernel under QEMU (TCG) with
# emulated SVM, which has /dev/kvm, on this machine's own file system
# (virtio-9p), so the command sees the same tree, binaries and scripts.
#
#   tests/kvmlab/run.sh [-m MB] [--] CMD [ARG...]
#
# The command runs from the project's top directory as root, with
# HA_KVMLAB=1 and HA_TIME_SCALE (default 5, or the caller's) in its
# environment, plus the variables named in KVMLAB_ENV (space-separated)
# taken from the caller's. Its output is shown as it comes; the exit status
# is the command's (125: the lab failed to start it, 124: timed out).
# Environment: KVMLAB_TIMEOUT (seconds, default 3600); KVMLAB_SLOT (a
# name for one of several labs running at once: their logs are kept apart);
# for experiments, KVMLAB_QEMU (the QEMU binary) and KVMLAB_QEMU_ACCEL
# (QEMU's -accel). The guest kernel's console goes to
# build/kvmlab/console.log (console.SLOT.log), QEMU's own messages to
# qemu.log (qemu.SLOT.log).
set -uo pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
lab=$top/build/kvmlab
mem=3072
while [ $# -gt 0 ]; do
	case $1 in
	-m) mem=$2; shift 2 ;;
	--) shift; break ;;
	*) break ;;
	esac
done
[ $# -gt 0 ] || { echo "usage: tests/kvmlab/run.sh [-m MB] [--] CMD [ARG...]" >&2; exit 2; }
timeout_s=${KVMLAB_TIMEOUT:-3600}
slot=${KVMLAB_SLOT:+.$KVMLAB_SLOT}
console=$lab/console$slot.log qlog=$lab/qemu$slot.log

command -v qemu-system-x86_64 >/dev/null ||
	{ echo "kvmlab: qemu-system-x86_64 is missing: run scripts/install-deps.sh as root" >&2; exit 125; }
"$here/build.sh" || { echo "kvmlab: building the lab failed (see above)" >&2; exit 125; }
img=$(cd "$lab/current" && pwd -P)

mkdir -p "$lab/jobs"
id=$$-$(date +%s)
job=$lab/jobs/$id.sh
out=$lab/jobs/$id.out
{
	echo "cd $(printf %q "$top") || exit 125"
	echo "export HA_KVMLAB=1 HA_TIME_SCALE=$(printf %q "${HA_TIME_SCALE:-5}")"
	for v in ${KVMLAB_ENV:-}; do
		[ -n "${!v+x}" ] && echo "export $v=$(printf %q "${!v}")"
	done
	printf 'exec'
	printf ' %q' "$@"
	echo
} >"$job"
: >"$out"

# One TCG thread for both emulated CPUs: under multi-threaded TCG the lab's
# kernel died once in `make faults` ("corrupted stack end detected inside
# scheduler", 3 faults in); with one thread the same 20 faults ran through
# (docs/kvm-lab.md). The Xen lab made the same choice (docs/lab.md).
timeout -k 10 "$timeout_s" "${KVMLAB_QEMU:-qemu-system-x86_64}" \
	-accel "${KVMLAB_QEMU_ACCEL:-tcg,thread=single}" -cpu EPYC,+svm -m "$mem" -smp 2 \
	-display none -nodefaults -no-reboot -monitor none \
	-serial "file:$console" -serial "file:$out" \
	-virtfs "local,path=/,mount_tag=hostroot,security_model=passthrough,multidevs=remap" \
	-device virtio-rng-pci \
	-kernel "$img/vmlinuz" -initrd "$img/initrd.gz" \
	-append "console=ttyS0 loglevel=4 panic=-1 kvmlab.job=$job kvmlab.modules=$img/modules" \
	2>"$qlog" &
qpid=$!
# The serial line ends lines with CR LF: show them as the job wrote them.
tail -n +1 -s 0.3 -f --pid=$qpid "$out" 2>/dev/null | sed -u 's/\r$//' | grep --line-buffered -av '^KVMLAB: EXIT ' &
tpid=$!
wait $qpid
qrc=$?
wait $tpid 2>/dev/null
rc=$(tr -d '\r' <"$out" | sed -n 's/^KVMLAB: EXIT \([0-9]*\)$/\1/p' | tail -n 1)
rm -f "$job" "$out"
if [ -z "$rc" ]; then
	if [ "$qrc" -eq 124 ]; then
		echo "kvmlab: timed out after ${timeout_s}s (KVMLAB_TIMEOUT)" >&2
		rc=124
	else
		echo "kvmlab: the lab stopped before the command ended (QEMU exit $qrc); kernel console:" >&2
		tail -n 30 "$console" | tr -d '\r' >&2
		grep -v 'TCG doesn.t support' "$qlog" | tail -n 5 >&2
		rc=125
	fi
fi
exit "$rc"
