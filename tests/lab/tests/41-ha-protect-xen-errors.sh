#!/bin/bash
# ha-protect's refusals and error paths on a real Xen, each with the
# operator's next step:
#   - a domain that does not exist, dom0, and a PV guest (this Xen has no
#     shadow paging, so PV log-dirty is impossible and ha-protect must say
#     so);
#   - an HVM guest with a device model (QEMU in dom0, whose device state
#     is not checkpointed and whose DMA writes are not in the log-dirty
#     bitmap): refused before log-dirty is switched on, and it runs on;
#   - a guest that does not take the suspend request (it is paused): the
#     request is withdrawn after the acknowledgement timeout, nothing stale
#     is left in xenstore, and the guest runs on once unpaused;
#   - a suspend request already pending when protection starts: refused;
#   - the guest's kernel panics while protected (a crash of its own, not
#     a host failure: "crash" typed on its console, lab.crash; its kernel
#     tells Xen, shutdown reason crash): ha-protect says so, exits 1 and
#     sends END; the secondary discards its copy (no failover: the copy
#     would resume the guest just before its crash), and the preserved
#     crashed domain stays as it was for the operator to look at;
#   - the secondary's failover finds a domain of the same name on its host
#     (here: the primary itself, whose ha-protect froze): it refuses to
#     start a second one, keeps the copy as a file, and the primary's
#     domain runs on.
# lab-timeout: 2000
set -u
. "$LAB_LIB"

T=$LAB_TMP
dom=hapv
doms=(hapv hadm haxs hashut hadup)
pids=()
cleanup() {
	local p d
	for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
	sleep 0.5
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	for d in "${doms[@]}"; do xl destroy "$d" >/dev/null 2>&1; done
}
trap cleanup EXIT
export HA_XEN_SUSPEND_TIMEOUT_MS=60000

# expect_refusal WHAT PATTERN ARGS...: ha-protect exits 1 and says PATTERN.
expect_refusal() {
	local what=$1 pat=$2 rc
	shift 2
	ha-protect -F -b -n "$@" >"$T/out" 2>&1
	rc=$?
	cat "$T/out"
	[ "$rc" -eq 1 ] || lab_fail "$what: ha-protect exited $rc, not 1"
	grep -q -e "$pat" "$T/out" || lab_fail "$what: no '$pat' in its message"
}

expect_refusal "unknown domain" "no Xen domain named nosuchdomain: .xl list" xen:nosuchdomain
expect_refusal "dom0" "domain 0 cannot be protected" xen:0

# A PV guest: the same kernel and initramfs, type "pv".
domu_create "$dom" 'type = "pv"' >"$T/create.log" 2>&1 ||
	lab_fail "xl create of a PV domU failed: $(tail -n 2 "$T/create.log" | tr '\n' ' ')"
wait_for 60 sh -c "xl list $dom" || lab_fail "the PV domU did not appear"
if xl info | grep -q 'virt_caps.*shadow'; then
	expect_refusal "PV guest" "PV guest: ha-protect checkpoints PVH and HVM guests only" "xen:$dom"
else
	expect_refusal "PV guest" "PV guest: checkpointing needs log-dirty tracking, which for PV guests needs shadow paging" "xen:$dom"
fi
# Refused before touching it: the guest runs on.
xl list "$dom" | awk 'NR == 2 {exit !($5 !~ /[pscd]/)}' ||
	lab_fail "the PV domU is not running after the refusal (state $(domu_state "$dom"))"
xl destroy "$dom"

# An HVM guest with QEMU as its device model: no disk, no network, no
# display; SeaBIOS finds nothing to boot, which is all this needs.
cat >"$T/hadm.cfg" <<'EOF'
name = "hadm"
type = "hvm"
memory = 32
vcpus = 1
vga = "none"
vnc = 0
sdl = 0
serial = "pty"
tsc_mode = "native"
on_reboot = "preserve"
on_crash = "preserve"
EOF
if ! xl create "$T/hadm.cfg" >"$T/create.log" 2>&1; then
	cat "$T/create.log"
	for f in /var/log/xen/qemu-dm-hadm.log /var/log/xen/xl-hadm.log; do
		[ -f "$f" ] && { echo "--- $f"; cat "$f"; }
	done
	lab_fail "xl create of an HVM domU failed: $(grep -a -m 1 error "$T/create.log")"
fi
dmid=$(xl domid hadm) || lab_fail "the HVM domU did not appear"
wait_for 60 sh -c "[ \"\$(xenstore-read /local/domain/0/device-model/$dmid/state 2>/dev/null)\" = running ]" ||
	lab_fail "the HVM domU's device model is not running"
