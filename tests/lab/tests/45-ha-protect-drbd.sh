#!/bin/bash
# ha-protect with stock DRBD as the disk replication: a PVH domU whose disk
# is DRBD resource haA (Primary, minor 0) is protected to ha-receive, whose
# copy will use resource haB (Secondary, minor 1). The two resources are a
# DRBD pair over 127.0.0.1 <-> 127.0.0.2 on this dom0, standing in for two
# hosts (DRBD 8.4 pairs resources by address, not by name). The domU writes
# record i to sector i of its disk at each count, and checks that record
# i-1 is on the disk before (see tests/lab/build.sh). Checks:
#   1. wrong setups are refused with the reason: a Primary resource given
#      to ha-receive, an unknown resource, a resource that is not the
#      domain's disk, a disk nothing replicates, a secondary without --drbd;
#   2. protected, each epoch waits for DRBD (flushes counted in status);
#   3. DRBD's link is cut while protected: the primary degrades, saying
#      why, tells the secondary (which does not take over), and protects
#      again once DRBD has reconnected and resynced;
#   4. host A dies (ha-protect stops checkpointing, the domain writes on
#      for 2 s, then all is gone: ha-protect killed, the domain destroyed,
#      haA down): the secondary promotes haB, attaches /dev/drbd1 to its
#      hot standby (built without a disk) and unpauses it; the copy counts on, never finds its disk behind its
#      memory, does find the records written after the last checkpoint
#      already there (disk ahead: DRBD's weaker guarantee), and every
#      record up to its count is on haB.
# Figures: flush p50/p99, records found ahead after the failover.
# With LAB_DRBD_FAILBACK=1 (48-* runs this), step 3 is left out and step
# 4 is followed by a failback: haA comes back and DRBD resyncs it from
# haB's bitmap, the copy is protected from B to A (ha-protect --disk
# drbd:haB, ha-receive --drbd haA), and a switchover brings it back to A.
# With LAB_DRBD_SWITCHOVER=1 (47-* runs this), step 4 is a planned
# switchover instead: ha-protect destroys the domain and makes haA
# Secondary before HA_SWITCHOVER, the secondary promotes haB, attaches it
# to its standby and runs it; the copy must find its disk exactly at its
# memory (nothing behind, nothing ahead: the domain never ran past the
# last checkpoint).
# lab-timeout: 900
set -u
. "$LAB_LIB"

dom=haxd
export HA_XEN_SUSPEND_TIMEOUT_MS=60000
port=7410
T=$LAB_TMP
interval=100
pids=()
la=""
lb=""

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.5
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	xl destroy "$dom" >/dev/null 2>&1
	drbdsetup down haA >/dev/null 2>&1
	drbdsetup down haB >/dev/null 2>&1
	[ -n "$la" ] && losetup -d "$la" 2>/dev/null
	[ -n "$lb" ] && losetup -d "$lb" 2>/dev/null
	return 0
}

