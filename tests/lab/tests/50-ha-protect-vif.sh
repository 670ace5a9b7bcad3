#!/bin/bash
# The Remus guarantee end to end on a real Xen vif. The domU (lab.net) runs
# a counter service (domu-counter, UDP 7000) on eth0, a netfront vif on the
# bridge halab0 in dom0. A client in a network namespace (behind a veth on
# the same bridge) increments it continuously and logs every acknowledged
# value; `ha-client capture` records every request and reply on the
# client's veth, i.e. after the output buffer. ha-protect protects the domU
# with its default output buffering (netbuf on vifN.0, default
# --max-inflight), once with each backend:
#   plug     ingress redirect to an IFB with a sch_plug qdisc
#   nfqueue  iptables (bridge netfilter, physdev) to an NFQUEUE
# Each run ends with the primary's death (ha-protect SIGKILLed, the domain
# destroyed) and ha-receive restoring the copy; the next run protects that
# copy. Then stock `xl remus` on the same domU for the failover comparison.
# Checks and figures, per backend:
#   outputs_released_early=0  no reply left before ACK of its epoch, from
#       ha-protect --event-log and the capture (output_commit_check, lib.sh);
#   acked_lost=0  the copy continues from at least the last acknowledged
#       value, and keeps answering;
#   failover_ms   the primary's death to the copy's first answer;
# and xl_remus_failover_ms (xl remus -n; with its own network buffering
# when this Xen's libxl has it, xl_remus_netbuf says why not), and the
# ratio of ours (plug) to it.
# The domU's size and the runs come from the environment (52-* runs this
# with a larger domU): LAB_VIF_MEMORY (MiB, default 96), LAB_VIF_VCPUS (1),
# LAB_VIF_BACKENDS ("plug nfqueue"), LAB_VIF_XL_REMUS (1: compare with xl
# remus), LAB_VIF_SWITCHOVER (1: each run ends with `ha-ctl switchover`
# instead of the primary's death; the same checks, and the downtime;
# 53-* runs this), LAB_VIF_MIGRATE (1: instead of all that, a live
# migration by ha-protect --migrate and then by xl migrate, with the
# client counting throughout; 54-* runs this), LAB_VIF_FAILBACK (1: the
# first run ends in a failover, the next protects the copy back and ends
# in a switchover; 56-* runs this). Each run's figures also go to
# $LAB_OUT/vif-MEMORY.figures.
# lab-timeout: 1800
set -u
. "$LAB_LIB"

dom=havif
br=halab0
ns=hacl
gip=10.99.0.2
cip=10.99.0.1
mac=00:16:3e:4c:ab:50
T=$LAB_TMP
interval=100
window=${LAB_VIF_SECONDS:-30}
memory=${LAB_VIF_MEMORY:-96}
vcpus=${LAB_VIF_VCPUS:-1}
backends=${LAB_VIF_BACKENDS:-plug nfqueue}
switchover=${LAB_VIF_SWITCHOVER:-0}
migrate=${LAB_VIF_MIGRATE:-0}
figs=$LAB_OUT/vif-$memory.figures
: >"$figs"
export HA_XEN_SUSPEND_TIMEOUT_MS=60000
pids=()
failures=()

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.5
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	xl destroy "$dom" >/dev/null 2>&1
	# The veth first: a namespace's devices go asynchronously after
	# `ip netns del`, and the next run (52-*) makes the same ones.
	ip link del hacl0 2>/dev/null
	ip netns del "$ns" 2>/dev/null
	ip link del "$br" 2>/dev/null
	return 0
}
trap cleanup EXIT

