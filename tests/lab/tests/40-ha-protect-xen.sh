#!/bin/bash
# ha-protect on a real Xen domain: a PVH domU is protected to ha-receive on
# the same dom0 (as `xl remus ... localhost` does), at the interval the xl
# remus test used. Checks:
#   1. a stream saved with --save (raw pages: a Xen v2 stream) verifies
#      with ha-stream verify;
#   2. protected to the secondary, the guest keeps counting; the copy
#      equals the primary page by page (ha-ctl verify) before and after
#      the guest balloons to 88 MiB and back, each balloon starting a new
#      session whose standby has the new target, and after a vif is
#      hot-plugged;
#   3. the primary domain is destroyed: the secondary activates its hot
#      standby at the last committed checkpoint and the copy keeps
#      counting;
#   after 1., the toolstack can still suspend the domain: `xl save -c`
#   succeeds well within libxl's 60 s (ha-protect told xenstored of each
#   resume, so @releaseDomain fires again), the domain counts on, and
#   ha-protect noticed its suspends by notification, not by polling;
# and prints figures: failover time, pause p50/p99/max, guest slowdown, and
# their ratios to xl remus's figures from 30-xl-remus (same run).
# lab-timeout: 1200
set -u
. "$LAB_LIB"

dom=haxen
# Under TCG on a busy host a suspend has been seen to take 7.6 s.
export HA_XEN_SUSPEND_TIMEOUT_MS=60000
port=7400
T=$LAB_TMP
interval=100
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.5
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	xl destroy "$dom" >/dev/null 2>&1
	ip link del habr40 2>/dev/null
	return 0
}
trap cleanup EXIT