fail_with() {
	local f
	xl list
	cat /proc/drbd
	[ -s /var/log/xen/xen-hotplug.log ] && tail -n 20 /var/log/xen/xen-hotplug.log
	[ -S "$T/p.sock" ] && ha-ctl --ctl "$T/p.sock" status "xen:$dom"
	[ -S "$T/rx.sock" ] && ha-ctl --ctl "$T/rx.sock" status "$dom"
	for f in "$T"/*.log; do
		[ -f "$f" ] || continue
		echo "--- $(basename "$f") (last lines but debug)"
		grep -a -v ': debug: ' "$f" | tail -n 40
	done
	for f in $(domu_logs "$dom"); do
		echo "--- $(basename "$f") (last lines)"
		tail -n 10 "$f"
	done
	domu_crashed "$dom" && lab_fail "$* (the domU died: $(domu_crash_kind "$dom"))"
	lab_fail "$*"
}

run() { # CMD...: run, log, fail with its last line
	echo "+ $*" >>"$T/drbd.log"
	"$@" >>"$T/drbd.log" 2>&1 || fail_with "$*: $(tail -n 1 "$T/drbd.log")"
}

show_proc() { # NAME: /proc/drbd between markers (samples for tests/unit/data/drbd)
	echo "PROC-DRBD $1"
	cat /proc/drbd
	echo "PROC-DRBD end"
}

trap cleanup EXIT
# --- a DRBD pair on this host ----------------------------------------
modprobe crc32c_generic
modprobe drbd >"$T/modprobe" 2>&1 || lab_fail "modprobe drbd: $(tail -n 1 "$T/modprobe")"
for s in a b; do
	dd if=/dev/zero of="$T/$s.img" bs=1M count=0 seek=64 2>/dev/null
done
la=$(losetup -f) && losetup "$la" "$T/a.img" || lab_fail "no free loop device"
lb=$(losetup -f) && losetup "$lb" "$T/b.img" || lab_fail "no second loop device"
run drbdmeta --force 0 v08 "$la" internal create-md
run drbdmeta --force 1 v08 "$lb" internal create-md
run drbdsetup new-resource haA
run drbdsetup new-minor haA 0 0
run drbdsetup attach 0 "$la" "$la" internal
run drbdsetup new-resource haB
run drbdsetup new-minor haB 1 0
run drbdsetup attach 1 "$lb" "$lb" internal
connect_a() { run drbdsetup connect haA ipv4:127.0.0.1:7790 ipv4:127.0.0.2:7790 --protocol=C; }
connect_b() { run drbdsetup connect haB ipv4:127.0.0.2:7790 ipv4:127.0.0.1:7790 --protocol=C; }
connect_a
connect_b
wait_for 30 sh -c '[ "$(sed -n "s/^ *0: cs:\([^ ]*\).*/\1/p" /proc/drbd)" = Connected ]' ||
	fail_with "haA and haB did not connect"
# Both disks are zeros: no initial sync needed.
run drbdsetup new-current-uuid 0 --clear-bitmap
run drbdsetup primary 0
wait_for 30 grep -q '^ *0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C' /proc/drbd ||
	fail_with "haA is not Connected Primary/Secondary UpToDate/UpToDate"
cat /proc/drbd
drbdsetup show haA | sed -n '/device/p'