fail_with() {
	local f
	xl list
	for f in "$T"/*.log "$T"/*.err; do
		[ -f "$f" ] || continue
		# Why a session degraded is often far above the tail.
		echo "--- $(basename "$f") (its errors and degradations, first 12)"
		grep -a -i -e 'degrad' -e 'error' -e 'no heartbeat' -e 'timed out' "$f" | head -n 12
		echo "--- $(basename "$f") (last lines)"
		tail -n 15 "$f"
	done
	echo "--- $dom console"
	# shellcheck disable=SC2046
	tail -n 5 $(domu_logs "$dom") 2>/dev/null
	local c
	c=$(lab_crashes)
	[ -n "$c" ] && echo "crashed domUs: $c"
	lab_fail "$*"
}

inns() { ip netns exec "$ns" "$@"; }
wall_ms() { local r=$EPOCHREALTIME; echo $((${r%.*} * 1000 + 10#${r#*.} / 1000)); }
vif_of() { xenstore-read "/local/domain/0/backend/vif/$(domu_id "$1")/0/vifname" 2>/dev/null || echo "vif$(domu_id "$1").0"; }
# The service answers one request within SECONDS.
answers() {
	inns ha-client counter "$gip:7000" --name "probe$2" --count 1 --timeout 300 --duration "$1" 2>/dev/null |
		grep -q '^ack 1 '
}

[ -x "$LAB_BIN/domu-counter" ] || lab_fail "domu-counter missing from $LAB_BIN"
for m in br_netfilter nfnetlink_queue xt_NFQUEUE xt_physdev iptable_filter ip6table_filter; do
	modprobe "$m" || lab_fail "modprobe $m failed"
done
iptables -w -L -n >/dev/null 2>&1 || lab_fail "iptables does not work in dom0"

# --- the network: bridge, client namespace, the domU on it ------------
ip link del hacl0 2>/dev/null
ip netns del "$ns" 2>/dev/null
ip link del "$br" 2>/dev/null
ip link add "$br" type bridge stp_state 0 forward_delay 0 || lab_fail "cannot create bridge $br"
ip link set "$br" up
ip netns add "$ns" || lab_fail "cannot create netns $ns"
ip link add hacl0 type veth peer name hacl1
ip link set hacl1 netns "$ns"
ip link set hacl0 master "$br" up
inns ip link set lo up
inns ip addr add "$cip/24" dev hacl1
inns ip link set hacl1 up

domu_create "$dom" "vif = [ \"mac=$mac,bridge=$br\" ]" "memory = $memory" "vcpus = $vcpus" \
	"extra = \"console=hvc0 loglevel=3 pci=noearly rdinit=/init lab.net=$gip/24\"" >"$T/create.log" 2>&1 ||
	fail_with "xl create $dom (with a vif on $br) failed: $(tail -n 2 "$T/create.log" | tr '\n' ' ')"
if ! wait_for 300 sh -c "[ \"\$(. '$LAB_LIB'; LAB_CONSOLE_DIR='$LAB_CONSOLE_DIR' domu_count '$dom')\" -ge 0 ]"; then
	domu_crashed "$dom" && fail_with "$dom crashed while booting: $(domu_crash_kind "$dom")"
	fail_with "$dom did not start counting within 300 s"
fi
# shellcheck disable=SC2046
grep -a -q 'domu: eth0 up' $(domu_logs "$dom") || fail_with "the domU did not bring eth0 up"
answers 120 0 || fail_with "the domU's counter service does not answer at $gip:7000"
echo "$dom: $memory MiB, $vcpus vCPU(s), vif $(vif_of "$dom") on $br, counter service answers"
lab_figure memory_mib="$memory" vcpus="$vcpus"
(umask 077 && printf 'lab:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$T/psk")

# protect_run BACKEND PORT: protect $dom with netbuf BACKEND, count through
# it for $window s, kill the primary, fail over to the copy; prints figures.
protect_run() {
	local b=$1 port=$2 vif rx pr cap cl death_ms death_ns r early checked
	vif=$(vif_of "$dom")
	inns ha-client capture hacl1 --port 7000 >"$T/$b.cap" 2>"$T/$b.cap.err" &
	cap=$!
	pids+=("$cap")
	HA_XEN_SAVE_DIR=$T ha-receive -v --backend xen --tls-psk "$T/psk" --listen "127.0.0.1:$port" \
		--once --timeout 3000 --ctl "$T/$b.rx.sock" >"$T/$b.receive.log" 2>&1 &
	rx=$!
	pids+=("$rx")
	wait_for 20 grep -q 'listening on' "$T/$b.receive.log" || fail_with "$b: ha-receive did not start"
	ha-protect -v --netbuf "$b" --event-log "$T/$b.events" -i "$interval" --timeout 3000 \
		--tls-psk "$T/psk" --ctl "$T/$b.p.sock" "xen:$dom" "127.0.0.1:$port" >"$T/$b.protect.log" 2>&1 &
	pr=$!
	pids+=("$pr")
	wait_for 300 grep -q 'PROTECTED' "$T/$b.protect.log" || fail_with "$b: protection did not start"
	wait_for 60 grep -q 'first checkpoint committed' "$T/$b.receive.log" ||
		fail_with "$b: the secondary committed no checkpoint"
	inns ha-client counter "$gip:7000" --name "c-$b" --interval 0 --timeout 50 >"$T/$b.client" 2>"$T/$b.client.err" &
	cl=$!
	pids+=("$cl")
	sleep "$window"
	kill -0 "$pr" 2>/dev/null || fail_with "$b: ha-protect exited while protecting"
	domu_crashed "$dom" && fail_with "$b: $dom crashed while protected ($(domu_crash_kind "$dom"))"
	ha-ctl --ctl "$T/$b.p.sock" status "xen:$dom" >"$T/$b.status" 2>&1
	grep -q '^state: protected' "$T/$b.status" || fail_with "$b: not protected: $(status_field "$T/$b.status" state)"
	# Few acknowledgements are a finding, not a reason to stop: held
	# output that leaves late (or never) slows the client; the replies
	# are judged below either way.
	acks=$(grep -c '^ack ' "$T/$b.client")
	echo "$b: $acks increments acknowledged in ${window}s"

	if [ "$switchover" = 1 ]; then
		# A planned switchover: the copy takes over at a checkpoint
		# boundary, the primary's domain is destroyed by ha-protect,
		# which exits 0. The "death" is the request.
		local old prc
		old=$(xl domid "$dom")
		death_ns=$(lab_mono_ns)
		death_ms=$(wall_ms)
		ha-ctl --ctl "$T/$b.p.sock" switchover "xen:$dom" || fail_with "$b: ha-ctl switchover failed"
		wait_for 180 grep -q -e 'SWITCHOVER complete' -e 'SWITCHOVER FAILED' -e 'SWITCHOVER UNCONFIRMED' \
			-e 'switchover of .* aborted' "$T/$b.protect.log" ||
			fail_with "$b: the switchover did not end"
		grep -a -e SWITCHOVER -e 'destroyed here' -e 'last checkpoint here' "$T/$b.protect.log"
		grep -q 'SWITCHOVER complete' "$T/$b.protect.log" ||
			fail_with "$b: switchover: $(grep -a -e SWITCHOVER -e aborted -e error "$T/$b.protect.log" | tail -n 2)"
		wait_for 120 exited "$pr" || fail_with "$b: ha-protect did not exit after the switchover"
		wait "$pr"
		prc=$?
		[ "$prc" -eq 0 ] || fail_with "$b: ha-protect exited $prc after the switchover, not 0"
		[ "$(xl domid "$dom" 2>/dev/null)" != "$old" ] ||
			fail_with "$b: the primary's domain (id $old) still runs after the switchover"
		lab_figure backend="$b" switchover_downtime_ms="$(sed -n 's/.*SWITCHOVER complete.*downtime \([0-9]*\) ms.*/\1/p' "$T/$b.protect.log")"
	else
		# The primary host dies: its domain, then its ha-protect (in this order:
		# the copy takes the same name, which the dying domain must have left).
		# Replies may leave the primary until xl destroy returns, and held ones
		# until ha-protect is dead: the death is the moment both are gone, so
		# that the first answer after it comes from the copy (death_ns, for the
		# early-release check, is the start: nothing after it is judged).
		death_ns=$(lab_mono_ns)
		xl destroy "$dom" || fail_with "$b: xl destroy $dom failed"
		kill -9 "$pr" 2>/dev/null
		wait "$pr" 2>/dev/null
		death_ms=$(wall_ms)
	fi

	# Judged now, before the failover can fail: replies before the death.
	sleep 1
	r=$(output_commit_check "$T/$b.events" "$T/$b.cap" "$death_ns")
	echo "$b: output commit: $r"
	early=$(sed -n 's/^early=\([0-9]*\) .*/\1/p' <<<"$r")
	checked=$(sed -n 's/.* checked=\([0-9]*\) .*/\1/p' <<<"$r")
	epochs=$(status_field "$T/$b.status" acked_epoch)
	lab_figure backend="$b" vif="$vif" outputs_released_early="$early" replies_checked="$checked" acks_in_window="$acks" \
		acked_epoch="$epochs" pipelined_epochs="$(sed -n 's/.* pipelined=\([0-9]*\) .*/\1/p' <<<"$r")" margin_min_ms="$(sed -n 's/.*margin_min_ms=\([^ ]*\).*/\1/p' <<<"$r")"
	[ "$checked" -ge 20 ] || failures+=("$b: only $checked replies checked (the measurement needs traffic in many epochs)")
	[ "$early" -eq 0 ] || failures+=("$b: $early replies left before their epoch's ACK; first: $(sed -n 's/.*first_early=//p' <<<"$r")")

	local ended=FAILOVER
	[ "$switchover" = 1 ] && ended=SWITCHOVER
	wait_for 180 grep -q -e "$ended complete" -e 'activation failed' "$T/$b.receive.log" ||
		fail_with "$(printf '%s; ' "${failures[@]}")$b: the secondary did not fail over"
	grep -q "$ended complete" "$T/$b.receive.log" ||
		fail_with "$(printf '%s; ' "${failures[@]}")$b: failover: $(grep -a error "$T/$b.receive.log" | tail -n 1)"
	# The copy answers the client (which retried all along) and goes on.
	if ! wait_for 180 sh -c "awk -v d=$death_ms '\$1 == \"ack\" && \$5 > d {n++} END {exit n < 5}' '$T/$b.client'"; then
		# What the next look needs: the activation, the copy's vif as
		# both ends see it, the guest's own console.
		echo "--- $b: ha-receive (last 25 lines)"
		tail -n 25 "$T/$b.receive.log"
		echo "--- $b: the copy's vif in xenstore"
		xenstore-ls -f "/local/domain/$(xl domid "$dom" 2>/dev/null)/device/vif" 2>&1 | head -n 20
		xenstore-ls -f "/local/domain/0/backend/vif/$(xl domid "$dom" 2>/dev/null)" 2>&1 | grep -E '/(state|multi-queue-num-queues|online)' | head -n 10
		domu_console "$dom" 30
		echo "--- $b: dom0 when the copy does not answer"
		free -m
		xl info 2>/dev/null | grep -E '^(free_memory|total_memory)'
		cv=$(vif_of "$dom")
		ip -s link show dev "$cv" 2>&1 | head -n 8
		bridge fdb show br "$br" 2>&1 | grep -i "$mac"
		inns ip neigh show 2>&1
		tc qdisc show 2>&1 | head -n 20
		iptables -w -S 2>&1 | grep -v '^-P' | head -n 20
		dmesg 2>/dev/null | tail -n 30
		ps -eo pid,pcpu,rss,comm --sort=-pcpu 2>/dev/null | head -n 8
		fail_with "$(printf '%s; ' "${failures[@]}")$b: the copy does not answer the client (state $(domu_state "$dom"))"
	fi
	domu_crashed "$dom" && fail_with "$b: the copy crashed ($(domu_crash_kind "$dom"))"
	kill "$cl" "$cap"
	wait "$cl" "$cap" 2>/dev/null
	ha-netbuf cleanup "$vif" >/dev/null 2>&1

	a=$(acked_continuity "$T/$b.client" "$death_ms")
	echo "$b: client: $a ($(cat "$T/$b.client.err"))"
	lost=$(sed -n 's/.*acked_lost=\([0-9]*\).*/\1/p' <<<"$a")
	fo=$(sed -n 's/.*first_after_ms=\([0-9]*\).*/\1/p' <<<"$a")
	nonmono=$(sed -n 's/.*nonmonotonic=\([0-9]*\).*/\1/p' <<<"$a")
	act=$(sed -n 's/.*(activation \([0-9]*\) ms).*/\1/p' "$T/$b.receive.log" | head -n 1)
	standby=yes
	grep -q 'hot standby .* holds the committed image' "$T/$b.receive.log" || standby=no
	if [ "$switchover" = 1 ]; then
		# The primary answers until the last checkpoint: the client's
		# downtime is its longest silence from the request on.
		local gap
		gap=$(awk -v d="$death_ms" '$1 == "ack" {if (t && $5 > d && $5 - t > m) m = $5 - t; t = $5} END {print m + 0}' "$T/$b.client")
		lab_figure backend="$b" acked_lost="$lost" switchover_client_silence_ms="$gap" activation_ms="$act" standby="$standby"
	else
		lab_figure backend="$b" acked_lost="$lost" failover_ms="$fo" activation_ms="$act" standby="$standby"
		echo "${b}_failover_ms=$fo" >>"$figs"
	fi
	grep -a -e 'hot standby' -e 'the standby runs' -e 'xl restore' "$T/$b.receive.log"
	grep -a -e 'netbuf' -e 'suspend avg' -e 'pre-copy done' "$T/$b.protect.log" | head -n 5
	[ "$lost" -eq 0 ] || failures+=("$b: $lost acknowledged increments lost in the $ended")
	[ "$nonmono" -eq 0 ] || failures+=("$b: $nonmono acknowledged values not above the previous one")
	return 0
}