expect_refusal "HVM guest with a device model" \
	"is an HVM guest with a device model (QEMU, running): its emulated devices' state is not checkpointed" \
	xen:hadm
xl list hadm | awk 'NR == 2 {exit !($5 !~ /[pscd]/)}' ||
	lab_fail "the HVM domU is not running after the refusal (state $(domu_state hadm))"
# Nothing was switched on: log-dirty stays off (a second refusal is
# the same, not "left on by an earlier run").
expect_refusal "HVM guest with a device model, again" "is an HVM guest with a device model" xen:hadm
xl destroy hadm

# step MSG: where the test is (a timeout then says where it stopped).
t_start=$(now_ms)
step() {
	echo "41: $* (+$(( ($(now_ms) - t_start) / 1000 )) s)"
}

# wait_wall SECONDS CMD...: like wait_for, bounded by wall-clock time
# (wait_for counts iterations, which a loaded TCG host makes slow).
wait_wall() {
	local end=$(( $(now_ms) + $1 * 1000 ))
	shift
	while [ "$(now_ms)" -lt "$end" ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	return 1
}

# fail_log MSG: the logs of this test, then fail.
fail_log() {
	local f
	xl list
	for f in "$T"/*.log; do
		[ -f "$f" ] || continue
		echo "--- $(basename "$f") (last lines)"
		tail -n 20 "$f"
	done
	lab_fail "$*"
}

# --- a guest that does not take the request; a stale request ----------
step "a guest that takes no request"
dom=haxs
domu_create "$dom" || fail_log "xl create $dom failed"
domu_counting "$dom" 120 || fail_log "$dom does not count"
id=$(domu_id "$dom")
ctl=/local/domain/$id/control/shutdown
xl pause "$dom"
HA_XEN_ACK_TIMEOUT_MS=3000 ha-protect -F -b -n -u -i 100 --max-epochs 5 --ctl "$T/xs.sock" \
	"xen:$dom" >"$T/ack.log" 2>&1
rc=$?
cat "$T/ack.log"
[ "$rc" -eq 1 ] || fail_log "ha-protect exited $rc for a guest that cannot take requests, not 1"
grep -q "did not take the suspend request within 3000 ms: request withdrawn" "$T/ack.log" ||
	fail_log "no withdrawal after the acknowledgement timeout"
v=$(xenstore-read "$ctl" 2>/dev/null)
[ -z "$v" ] || fail_log "a request is left in $ctl: '$v'"
# A request someone else left: refused at the start, saying what to do.
xenstore-write "$ctl" suspend
ha-protect -F -b -n -u -i 100 --max-epochs 5 --ctl "$T/xs.sock" "xen:$dom" >"$T/stale.log" 2>&1
rc=$?
cat "$T/stale.log"
[ "$rc" -eq 1 ] || fail_log "ha-protect exited $rc with a suspend request pending, not 1"
grep -q "has a suspend request pending" "$T/stale.log" || fail_log "no refusal of the pending request"
xenstore-write "$ctl" ""
xl unpause "$dom"
domu_counting "$dom" 60 || fail_log "$dom does not count after the refused protections"
xl list "$dom" | awk 'NR == 2 {exit ($5 ~ /s/)}' || fail_log "$dom is left suspended"
xl destroy "$dom"

# --- the guest crashes while protected ---------------------------------
step "a guest whose kernel panics while protected"
dom=hashut
port=7410
domu_create "$dom" "$(domu_extra lab.crash)" || fail_log "xl create $dom failed"
domu_counting "$dom" 120 || fail_log "$dom does not count"
id=$(domu_id "$dom")
HA_XEN_SAVE_DIR=$T ha-receive -v --backend xen --insecure --listen "127.0.0.1:$port" --once \
	--timeout 10000 --ctl "$T/rx1.sock" >"$T/shut-receive.log" 2>&1 &
rx=$!
pids+=("$rx")
wait_for 20 grep -q 'listening on' "$T/shut-receive.log" || fail_log "ha-receive did not start"
ha-protect -F -n -i 100 --timeout 10000 --insecure --ctl "$T/p1.sock" "xen:$dom" \
	"127.0.0.1:$port" >"$T/shut-protect.log" 2>&1 &
pr=$!
pids+=("$pr")
step "protecting $dom"
wait_wall 600 grep -q 'first checkpoint committed' "$T/shut-receive.log" ||
	fail_log "the secondary committed no checkpoint of $dom"
sleep 2
step "panicking the kernel of $dom"
lab_expect_panic "$dom"
domu_type "$dom" crash || fail_log "could not type on the console of $dom"
wait_wall 120 exited "$pr" || fail_log "ha-protect did not stop after its guest crashed"
wait "$pr"
rc=$?
[ "$rc" -eq 1 ] || fail_log "ha-protect exited $rc after its guest crashed, not 1"
grep -a -q "the guest of domain $id crashed \(while it ran between checkpoints\|during a suspend ha-protect requested\)" \
	"$T/shut-protect.log" || fail_log "ha-protect does not say that the guest crashed"
grep -a "crashed\|ended itself\|epoch .* failed" "$T/shut-protect.log"
wait_wall 60 exited "$rx" || fail_log "ha-receive --once did not end"
grep -a -q "stopped protection cleanly; discarding the copy" "$T/shut-receive.log" ||
	fail_log "the secondary did not discard its copy"
! grep -a -q "FAILOVER" "$T/shut-receive.log" || fail_log "the secondary failed over a guest that crashed"
[ "$(domu_id "$dom")" = "$id" ] || fail_log "$dom is not the preserved domain $id any more"
[ "$(domu_crash_kind "$dom")" = "guest panic" ] ||
	fail_log "$dom is not the crashed domain left for the operator ($(domu_state "$dom"))"
grep -a -q "Kernel panic" $(domu_logs "$dom") || fail_log "no kernel panic on the console of $dom"
[ "$(xl list | awk -v d="$dom" '$1 == d' | wc -l)" -eq 1 ] || fail_log "more than one $dom"
# The hot standby held the copy: it is written out, then destroyed.
wait_wall 60 sh -c "! xl list '$dom--standby' >/dev/null 2>&1" ||
	fail_log "the standby $dom--standby is left after the refused activation"
xl destroy "$dom"

# --- failover beside a domain of the same name ------------------------
step "a failover beside a domain of the same name"
dom=hadup
port=7411
domu_create "$dom" || fail_log "xl create $dom failed"
domu_counting "$dom" 120 || fail_log "$dom does not count"
id=$(domu_id "$dom")
HA_XEN_SAVE_DIR=$T ha-receive -v --backend xen --insecure --listen "127.0.0.1:$port" --once \
	--timeout 3000 --ctl "$T/rx2.sock" >"$T/dup-receive.log" 2>&1 &
rx=$!
pids+=("$rx")
wait_for 20 grep -q 'listening on' "$T/dup-receive.log" || fail_log "ha-receive did not start"
ha-protect -F -n -i 100 --timeout 3000 --insecure --ctl "$T/p2.sock" "xen:$dom" \
	"127.0.0.1:$port" >"$T/dup-protect.log" 2>&1 &
pr=$!
pids+=("$pr")
step "protecting $dom"
wait_wall 600 grep -q 'first checkpoint committed' "$T/dup-receive.log" ||
	fail_log "the secondary committed no checkpoint of $dom"
grep -a -q "a domain named $dom already exists on this host" "$T/dup-receive.log" ||
	fail_log "ha-receive did not warn of the same-named domain at the start"
# The primary's process freezes: the secondary's down timer expires.
step "freezing ha-protect"
kill -STOP "$pr"
wait_wall 300 grep -a -q -e 'FAILOVER complete' -e 'activation failed' "$T/dup-receive.log" ||
	{ kill -CONT "$pr"; fail_log "the secondary did not try to fail over"; }
kill -CONT "$pr"
grep -a "already exists\|activation failed\|FAILOVER" "$T/dup-receive.log"
grep -a -q "activation failed" "$T/dup-receive.log" || fail_log "the activation beside $dom was not refused"
grep -a -q "a domain named $dom already exists on this host (id $id): not starting a second one" \
	"$T/dup-receive.log" || fail_log "the refusal does not name the domain and its id"
kept=$(sed -n 's/.*The copy is kept in \([^:]*\):.*/\1/p' "$T/dup-receive.log" | head -n 1)
[ -n "$kept" ] && [ -s "$kept" ] || fail_log "the copy was not kept as a file ('$kept')"
[ "$(xl list | awk -v d="$dom" '$1 == d' | wc -l)" -eq 1 ] || fail_log "more than one $dom"
# The hot standby held the copy: it is written out, then destroyed.
wait_wall 60 sh -c "! xl list '$dom--standby' >/dev/null 2>&1" ||
	fail_log "the standby $dom--standby is left after the refused activation"
[ "$(domu_id "$dom")" = "$id" ] || fail_log "$dom is not domain $id any more"
kill "$pr"
wait_wall 120 exited "$pr" || fail_log "ha-protect did not stop"
step "done"
domu_counting "$dom" 60 || fail_log "the primary's $dom does not count after all this (state $(domu_state "$dom"))"
crashes=$(lab_crashes)
[ -z "$crashes" ] || echo "crashed domUs: $crashes"
exit 0