# --- 1. wrong setups --------------------------------------------------
(umask 077 && printf 'lab:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$T/psk")
timeout 20 ha-receive --backend xen --drbd haA --tls-psk "$T/psk" --listen "127.0.0.1:$port" \
	--once >"$T/err1.out" 2>&1 && fail_with "ha-receive accepted a Primary resource"
grep -q 'must be Secondary' "$T/err1.out" || fail_with "ha-receive --drbd haA: $(tail -n 1 "$T/err1.out")"
echo "refused: $(grep -o 'DRBD haA is Primary.*' "$T/err1.out" | head -n 1)"

domu_create "$dom" 'disk = [ "phy:/dev/drbd0,xvda,w" ]' \
	'extra = "console=hvc0 loglevel=3 pci=noearly rdinit=/init lab.disk"' || fail_with "xl create $dom failed"
wait_for 120 grep -q 'counting with disk records' $(domu_logs "$dom") 2>/dev/null ||
	fail_with "$dom did not start its disk records"
domu_counting "$dom" 60 || fail_with "$dom does not count"
grep -a 'no /dev/xvda\|failed' $(domu_logs "$dom") && fail_with "$dom has no working disk"

timeout 20 ha-protect -F -n -b --disk drbd:nosuch "xen:$dom" >"$T/err2.out" 2>&1 &&
	fail_with "ha-protect accepted an unknown DRBD resource"
grep -q 'no DRBD resource nosuch' "$T/err2.out" || fail_with "--disk drbd:nosuch: $(tail -n 1 "$T/err2.out")"
echo "refused: $(grep -o 'no DRBD resource nosuch.*' "$T/err2.out" | head -n 1)"
timeout 20 ha-protect -F -n -b --disk drbd:haB "xen:$dom" >"$T/err4.out" 2>&1 &&
	fail_with "ha-protect accepted a resource that is not the domain's disk"
grep -q "the domain's disk is /dev/drbd0, not the resource's device /dev/drbd1" "$T/err4.out" ||
	fail_with "--disk drbd:haB: $(tail -n 1 "$T/err4.out")"
echo "refused: $(grep -o "the domain's disk is /dev/drbd0.*" "$T/err4.out" | head -n 1)"
timeout 20 ha-protect -F -n -b "xen:$dom" >"$T/err5.out" 2>&1 &&
	fail_with "ha-protect protected a domain whose disk nothing replicates"
grep -q 'the domain has a disk (/dev/drbd0) and nothing replicates it' "$T/err5.out" ||
	fail_with "no --disk: $(tail -n 1 "$T/err5.out")"
echo "refused: $(grep -o 'the domain has a disk.*' "$T/err5.out" | head -n 1)"

# The preflight of each side names the resource's state (the secondary
# is not listening yet: the primary's check fails on that, not on DRBD).
ha-protect --check -n -F --disk drbd:haA --tls-psk "$T/psk" "xen:$dom" "127.0.0.1:$port" >"$T/chk-p.out" 2>&1
cat "$T/chk-p.out"
grep -q 'ok   DRBD haA: DRBD haA (/dev/drbd0, cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C' "$T/chk-p.out" ||
	fail_with "ha-protect --check did not pass DRBD haA"
ha-receive --check --backend xen --drbd haB --fence-cmd /bin/true --tls-psk "$T/psk" \
	--listen "127.0.0.1:$port" >"$T/chk-r.out" 2>&1
cat "$T/chk-r.out"
grep -q 'ok   DRBD haB (/dev/drbd1): Secondary here, protocol C' "$T/chk-r.out" ||
	fail_with "ha-receive --check did not pass DRBD haB"
ha-receive --check --backend xen --drbd haA --fence-cmd /bin/true --tls-psk "$T/psk" \
	--listen "127.0.0.1:$port" >"$T/chk-r2.out" 2>&1 && fail_with "ha-receive --check passed a Primary resource"
grep -q 'FAIL DRBD haA is Primary here' "$T/chk-r2.out" || fail_with "ha-receive --check --drbd haA: $(grep DRBD "$T/chk-r2.out")"

# A secondary without --drbd cannot resume the domain on its disk: it
# refuses, and the primary says why.
HA_XEN_SAVE_DIR=$T ha-receive --backend xen --tls-psk "$T/psk" --listen "127.0.0.1:$((port + 1))" \
	--once >"$T/err3rx.out" 2>&1 &
erx=$!
wait_for 20 grep -q 'listening on' "$T/err3rx.out" || fail_with "ha-receive (no --drbd) did not start"
ha-protect -F -n --disk drbd:haA --tls-psk "$T/psk" --ctl "$T/e.sock" "xen:$dom" \
	"127.0.0.1:$((port + 1))" >"$T/err3.out" 2>&1 &
epr=$!
wait_for 60 grep -q 'secondary reports: .*has no --drbd' "$T/err3.out" ||
	fail_with "ha-protect did not report a secondary without --drbd: $(tail -n 2 "$T/err3.out")"
echo "refused: $(grep -o 'the primary.s disk is DRBD.*--drbd for it' "$T/err3rx.out" | head -n 1)"
kill "$epr" "$erx" 2>/dev/null
wait "$epr" "$erx" 2>/dev/null
domu_counting "$dom" 30 || fail_with "$dom stopped counting after the refused protection"

# --- 2. protected -------------------------------------------------------
HA_XEN_SAVE_DIR=$T ha-receive -v --backend xen --drbd haB --tls-psk "$T/psk" \
	--listen "127.0.0.1:$port" --timeout 3000 --ctl "$T/rx.sock" >"$T/receive.log" 2>&1 &
rx=$!
pids+=("$rx")
wait_for 20 grep -q 'listening on' "$T/receive.log" || fail_with "ha-receive did not start"
ha-protect -v -F -n -i "$interval" --timeout 3000 --retry 500 --disk drbd:haA \
	--tls-psk "$T/psk" --ctl "$T/p.sock" "xen:$dom" "127.0.0.1:$port" >"$T/protect.log" 2>&1 &
pr=$!
pids+=("$pr")
wait_for 300 grep -q 'PROTECTED' "$T/protect.log" || fail_with "protection did not start"
wait_for 60 grep -q 'first checkpoint committed' "$T/receive.log" ||
	fail_with "the secondary committed no checkpoint"
sleep 5
ha-ctl --ctl "$T/p.sock" status "xen:$dom" >"$T/status1" 2>&1 || fail_with "ha-ctl status failed"
grep -e '^state' -e '^epoch' -e '^device' "$T/status1"
grep -q '^state: protected' "$T/status1" || fail_with "not protected: $(status_field "$T/status1" state)"
ha-ctl --ctl "$T/rx.sock" status "$dom" >"$T/rxstatus" 2>&1 || fail_with "ha-ctl status (secondary) failed"
grep -q '^drbd haB (/dev/drbd1): cs:Connected ro:Secondary/Primary' "$T/rxstatus" ||
	fail_with "the secondary's status lacks DRBD's state: $(grep drbd "$T/rxstatus")"
dline=$(grep '^device drbd:haA' "$T/status1")
flushes=$(sed -n 's/.*flushes \([0-9]*\).*/\1/p' <<<"$dline")
[ "${flushes:-0}" -gt 0 ] || fail_with "no DRBD flush counted: $dline"
fp50=$(sed -n 's/.*(p50 \([0-9]*\) us.*/\1/p' <<<"$dline")
fp99=$(sed -n 's/.*p99 \([0-9]*\) us).*/\1/p' <<<"$dline")

# --- 3. DRBD's link cut while protected --------------------------------
# (not in the failback run, 48-*: this run has tested it)
if [ "${LAB_DRBD_FAILBACK:-0}" != 1 ]; then
run drbdsetup disconnect ipv4:127.0.0.2:7790 ipv4:127.0.0.1:7790
wait_for 30 grep -q 'DRBD haA: .*not connected to its peer' "$T/protect.log" ||
	fail_with "the primary did not notice DRBD's lost peer"
wait_for 30 grep -q 'DEGRADED' "$T/protect.log" || fail_with "the primary did not degrade"
grep -a 'DRBD haA: .*not committing' "$T/protect.log" | head -n 1
wait_for 30 grep -q 'stopped protection cleanly' "$T/receive.log" ||
	fail_with "the secondary was not told to discard its copy"
grep -q 'FAILOVER' "$T/receive.log" && fail_with "the secondary took over from a live primary"
domu_counting "$dom" 20 || fail_with "$dom stopped counting while degraded"
show_proc wfconnection
# The resync is held paused until the primary is seen waiting for it. The
# guest's own writes would clear the few blocks it changed meanwhile (a
# write to an out-of-sync block is replicated once connected), so 1 MiB
# the guest never touches (at 32 MiB) is changed here while disconnected.
run dd if=/dev/urandom of=/dev/drbd0 bs=64k seek=512 count=16 oflag=direct
run drbdsetup pause-sync 0
connect_b
wait_for 60 grep -q '^ *0: cs:PausedSyncS' /proc/drbd || fail_with "no paused resync after DRBD reconnected"
show_proc pausedsync
wait_for 60 grep -q 'DRBD haA: waiting: a resync is in progress' "$T/protect.log" ||
	fail_with "the primary did not wait for DRBD's resync"
grep -q 'FAILOVER' "$T/receive.log" && fail_with "the secondary took over during the resync"
run drbdsetup resume-sync 0
wait_for 180 grep -q '^ *0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate' /proc/drbd ||
	fail_with "DRBD did not reconnect and resync"
wait_for 300 sh -c "ha-ctl --ctl '$T/p.sock' status 'xen:$dom' | grep -q '^reprotections: [1-9]'" ||
	fail_with "protection did not resume after DRBD resynced"
wait_for 120 sh -c "ha-ctl --ctl '$T/p.sock' status 'xen:$dom' | grep -q '^state: protected'" ||
	fail_with "not protected again"
echo "re-protected after DRBD's resync"
fi
sleep 5

# --- 4'. a planned switchover, disks and all ------------------------------
if [ "${LAB_DRBD_SWITCHOVER:-0}" = 1 ]; then
	last=$(domu_count "$dom")
	ha-ctl --ctl "$T/p.sock" switchover "xen:$dom" || fail_with "ha-ctl switchover failed"
	wait_for 180 grep -q -e 'SWITCHOVER complete' -e 'SWITCHOVER FAILED' -e 'SWITCHOVER UNCONFIRMED' \
		-e 'switchover of .* aborted' "$T/protect.log" || fail_with "the switchover did not end"
	grep -a -e SWITCHOVER -e 'destroyed here' -e 'Secondary here' "$T/protect.log"
	grep -q 'SWITCHOVER complete' "$T/protect.log" ||
		fail_with "switchover: $(grep -a -e SWITCHOVER -e aborted -e error "$T/protect.log" | tail -n 2)"
	grep -q 'DRBD haA is Secondary here' "$T/protect.log" || fail_with "ha-protect did not hand haA over"
	wait_for 120 exited "$pr" || fail_with "ha-protect did not exit after the switchover"
	wait "$pr"
	prc=$?
	[ "$prc" -eq 0 ] || fail_with "ha-protect exited $prc after the switchover, not 0"
	grep -q 'SWITCHOVER complete' "$T/receive.log" || fail_with "the secondary did not report the switchover"
	grep -a -e 'DRBD haB' -e 'disks attached' -e 'standby runs' -e SWITCHOVER "$T/receive.log"
	grep -q '^ *1: cs:[A-Za-z]* ro:Primary' /proc/drbd || fail_with "haB is not Primary after the switchover"
	grep -q '^ *0: cs:[A-Za-z]* ro:Secondary' /proc/drbd || fail_with "haA is not Secondary after the switchover"
	wait_for 90 sh -c "[ \"\$(. '$LAB_LIB'; LAB_CONSOLE_DIR='$LAB_CONSOLE_DIR' domu_count '$dom')\" -gt '$((last + 10))' ]" ||
		fail_with "the copy does not count past $last"
	behind=$(cat $(domu_logs "$dom") | tr -d '\r' | grep -a 'DISK BEHIND' | head -n 3)
	[ -z "$behind" ] || fail_with "the disk was behind the memory: $behind"
	ahead=$(cat $(domu_logs "$dom") | tr -d '\r' | grep -a -c 'disk ahead')
	[ "$ahead" -eq 0 ] || fail_with "the copy found $ahead records ahead of its memory: the domain ran past its last checkpoint"
	now=$(domu_count "$dom")
	dd if=/dev/drbd1 bs=512 count=$((now + 1)) iflag=direct 2>/dev/null | tr -s '\000' '\n' >"$T/records"
	missing=$(awk -v n="$now" '/^rec [0-9]+$/ {seen[$2] = 1} END {for (k = 0; k <= n; k++) if (!(k in seen)) {print k; exit}}' "$T/records")
	[ -z "$missing" ] || fail_with "record $missing (of 0..$now) is not on haB"
	echo "copy counting: $now (before the switchover: $last); records 0..$now on haB; none ahead"
	lab_figure drbd_flush_us_p50="${fp50:-?}" drbd_flush_us_p99="${fp99:-?}" flushes="$flushes" \
		switchover_downtime_ms="$(sed -n 's/.*SWITCHOVER complete.*downtime \([0-9]*\) ms.*/\1/p' "$T/protect.log")" records_ahead=0
	exit 0
fi

# --- 4. host A dies -------------------------------------------------------
# Slowly: its ha-protect stops checkpointing while the domain runs on and
# writes for 2 s (DRBD carries those writes to haB), then everything goes.
# The interval is made 3 s first, so that ha-protect can be stopped
# between two checkpoints (at 100 ms, under TCG, the next suspend is asked
# for as soon as the guest resumes; one asked for just before the stop
# completes after it, so the state is read 0.3 s later).
ha-ctl --ctl "$T/p.sock" interval "xen:$dom" 3000 || fail_with "ha-ctl interval 3000 failed"
sleep 4
stopped=0
for _ in $(seq 1 30); do
	kill -STOP "$pr"
	sleep 0.3
	case $(xl list "$dom" 2>/dev/null | awk 'NR == 2 {print $5}') in
	*s* | *p*) kill -CONT "$pr"; sleep 0.1 ;; # mid-checkpoint: try again
	*) stopped=1; break ;;
	esac