# silence FILE FROM_MS: the client's longest wait between two acks after
# FROM_MS (its downtime as it sees it).
silence() {
	awk -v d="$2" '$1 == "ack" {if (t && $5 > d && $5 - t > m) m = $5 - t; t = $5} END {print m + 0}' "$1"
}

# migrate_run NAME CMD...: the client counts while CMD migrates $dom to
# this host again; checks and figures as NAME. No output buffering on
# either side (xl migrate has none; a migration's source stops at its last
# copy, so nothing acknowledged can be lost without it).
migrate_run() {
	local name=$1 cl t0 t1 rc a lost
	shift
	inns ha-client counter "$gip:7000" --name "c-$name" --interval 0 --timeout 50 >"$T/$name.client" 2>"$T/$name.client.err" &
	cl=$!
	pids+=("$cl")
	sleep 10
	t0=$(wall_ms)
	"$@" >"$T/$name.out" 2>"$T/$name.log"
	rc=$?
	t1=$(wall_ms)
	[ "$rc" -eq 0 ] || fail_with "$name: the migration failed (exit $rc): $(tail -n 2 "$T/$name.log" | tr '\n' ' ')"
	wait_for 180 sh -c "awk -v d=$t1 '\$1 == \"ack\" && \$5 > d {n++} END {exit n < 5}' '$T/$name.client'" ||
		fail_with "$name: the migrated domain does not answer the client (state $(domu_state "$dom"))"
	domu_crashed "$dom" && fail_with "$name: the migrated domain crashed ($(domu_crash_kind "$dom"))"
	kill "$cl" 2>/dev/null
	wait "$cl" 2>/dev/null
	a=$(acked_continuity "$T/$name.client" "$t1")
	echo "$name: client: $a"
	lost=$(sed -n 's/.*acked_lost=\([0-9]*\).*/\1/p' <<<"$a")
	[ "$lost" -eq 0 ] || failures+=("$name: $lost acknowledged increments lost in the migration")
	mig_total=$((t1 - t0))
	mig_silence=$(silence "$T/$name.client" "$t0")
	lab_figure tool="$name" migrate_total_ms="$mig_total" client_silence_ms="$mig_silence" acked_lost="$lost"
}

