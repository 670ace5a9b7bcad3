#!/bin/bash
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
. /lab/lib.sh

# Xen's console ring (conring_size=1m on Xen's command line) is read and
# cleared after each test: the triple faults Xen logs during a test are
# that test's. What came before the tests is kept apart.
xl dmesg -c >"$LAB_OUT/xen-boot.log" 2>&1
: >"$LAB_OUT/crashes"

# crash_check NAME TOOL DEAD: after a test, count the domU deaths in it:
# triple faults from Xen's log, guest panics from xl's per-domain logs
# (shutdown reason 3) and the guests' consoles, and the dead domUs the test
# left (DEAD, "NAME ID KIND" lines). Moves the test's console and xl logs
# to $LAB_TMP/logs. Prints the dead domUs' consoles. Sets crash_why.
crash_check() {
	local name=$1 tool=$2 dead=$3 tf tfids panics xlpanics names n f
	mkdir -p "$LAB_TMP/logs"
	xl dmesg -c >"$LAB_TMP/logs/xen.log" 2>&1
	tf=$(grep -a -c 'Triple fault' "$LAB_TMP/logs/xen.log")
	tfids=$(sed -n 's/.*d\([0-9][0-9]*\)v[0-9]* Triple fault.*/\1/p' "$LAB_TMP/logs/xen.log" | sort -un | tr '\n' ' ')
	mv /var/log/xen/console/guest-*.log /var/log/xen/xl-*.log "$LAB_TMP/logs/" 2>/dev/null
	# A panic the test caused on purpose (lab_expect_panic NAME) is not a
	# death: the logs of those domUs are left out of the count.
	expected=$(sort -u "$LAB_TMP/.expected-panics" 2>/dev/null | tr '\n' ' ')
	for n in $expected; do
		for f in "$LAB_TMP/logs/guest-$n.log" "$LAB_TMP/logs/xl-$n.log"; do
			[ -f "$f" ] && mv "$f" "$f.expected-panic"
		done
	done
	panics=$(grep -a -l 'Kernel panic' "$LAB_TMP"/logs/guest-*.log 2>/dev/null | wc -l)
	xlpanics=$(cat "$LAB_TMP"/logs/xl-*.log 2>/dev/null |
		sed -n 's/.*Domain \([0-9]*\) has shut down, reason code 3 .*/\1/p' | sort -u | wc -l)
	[ "$xlpanics" -gt "$panics" ] && panics=$xlpanics
	n=$(awk -v e=" $expected" '$3 == "guest-panic" && index(e, " " $1 " ") == 0' <<<"$dead" | grep -c .)
	[ "$n" -gt "$panics" ] && panics=$n
	echo "$name $tool $tf $panics" >>"$LAB_OUT/crashes"
	crash_why=""
	[ $((tf + panics)) -gt 0 ] || return 0
	lab_figure "domu_crashes=$((tf + panics)) domu_triple_faults=$tf domu_panics=$panics tool=$tool"
	crash_why="domU crash: $tf triple fault(s)${tfids:+ (domains $tfids)}, $panics guest panic(s)"
	# The dead domUs' consoles: the ones left dead, the ones Xen named
	# (xl's log of a domain names its id), the ones that panicked.
	names=$(awk -v e=" $expected" 'index(e, " " $1 " ") == 0 {print $1}' <<<"$dead")
	for n in $tfids; do
		f=$(grep -a -l "(domid $n)" "$LAB_TMP"/logs/xl-*.log 2>/dev/null | head -n 1)
		[ -n "$f" ] && names="$names $(basename "$f" .log | sed 's/^xl-//')"
	done
	for f in $(grep -a -l 'Kernel panic' "$LAB_TMP"/logs/guest-*.log 2>/dev/null); do
		names="$names $(basename "$f" .log | sed 's/^guest-//; s/--incoming$//')"
	done
	for n in $(tr ' ' '\n' <<<"$names" | sort -u); do
		for f in "$LAB_TMP/logs/guest-$n.log" "$LAB_TMP/logs/guest-$n--incoming.log"; do
			[ -f "$f" ] || continue
			echo "lab: $name: console of $n ($(basename "$f"), last 30 lines):"
			tail -n 30 "$f" | tr -d '\r' | awk '{print "  | " $0}'
		done
	done
	grep -a -A 3 'Triple fault' "$LAB_TMP/logs/xen.log" | head -n 40 | sed 's/^/  | /'
}

for t in /lab/tests/*.sh; do
	[ -e "$t" ] || continue
	name=$(basename "$t" .sh)
	if [ -n "$lab_tests" ]; then
		case " $lab_tests " in
		*" $name "*) ;;
		*) continue ;;
		esac
	elif grep -q '^# lab-default: no' "$t"; then
		continue # a probe: run only when named (lab.tests)
	fi
	to=$(sed -n 's/^# lab-timeout: *\([0-9][0-9]*\).*/\1/p' "$t" | head -n 1)
	[ -n "$to" ] || to=$lab_timeout
	# Which checkpointing tool a test's domUs run under (crash figures per
	# tool): "# lab-tool: NAME" in the test, else from its name.
	tool=$(sed -n 's/^# lab-tool: *\([^ ]*\).*/\1/p' "$t" | head -n 1)
	if [ -z "$tool" ]; then
		case $name in
		*xl-remus*) tool=xl-remus ;;
		*ha-protect*) tool=ha-protect ;;
		*) tool=none ;;
		esac
	fi
	export LAB_NAME=$name LAB_TMP=$LAB_OUT/$name
	rm -rf "$LAB_TMP"
	mkdir -p "$LAB_TMP"
	echo "LAB: BEGIN $name"
	start=$(cut -d' ' -f1 /proc/uptime)
	(cd "$LAB_TMP" && timeout -k 10 "$to" bash "$t" </dev/null 2>&1)
	rc=$?
	secs=$(awk -v a="$start" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN {printf "%.0f", b - a}')
	reason=$(tail -n 1 "$LAB_TMP/.reason" 2>/dev/null)
	# Leave nothing to the next test: domains it left are destroyed (dead
	# ones noted first), then its domU deaths are counted.
	dead=$(lab_dead_domus)
	for d in $(xl list 2>/dev/null | awk 'NR > 2 {print $1}'); do
		echo "lab: $name left domain $d ($(xl list "$d" 2>/dev/null | awk 'NR == 2 {print $5}')): destroying it"
		xl destroy "$d" >/dev/null 2>&1
	done
	crash_check "$name" "$tool" "$dead"
	# A domU that died fails the test that ran it, whatever it said.
	if [ -n "$crash_why" ]; then
		case $rc in
		0 | 77) rc=1 reason=$crash_why ;;
		124 | 137) reason="timed out after ${to}s; $crash_why" rc=1 ;;
		*) reason="${reason:-exit $rc}; $crash_why" ;;
		esac
	fi
	case $rc in
	0) echo "LAB: PASS $name" ;;
	77) echo "LAB: SKIP $name: ${reason:-no reason given}" ;;
	124 | 137) echo "LAB: FAIL $name: timed out after ${to}s" ;;
	*) echo "LAB: FAIL $name: ${reason:-exit $rc}" ;;
	esac
	echo "lab: $name took ${secs}s"
done
# Deaths per checkpointing tool, over the tests that ran.
awk '{tf[$2] += $3; p[$2] += $4; n[$2]++}
END {for (k in n) printf "LAB: FIGURE crashes tool=%s tests=%d domu_triple_faults=%d domu_panics=%d\n", k, n[k], tf[k], p[k]}' \
	"$LAB_OUT/crashes"
echo "LAB: DONE"
sync
poweroff -f