done
[ "$stopped" = 1 ] || fail_with "could not stop ha-protect between two checkpoints"
c0=$(domu_count "$dom")
sleep 2
last=$(domu_count "$dom")
[ "$last" -gt "$c0" ] || fail_with "the domain did not run on while ha-protect was stopped"
echo "ha-protect stopped; the domain counted $c0 -> $last meanwhile"
tf=$(now_ms)
kill -9 "$pr"
xl destroy "$dom" || fail_with "xl destroy $dom failed"
# The backend lets go of /dev/drbd0 shortly after the domain is gone.
wait_for 30 drbdsetup down haA || fail_with "drbdsetup down haA: $(drbdsetup down haA 2>&1)"
wait_for 180 grep -q -e 'FAILOVER complete' -e 'activation failed' -e 'not resuming' "$T/receive.log" ||
	fail_with "the secondary did not fail over"
grep -q 'FAILOVER complete' "$T/receive.log" || fail_with "failover: $(grep -a error "$T/receive.log" | tail -n 1)"
grep -a -e 'DRBD haB' -e 'FAILOVER' -e 'disks attached' -e 'standby runs' "$T/receive.log"
# The hot standby, built without its disk, got it only after haB was
# promoted (its backend would have opened haB while Secondary).
grep -q 'disks attached to the standby' "$T/receive.log" ||
	fail_with "the failover did not attach the disk to the hot standby: $(grep -a -e standby -e 'xl restore' "$T/receive.log" | tail -n 2)"