if [ "$migrate" = 1 ]; then
	# Ours: the pre-copy, the first checkpoint committed in the hot
	# standby, then the last checkpoint and the switchover.
	HA_XEN_SAVE_DIR=$T ha-receive -v --backend xen --tls-psk "$T/psk" --listen "127.0.0.1:7420" \
		--once --timeout 3000 >"$T/mig.receive.log" 2>&1 &
	pids+=("$!")
	wait_for 20 grep -q 'listening on' "$T/mig.receive.log" || fail_with "ha-receive did not start"
	migrate_run ha-protect ha-protect -v -F --netbuf none --migrate -i "$interval" --timeout 3000 \
		--tls-psk "$T/psk" "xen:$dom" "127.0.0.1:7420"
	grep -a -e 'pre-copy' -e 'MIGRATION' -e 'SWITCHOVER' -e 'destroyed here' "$T/ha-protect.log"
	grep -q 'SWITCHOVER complete' "$T/mig.receive.log" || fail_with "ha-receive did not report the switchover"
	ours_total=$mig_total ours_silence=$mig_silence
	ours_down=$(sed -n 's/.*MIGRATION complete.*downtime \([0-9]*\) ms.*/\1/p' "$T/ha-protect.log")
	# Stock xl migrate of the same domU, to this host (-s "": the "host"
	# is the command that runs the receiver).
	migrate_run xl-migrate xl -vvv migrate -s "" "$dom" "exec xl -vvv migrate-receive 2>$T/xlm.recv.log"
	lab_figure ha_protect_migrate_total_ms="$ours_total" ha_protect_downtime_ms="$ours_down" \
		ha_protect_client_silence_ms="$ours_silence" xl_migrate_total_ms="$mig_total" \
		xl_migrate_client_silence_ms="$mig_silence" \
		vs_xl_migrate_total="$(awk -v a="$ours_total" -v b="$mig_total" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "?"}')" \
		vs_xl_migrate_silence="$(awk -v a="$ours_silence" -v b="$mig_silence" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "?"}')"
	c=$(lab_crashes)
	[ -z "$c" ] || echo "crashed domUs: $c"
	[ "${#failures[@]}" -eq 0 ] || fail_with "$(printf '%s; ' "${failures[@]}")"
	exit 0