# State, then the tails of our logs on the console, then fail.
fail_with() {
	local f
	xl list
	[ -S "$T/p.sock" ] && ha-ctl --ctl "$T/p.sock" status "xen:$dom"
	[ -S "$T/rx.sock" ] && ha-ctl --ctl "$T/rx.sock" status "$dom"
	for f in "$T"/*.log; do
		[ -f "$f" ] || continue
		echo "--- $(basename "$f") (last lines)"
		tail -n 25 "$f"
	done
	lab_fail "$*"
}


[ -x "$LAB_BIN/ha-protect" ] && [ -x "$LAB_BIN/ha-receive" ] ||
	lab_fail "ha-protect/ha-receive missing from $LAB_BIN"
[ -f "$LAB_OUT/xl-remus.figures" ] && interval=$(sed -n 's/^interval_ms=//p' "$LAB_OUT/xl-remus.figures")
interval=${interval:-100}

domu_create "$dom" || fail_with "xl create $dom failed"
domu_counting "$dom" 120 || fail_with "$dom does not count on its console"
base=$(domu_rate "$dom" 5)
echo "unprotected: $base counts/s"

# --- 1. a saved raw stream (no secondary), verified -------------------
ha-protect -F -b -n -u -i "$interval" --max-epochs 30 --save "$T/stream.raw" \
	--ctl "$T/a.sock" "xen:$dom" >"$T/save.log" 2>&1 ||
	fail_with "ha-protect -b --save failed"
grep -a -e 'stopped after' -e 'suspend avg' "$T/save.log"
ha-stream verify "$T/stream.raw" >"$T/verify.out" 2>&1 || {
	cat "$T/verify.out"
	fail_with "ha-stream verify rejects the saved stream"
}
cat "$T/verify.out"
grep -q ' 30 checkpoints' "$T/verify.out" || fail_with "the saved stream lacks its 30 checkpoints"
rm -f "$T/stream.raw"
domu_counting "$dom" 20 || fail_with "$dom stopped counting after a protection that ended cleanly"
# Suspends noticed: by notification (@releaseDomain, the event channel) or
# by the poll timer. Without xs_resume_domain after each resume, xenstored
# reports only the first suspend and the rest are found by polling.
read -r nnote npoll <<<"$(sed -n 's/.*suspends noticed by notification \([0-9]*\), by polling \([0-9]*\).*/\1 \2/p' "$T/save.log")"
[ -n "$nnote" ] || fail_with "no 'suspends noticed' figures in the ha-protect log"
lab_figure suspends_notified="$nnote" suspends_polled="$npoll"
# Under TCG a notification can arrive a little after the 100 ms poll timer
# has run out (6 of 30 were seen): half is the bound, where without the
# fix all but the first would be polled.
[ "$nnote" -ge 1 ] && [ $((nnote * 2)) -ge $((nnote + npoll)) ] ||
	fail_with "suspends noticed by polling ($npoll) rather than by notification ($nnote)"
c0=$(domu_count "$dom")
ts=$(now_ms)
timeout 90 xl save -c "$dom" "$T/xlsave.img" >"$T/xlsave.log" 2>&1 || {
	cat "$T/xlsave.log"
	fail_with "xl save -c of $dom after protection failed ($(( $(now_ms) - ts )) ms)"
}
tsave=$(( $(now_ms) - ts ))
rm -f "$T/xlsave.img"
lab_figure xl_save_after_protection_ms="$tsave"
[ "$tsave" -lt 45000 ] || fail_with "xl save -c took $tsave ms (libxl's suspend timeout is 60 s)"
domu_counting "$dom" 20 || fail_with "$dom stopped counting after xl save -c (count $c0, state $(domu_state "$dom"))"

# --- 2. protected to a secondary on this host -------------------------
# Over TLS 1.3 with a pre-shared key, as a real pair would run.
(umask 077 && printf 'lab:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$T/psk")
HA_XEN_SAVE_DIR=$T ha-receive -v --backend xen --tls-psk "$T/psk" --listen "127.0.0.1:$port" \
	--timeout 3000 --ctl "$T/rx.sock" >"$T/receive.log" 2>&1 &
rx=$!
pids+=("$rx")
wait_for 20 grep -q 'listening on' "$T/receive.log" || fail_with "ha-receive did not start"
ha-protect -v -F -n -i "$interval" --timeout 3000 --tls-psk "$T/psk" --ctl "$T/p.sock" "xen:$dom" \
	"127.0.0.1:$port" >"$T/protect.log" 2>&1 &
pr=$!
pids+=("$pr")
wait_for 300 grep -q 'PROTECTED' "$T/protect.log" || fail_with "protection did not start"
wait_for 60 grep -q 'first checkpoint committed' "$T/receive.log" ||
	fail_with "the secondary committed no checkpoint"
sleep 2
ha-ctl --ctl "$T/p.sock" status "xen:$dom" >"$T/status0" 2>&1 || fail_with "ha-ctl status failed"
t0=$(now_ms)
rate=$(domu_rate "$dom" 10)
t1=$(now_ms)
ha-ctl --ctl "$T/p.sock" status "xen:$dom" >"$T/status1" 2>&1 || fail_with "ha-ctl status failed"
cat "$T/status1"
grep -q '^state: protected' "$T/status1" || fail_with "not protected: $(status_field "$T/status1" state)"
e0=$(status_field "$T/status0" epoch)
e1=$(status_field "$T/status1" epoch)
read -r _ p50 _ p99 _ <<<"$(status_field "$T/status1" pause_us_pct)"
pmax=$(status_field "$T/status1" pause_us | awk '{print $6}')
pages=$(status_field "$T/status1" pages_per_epoch)
longp=$(status_field "$T/status1" long_pauses)
acked=$(status_field "$T/status1" acked_epoch)
[ "$e1" -gt "$e0" ] || fail_with "no checkpoints while protected"
period=$(awk -v t=$((t1 - t0)) -v n=$((e1 - e0)) 'BEGIN {printf "%.0f", t / n}')
slow=$(awk -v a="$rate" -v b="$base" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}')
lab_figure interval_ms="$interval" checkpoints=$((e1 - e0)) period_ms="$period" \
	pages_per_epoch="$pages" acked_epoch="$acked" long_pauses="$longp"
lab_figure pause_ms_p50="$(awk -v v="$p50" 'BEGIN {printf "%.1f", v / 1000}')" \
	pause_ms_p99="$(awk -v v="$p99" 'BEGIN {printf "%.1f", v / 1000}')" \
	pause_ms_max="$(awk -v v="$pmax" 'BEGIN {printf "%.1f", v / 1000}')"
lab_figure count_rate_base="$base" count_rate="$rate" slowdown="$slow"
# The guest's suspend alone (request to suspended), per checkpoint from
# ha-protect's -v log, as 30-xl-remus takes xl remus's.
susp() { sed -n 's/.*: suspended in \([0-9.]*\) ms.*/\1/p' "$T/protect.log" | sort -n |
	awk -v q="$1" '{v[NR] = $1} END {if (NR) printf "%.1f", v[int((NR - 1) * q) + 1]; else print "?"}'; }
s50=$(susp 0.5)
lab_figure suspend_ms_p50="$s50" suspend_ms_p99="$(susp 0.99)"
# The guest's share of the time between checkpoints (pauses as ha-protect
# measures them, averaged over the session; the period over the window).
pavg=$(status_field "$T/status1" pause_us | awk '{print $4}')
lab_figure pause_ms_avg="$(awk -v v="$pavg" 'BEGIN {printf "%.1f", v / 1000}')" \
	run_share="$(awk -v p="$pavg" -v t="$period" 'BEGIN {if (t > 0) printf "%.2f", 1 - p / 1000 / t; else print "?"}')"

sessions() { grep -c 'first checkpoint committed' "$T/receive.log"; }

# The checkpoint after `ha-ctl verify` carries a hash of every page of the
# primary, taken in its pause (through this session's mappings: the
# memory map as the session found it), and the secondary compares its
# standby. Only the pages this host's xenstored and xenconsoled share with
# the standby (the rings: cleared at activation, as libxc's restore does)
# are not held. Sets vpages, vdiffer, vabsent.
verify_copy() {
	local nv v
	nv=$(grep -c 'verify epoch' "$T/receive.log")
	ha-ctl --ctl "$T/p.sock" verify "xen:$dom" || fail_with "ha-ctl verify failed ($1)"
	wait_for 60 sh -c "[ \$(grep -c 'verify epoch' '$T/receive.log') -gt $nv ]" ||
		fail_with "the secondary reported no verification ($1)"
	v=$(grep -a -o 'verify epoch [0-9]*: [0-9]* pages compared, [0-9]* differ[^,]*, [0-9]* not held here' "$T/receive.log" | tail -n 1)
	echo "verify $1: $v"
	read -r vpages vdiffer vabsent <<<"$(sed -n 's/.*: \([0-9]*\) pages compared, \([0-9]*\) differ.*, \([0-9]*\) not held here/\1 \2 \3/p' <<<"$v")"
	[ "${vdiffer:-1}" -eq 0 ] || fail_with "the copy differs from the primary ($1): $v"
	[ "${vabsent:-9}" -le 4 ] || fail_with "the copy lacks pages the primary has ($1): $v"
}
verify_copy before-balloon
v96=$vpages

# --- 2b. the guest balloons down, then up again -----------------------
# A new balloon target ends the session (END: the secondary discards its
# copy and destroys its standby). This side's mappings, which kept the
# pages the guest gave back allocated, go with the session; the next one
# waits for the guest to settle, maps it anew and copies it whole, and its
# configuration carries the new target (G2, G3, G6). 88 MiB: the domU's
# root file system lives in its RAM, and at 64 MiB it dies of an
# out-of-memory panic, protected or not (91-probe-balloon).
for mem in 88 96; do
	n0=$(sessions)
	# Whichever comes first ends the session: the new target (read after
	# a resume) or, when the guest balloons up at once, its page count
	# grown (seen in a pause).
	c0=$(grep -c -e 'balloon target changed' -e 'when it was mapped' "$T/protect.log")
	e0=$(grep -c 'stopped protection cleanly' "$T/receive.log")
	xl mem-set "$dom" "$mem" || fail_with "xl mem-set $dom $mem failed"
	if ! wait_for 60 sh -c "[ \$(grep -c -e 'balloon target changed' -e 'when it was mapped' '$T/protect.log') -gt $c0 ]"; then
		grep -a -e 'changed' -e 'mapped' -e 'END' "$T/protect.log" | tail -n 5
		fail_with "ha-protect did not notice the balloon target of $mem MiB (sessions ended by the primary: $e0 -> $(grep -c 'stopped protection cleanly' "$T/receive.log"))"
	fi
	wait_for 300 sh -c "[ \$(grep -c 'first checkpoint committed' '$T/receive.log') -gt $n0 ]" ||
		fail_with "no new session after the balloon target went to $mem MiB"
	have=$(xl list "$dom" | awk 'NR == 2 {print $3}')
	echo "memory $mem MiB: xl list says $have MiB; $(grep -a 'after its memory changed' "$T/protect.log" | tail -n 1 | cut -c1-200)"
	[ "$have" -le $((mem + 1)) ] && [ "$have" -ge $((mem - 1)) ] ||
		fail_with "$dom holds $have MiB, not the $mem MiB it was asked for"
	sid=$(xl domid "$dom--standby" 2>/dev/null) || fail_with "no standby after the balloon to $mem MiB"
	st=$(xenstore-read "/local/domain/$sid/memory/target")
	[ "$st" -eq $((mem * 1024)) ] ||
		fail_with "the standby's balloon target is $st KiB, not $((mem * 1024))"
	verify_copy "balloon-$mem"
	eval "v$mem=\$vpages"
	domu_counting "$dom" 10 || fail_with "$dom stopped counting after its balloon to $mem MiB"
done
grep -q -e 'standby .* is destroyed' "$T/receive.log" ||
	fail_with "the secondary did not destroy its standby when the session ended"
lab_figure verify_pages_96="$v96" verify_pages_88="$v88" verify_pages_96_again="$vpages"
[ "$v88" -lt $((v96 - 1900)) ] ||
	fail_with "the copy at 88 MiB compared $v88 pages, against $v96 at 96 MiB: the pages given back are still in it"

# --- 2c. a vif hot-plugged while protected ------------------------------
# libxl rewrites the domain's configuration: the session ends, and the
# next one builds the secondary's standby with the vif (G6).
ip link add habr40 type bridge 2>/dev/null
ip link set habr40 up || fail_with "cannot create bridge habr40"
n0=$(sessions)
xl network-attach "$dom" bridge=habr40 mac=00:16:3e:4c:ab:40 ||
	fail_with "xl network-attach $dom failed"
wait_for 180 grep -q 'configuration changed' "$T/protect.log" ||
	fail_with "ha-protect did not notice the vif attached to $dom"
wait_for 300 sh -c "[ \$(grep -c 'first checkpoint committed' '$T/receive.log') -gt $n0 ]" ||
	fail_with "no new session after the vif was attached"
domu_counting "$dom" 20 || fail_with "$dom stopped counting after the vif was attached"
lab_figure sessions="$(sessions)"

# --- 2d. the copy against the primary, page by page ---------------------
# After the balloon and the hot-plug (verify_copy, above).
verify_copy after-hotplug
lab_figure verify_pages="$vpages" verify_differ="$vdiffer" verify_not_held="$vabsent"

# --- 3. the primary domain is destroyed: failover ---------------------
last=$(domu_count "$dom")
tf=$(now_ms)
xl destroy "$dom" || fail_with "xl destroy $dom failed"
wait_for 30 exited "$pr" || fail_with "ha-protect did not stop after its domain was destroyed"
wait_for 180 grep -q -e 'FAILOVER complete' -e 'activation failed' "$T/receive.log" ||
	fail_with "the secondary did not fail over"
grep -q 'FAILOVER complete' "$T/receive.log" || fail_with "failover: $(grep -a error "$T/receive.log" | tail -n 1)"
ta=$(now_ms)
xl list "$dom" >/dev/null 2>&1 || fail_with "no domain $dom after the failover"
# Alive: the copy counts past what the primary had printed.
wait_for 60 sh -c "[ \"\$(. '$LAB_LIB'; LAB_CONSOLE_DIR='$LAB_CONSOLE_DIR' domu_count '$dom')\" -gt '$last' ]" ||
	fail_with "the copy does not count past $last (state $(domu_state "$dom"))"
tc=$(now_ms)
domu_counting "$dom" 10 || fail_with "the copy stopped counting"
xl network-list "$dom" | grep -q '^[0-9]' ||
	fail_with "the copy has no vif: the one attached while protected is missing ($(xl network-list "$dom" 2>&1 | tr '\n' ' '))"
if domu_crashed "$dom"; then
	fail_with "the copy crashed ($(domu_crash_kind "$dom"))"
fi
activation=$(sed -n 's/.*(activation \([0-9]*\) ms).*/\1/p' "$T/receive.log" | head -n 1)
# The hot standby is unpaused; without one (the log says why), the image
# goes to xl restore through a FIFO (or, failing that, a file).
grep -q 'the standby runs as' "$T/receive.log" || fail_with "no hot standby was activated: $(grep -a -e 'no hot standby' -e error "$T/receive.log" | head -n 1)"
built=$(sed -n 's/.*hot standby .* built in \([0-9]*\) ms, [0-9]* pages copied in \([0-9]*\) ms.*/\1+\2/p' "$T/receive.log" | head -n 1)
lab_figure failover_ms=$((tc - tf)) failover_to_running_ms=$((ta - tf)) \
	activation_ms="${activation:-?}" standby_build_ms="${built:-?}"
echo "copy counting after failover: $(domu_count "$dom") (primary's last: $last)"
grep -a -e 'suspend avg' -e 'pre-copy done' -e 'mapped domain' "$T/protect.log"
grep -a -e 'FAILOVER' -e 'restore' -e 'standby' "$T/receive.log"

# --- ratios to xl remus, measured in the same lab run ------------------
if [ -f "$LAB_OUT/xl-remus.figures" ]; then
	xf() { sed -n "s/^$1=//p" "$LAB_OUT/xl-remus.figures" | head -n 1; }
	ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 > 0) printf "%.2f", a / b; else print "?"}'; }
	lab_figure vs_xl_remus_pause_p50="$(ratio "$(awk -v v="$p50" 'BEGIN {print v / 1000}')" "$(xf pause_ms_p50)")" \
		vs_xl_remus_pause_max="$(ratio "$(awk -v v="$pmax" 'BEGIN {print v / 1000}')" "$(xf pause_ms_max)")" \
		vs_xl_remus_period="$(ratio "$period" "$(xf period_ms)")" \
		vs_xl_remus_slowdown="$(ratio "$slow" "$(xf slowdown)")" \
		vs_xl_remus_failover="$(ratio "$((tc - tf))" "$(xf failover_ms)")" \
		vs_xl_remus_suspend_p50="$(ratio "$s50" "$(xf suspend_ms_p50)")"
else
	echo "no $LAB_OUT/xl-remus.figures (30-xl-remus did not run): no ratios"
fi
crashes=$(lab_crashes)
[ -z "$crashes" ] || echo "crashed domUs: $crashes"
exit 0