grep -q '^ *1: cs:[A-Za-z]* ro:Primary' /proc/drbd || fail_with "haB is not Primary after the failover"
wait_for 90 sh -c "[ \"\$(. '$LAB_LIB'; LAB_CONSOLE_DIR='$LAB_CONSOLE_DIR' domu_count '$dom')\" -gt '$((last + 10))' ]" ||
	fail_with "the copy does not count past $last"
ta=$(now_ms)
xl block-list "$dom" 2>&1 | tail -n +2
behind=$(cat $(domu_logs "$dom") | tr -d '\r' | grep -a 'DISK BEHIND' | head -n 3)
[ -z "$behind" ] || fail_with "the disk was behind the memory: $behind"
ahead=$(cat $(domu_logs "$dom") | tr -d '\r' | grep -a -c 'disk ahead')
# The disk is ahead of the resumed memory by what the guest wrote after the
# last committed checkpoint: DRBD's guarantee (docs/diskrepl.md).
[ "$ahead" -gt 0 ] || fail_with "the copy found no record ahead of its memory, though the guest wrote for 2 s past the last checkpoint"
now=$(domu_count "$dom")
# Every record up to the copy's count is on haB, in order.
dd if=/dev/drbd1 bs=512 count=$((now + 1)) iflag=direct 2>/dev/null | tr -s '\000' '\n' >"$T/records"
missing=$(awk -v n="$now" '/^rec [0-9]+$/ {seen[$2] = 1} END {for (k = 0; k <= n; k++) if (!(k in seen)) {print k; exit}}' "$T/records")
[ -z "$missing" ] || fail_with "record $missing (of 0..$now) is not on haB"
echo "copy counting: $now (primary's last: $last); records 0..$now on haB; $ahead found ahead"
if [ "${LAB_DRBD_FAILBACK:-0}" != 1 ]; then
	lab_figure drbd_flush_us_p50="${fp50:-?}" drbd_flush_us_p99="${fp99:-?}" flushes="$flushes" \
		records_ahead_after_failover="$ahead" failover_ms=$((ta - tf))
	exit 0