fi

port=7410
first=1
for b in $backends; do
	# A failback: the first run ends in a failover, the next protects the
	# copy that took over and hands it back with a switchover.
	[ "${LAB_VIF_FAILBACK:-0}" = 1 ] && switchover=$((1 - first))
	protect_run "$b" "$port"
	port=$((port + 1))
	first=0
done
if [ "${LAB_VIF_XL_REMUS:-1}" != 1 ]; then
	c=$(lab_crashes)
	[ -z "$c" ] || echo "crashed domUs: $c"
	[ "${#failures[@]}" -eq 0 ] || fail_with "$(printf '%s; ' "${failures[@]}")"
	exit 0
fi

# --- stock xl remus on the same domU ------------------------------------
# Unbuffered (-n) first, for the failover figure; then with its own network
# buffering, which needs libxl's netbuf support (libnl) and
# /etc/xen/scripts/remus-netbuf-setup: probed last, so that a failure
# cannot disturb the measured run.
answers 60 x || fail_with "$dom does not answer before xl remus"
xl -vvv remus -F -n -d -i "$interval" -s "" "$dom" "exec xl -vvv migrate-receive -r -e 2>$T/xl.recv.log" \
	>"$T/xl.out" 2>"$T/xl.log" &
xr=$!
pids+=("$xr")
primary=$(domu_id "$dom")
wait_for 300 grep -q 'Checkpointed save' "$T/xl.log" || fail_with "xl remus: no checkpoint within 300 s"
inns ha-client counter "$gip:7000" --name c-xl --interval 0 --timeout 50 >"$T/xl.client" 2>"$T/xl.client.err" &
cl=$!
pids+=("$cl")
sleep 15
domu_crashed "$dom" && fail_with "xl remus: $dom crashed while protected ($(domu_crash_kind "$dom"))"
xl destroy "$primary" || fail_with "xl remus: xl destroy of the primary failed"
death_ms=$(wall_ms) # as above: the primary is gone once xl destroy returns
if wait_for 240 sh -c "awk -v d=$death_ms '\$1 == \"ack\" && \$5 > d {n++} END {exit n < 5}' '$T/xl.client'"; then
	a=$(acked_continuity "$T/xl.client" "$death_ms")
	echo "xl remus -n: client: $a"
	# -n: xl's backup may lack acknowledged increments (nothing held them).
	xl_fo=$(sed -n 's/.*first_after_ms=\([0-9]*\).*/\1/p' <<<"$a")
	xl_lost=$(sed -n 's/.*acked_lost=\([0-9]*\).*/\1/p' <<<"$a")
