#!/bin/sh
# The lab's dom0 /init: bring up the Xen toolstack, run the lab tests in
# order of their names and report on the console (docs/lab.md: result
# protocol), then power off. Kernel parameters: lab.tests=A+B (run only
# these), lab.timeout=S (default per-test timeout).
export PATH=/lab/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mkdir -p /dev/pts /dev/shm /run/xen /run/xenstored /run/netns /var/log/xen/console
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mkdir -p /run/xen /run/xenstored /run/netns /run/lock
ip link set lo up 2>/dev/null || true

lab_tests=""
lab_timeout=300
for a in $(cat /proc/cmdline); do
	case $a in
	lab.tests=*) lab_tests=$(echo "${a#lab.tests=}" | tr '+' ' ') ;;
	lab.timeout=*) lab_timeout=${a#lab.timeout=} ;;
	esac
done

boot_fail() {
	echo "LAB: FAIL boot: $*"
	echo "LAB: DONE"
	sync
	poweroff -f
}

echo "lab: dom0 up after $(cut -d' ' -f1 /proc/uptime) s; kernel $(uname -r)"
for m in xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xen-netback xen-blkback \
	crc32c_generic sch_plug sch_ingress act_mirred cls_u32 cls_matchall ifb veth bridge dummy loop; do
	modprobe "$m" 2>/dev/null || echo "lab: modprobe $m failed"
done
mount -t xenfs xenfs /proc/xen || boot_fail "cannot mount xenfs: not running under Xen?"
grep -q control_d /proc/xen/capabilities 2>/dev/null || boot_fail "this kernel is not dom0"

/usr/sbin/xenstored --pid-file /run/xenstored.pid || boot_fail "xenstored did not start"
i=0
while ! xenstore-read / >/dev/null 2>&1 && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
/usr/sbin/xen-init-dom0 >/tmp/xen-init-dom0.log 2>&1 || boot_fail "xen-init-dom0: $(tail -n 1 /tmp/xen-init-dom0.log)"
/usr/sbin/xenconsoled --pid-file=/run/xenconsoled.pid --log=guest \
	--log-dir=/var/log/xen/console || boot_fail "xenconsoled did not start"
xl info >/tmp/xl-info 2>&1 || boot_fail "xl info: $(tail -n 1 /tmp/xl-info)"
echo "lab: toolstack up after $(cut -d' ' -f1 /proc/uptime) s; $(grep -E '^xen_(version|caps)' /tmp/xl-info | tr -s ' ' | tr '\n' ' ')"
echo "LAB: READY"

export LAB_BIN=/lab/bin HA_BUILD=/lab LAB_LIB=/lab/lib.sh LAB_INTEG=/lab/integration
export LAB_DOMU_KERNEL=/lab/domu/vmlinuz LAB_DOMU_INITRD=/lab/domu/initrd.gz
export LAB_DOMU_CFG=/lab/domu/domu.cfg LAB_OUT=/tmp/lab LAB_CONSOLE_DIR=/var/log/xen/console
mkdir -p "$LAB_OUT"

for t in /lab/tests/*.sh; do
	[ -e "$t" ] || continue
	name=$(basename "$t" .sh)
	if [ -n "$lab_tests" ]; then
		case " $lab_tests " in
		*" $name "*) ;;
		*) continue ;;
		esac
	fi
	to=$(sed -n 's/^# lab-timeout: *\([0-9][0-9]*\).*/\1/p' "$t" | head -n 1)
	[ -n "$to" ] || to=$lab_timeout
	export LAB_NAME=$name LAB_TMP=$LAB_OUT/$name
	rm -rf "$LAB_TMP"
	mkdir -p "$LAB_TMP"
	echo "LAB: BEGIN $name"
	start=$(cut -d' ' -f1 /proc/uptime)
	(cd "$LAB_TMP" && timeout -k 10 "$to" bash "$t" </dev/null 2>&1)
	rc=$?
	secs=$(awk -v a="$start" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN {printf "%.0f", b - a}')
	reason=$(tail -n 1 "$LAB_TMP/.reason" 2>/dev/null)
	case $rc in
	0) echo "LAB: PASS $name" ;;
	77) echo "LAB: SKIP $name: ${reason:-no reason given}" ;;
	124 | 137) echo "LAB: FAIL $name: timed out after ${to}s" ;;
	*) echo "LAB: FAIL $name: ${reason:-exit $rc}" ;;
	esac
	echo "lab: $name took ${secs}s"
	# Leave nothing to the next test: domains it left are destroyed, and
	# crashed ones are counted.
	crashed=$(xl list 2>/dev/null | awk 'NR > 2 && $5 ~ /c/' | wc -l)
	[ "$crashed" -gt 0 ] && echo "LAB: FIGURE $name leftover_crashed_domus=$crashed"
	for d in $(xl list 2>/dev/null | awk 'NR > 2 {print $1}'); do
		echo "lab: $name left domain $d ($(xl list "$d" 2>/dev/null | awk 'NR == 2 {print $5}')): destroying it"
		xl destroy "$d" >/dev/null 2>&1
	done
done
echo "LAB: DONE"
sync
poweroff -f