fi

# --- 5. failback: host A comes back as the secondary ------------------------
# haA comes back Secondary; DRBD resyncs it from haB's bitmap (what the
# copy wrote since the failover), and ha-protect, run by B for the copy,
# waits for that before its first checkpoint. Then a switchover brings the
# domain back to A: B destroys its copy and makes haB Secondary, A's
# ha-receive promotes haA and runs its standby there.
wait_for 30 exited "$rx" || fail_with "ha-receive did not exit after the failover"
oos=$(sed -n '/^ *1: cs:/{n;s/.*oos:\([0-9]*\).*/\1/p}' /proc/drbd)
echo "haB: ${oos:-?} KiB out of sync with haA (of 65536) before A comes back"
show_proc failback-before
# haA went down Primary: its activity log is replayed into its bitmap
# first (what drbdadm up does), so that the writes in flight then resync.
run drbdmeta 0 v08 "$la" internal apply-al
run drbdsetup new-resource haA
run drbdsetup new-minor haA 0 0
run drbdsetup attach 0 "$la" "$la" internal
connect_a
wait_for 180 grep -q '^ *0: cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate' /proc/drbd ||
	fail_with "haA did not come back and resync from haB"
dmesg | grep -a -i 'split-brain' && fail_with "DRBD saw a split brain on A's return"
dmesg | grep -a 'drbd haA' | grep -a -i -e 'resync done' -e 'out of sync' -e 'bitmap' | tail -n 4
HA_XEN_SAVE_DIR=$T ha-receive -v --backend xen --drbd haA --tls-psk "$T/psk" \
	--listen "127.0.0.1:$((port + 2))" --timeout 3000 --ctl "$T/rx2.sock" >"$T/receive2.log" 2>&1 &