else
	echo "xl remus -n: the backup did not answer within 240 s: $(tail -n 2 "$T/xl.recv.log" | tr '\n' ' ')"
	xl_fo=failed
	xl_lost=none
fi
kill "$cl" 2>/dev/null
wait_for 60 sh -c "! kill -0 $xr"

# With xl's network buffering (no -n), on the backup that took over.
xl_netbuf=unsupported
if xl list "$dom" >/dev/null 2>&1; then
	timeout 300 xl -vvv remus -F -d -i "$interval" -s "" "$dom" \
		"exec xl -vvv migrate-receive -r -e 2>$T/xlnb.recv.log" >"$T/xlnb.out" 2>"$T/xlnb.log" &
	xr=$!
	pids+=("$xr")
	wait_for 300 sh -c "! kill -0 $xr || grep -q 'Checkpointed save' '$T/xlnb.log'"
	if grep -q 'Checkpointed save' "$T/xlnb.log"; then
		xl_netbuf=works
		xl destroy "$(domu_id "$dom")" >/dev/null 2>&1
	fi
	why=$(grep -a -i -e 'network buffer' -e 'netbuf' "$T/xlnb.log" | head -n 1)
	echo "xl remus with network buffering: $xl_netbuf: ${why:-$(tail -n 1 "$T/xlnb.log")}"
else
	xl_netbuf=untried
fi
lab_figure xl_remus_flags=-F-n-d xl_remus_failover_ms="$xl_fo" xl_remus_acked_lost="$xl_lost" \
	xl_remus_netbuf="$xl_netbuf"
ours=$(sed -n 's/^plug_failover_ms=//p' "$figs")
lab_figure vs_xl_remus_failover="$(awk -v a="$ours" -v b="$xl_fo" 'BEGIN {if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "?"}')"

c=$(lab_crashes)
[ -z "$c" ] || echo "crashed domUs: $c"
[ "${#failures[@]}" -eq 0 ] || fail_with "$(printf '%s; ' "${failures[@]}")"
exit 0