rx2=$!
pids+=("$rx2")
wait_for 20 grep -q 'listening on' "$T/receive2.log" || fail_with "A's ha-receive did not start"
ha-protect -v -F -n -i "$interval" --timeout 3000 --retry 500 --disk drbd:haB \
	--tls-psk "$T/psk" --ctl "$T/p2.sock" "xen:$dom" "127.0.0.1:$((port + 2))" >"$T/protect2.log" 2>&1 &
pr2=$!
pids+=("$pr2")
wait_for 300 grep -q 'PROTECTED' "$T/protect2.log" || fail_with "B did not protect the copy to A"
wait_for 60 grep -q 'first checkpoint committed' "$T/receive2.log" ||
	fail_with "A committed no checkpoint of the copy"
sleep 5
last=$(domu_count "$dom")
ha-ctl --ctl "$T/p2.sock" switchover "xen:$dom" || fail_with "ha-ctl switchover (back to A) failed"
wait_for 180 grep -q -e 'SWITCHOVER complete' -e 'SWITCHOVER FAILED' -e 'SWITCHOVER UNCONFIRMED' \
	-e 'switchover of .* aborted' "$T/protect2.log" || fail_with "the switchover back did not end"
grep -q 'SWITCHOVER complete' "$T/protect2.log" ||
	fail_with "switchover back: $(grep -a -e SWITCHOVER -e aborted -e error "$T/protect2.log" | tail -n 2)"
grep -q 'DRBD haB is Secondary here' "$T/protect2.log" || fail_with "B did not hand haB over"
wait_for 120 exited "$pr2" || fail_with "B's ha-protect did not exit after the switchover"
wait "$pr2"
prc=$?
[ "$prc" -eq 0 ] || fail_with "B's ha-protect exited $prc after the switchover, not 0"
grep -q 'SWITCHOVER complete' "$T/receive2.log" || fail_with "A did not report the switchover"
grep -q '^ *0: cs:[A-Za-z]* ro:Primary' /proc/drbd || fail_with "haA is not Primary after the switchover back"
grep -q '^ *1: cs:[A-Za-z]* ro:Secondary' /proc/drbd || fail_with "haB is not Secondary after the switchover back"
wait_for 90 sh -c "[ \"\$(. '$LAB_LIB'; LAB_CONSOLE_DIR='$LAB_CONSOLE_DIR' domu_count '$dom')\" -gt '$((last + 10))' ]" ||
	fail_with "the domain does not count past $last back on A"
behind=$(cat $(domu_logs "$dom") | tr -d '\r' | grep -a 'DISK BEHIND' | head -n 3)
[ -z "$behind" ] || fail_with "the disk was behind the memory: $behind"
ahead2=$(cat $(domu_logs "$dom") | tr -d '\r' | grep -a -c 'disk ahead')
[ "$ahead2" -eq "$ahead" ] ||
	fail_with "back on A, the domain found $((ahead2 - ahead)) records ahead of its memory: it ran past its last checkpoint on B"
now=$(domu_count "$dom")
dd if=/dev/drbd0 bs=512 count=$((now + 1)) iflag=direct 2>/dev/null | tr -s '\000' '\n' >"$T/records2"
missing=$(awk -v n="$now" '/^rec [0-9]+$/ {seen[$2] = 1} END {for (k = 0; k <= n; k++) if (!(k in seen)) {print k; exit}}' "$T/records2")
[ -z "$missing" ] || fail_with "record $missing (of 0..$now) is not on haA after the failback"
echo "back on A, counting: $now (on B before the switchover: $last); records 0..$now on haA; none ahead"
lab_figure failover_ms=$((ta - tf)) failback_resync_kib="${oos:-?}" disk_kib=65536 \
	switchover_back_downtime_ms="$(sed -n 's/.*SWITCHOVER complete.*downtime \([0-9]*\) ms.*/\1/p' "$T/protect2.log")"
exit 0
