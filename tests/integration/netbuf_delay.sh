#!/bin/bash
# The delay an output buffer adds under a pipelined epoch schedule: not a
# pass/fail test (not in INTEG_TESTS) but a measurement, run by hand on this
# host (nfqueue) and by lab test 20-netbuf-plug (plug, on sch_plug).
#
#   HA_BUILD=build/default BACKEND=nfqueue|plug tests/integration/netbuf_delay.sh
#
# A "guest" sends UDP at RATE/s for COUNT datagrams through a buffered
# bridge port while a driver plays the epoch loop: postsuspend(e) every
# INTERVAL_MS, commit(e) ACK_MS after it. ACK_MS < INTERVAL_MS is the
# in-order loop (depth 1: ps0 c0 ps1 c1 ...); INTERVAL_MS < ACK_MS <
# 2 x INTERVAL_MS the pipelined one with --max-inflight 2 (ps0 ps1 c0 ps2
# c1 ...). Each run prints one line:
#   delay BACKEND interval=I ack=A delivered=N/COUNT p50_us=.. p99_us=.. mean_us=.. max_us=..
# Runs every ACK_MS value given (default "10 30", with INTERVAL_MS 20).
PREFIX=${PREFIX:-hanbd-}
. "$(dirname "$0")/lib.sh"
bin=$HA_BUILD/bin
BACKEND=${BACKEND:-nfqueue}
INTERVAL_MS=${INTERVAL_MS:-20}
ACK_MS_LIST=${ACK_MS_LIST:-"10 30"}
RATE=${RATE:-1000}
COUNT=${COUNT:-3000}
IDLE_MS=${IDLE_MS:-2000} # the receiver stops after this long without a datagram
tmp=$(mktemp -d)
trap 'exec 3>&- 2>/dev/null; touch "$tmp/stop"; ns_cleanup; rm -rf "$tmp"' EXIT
need_root
[ "$BACKEND" = nfqueue ] && ! command -v iptables >/dev/null && skip "iptables is not installed"
bridge_topo

now_us() { echo "${EPOCHREALTIME/./}"; }

# drive I A: postsuspend(e) at (e+1)*I ms, commit(e) at (e+1)*I + A ms
# (absolute times, no drift), until $tmp/stop exists.
drive() {
	local i=$(($1 * 1000)) a=$(($2 * 1000)) t0 e=0 c=0 at what d
	exec 8<>"$tmp/sleep"
	t0=$(now_us)
	while [ ! -e "$tmp/stop" ]; do
		if [ "$c" -lt "$e" ] && [ $((t0 + (c + 1) * i + a)) -le $((t0 + (e + 1) * i)) ]; then
			at=$((t0 + (c + 1) * i + a))
			what="commit $c"
			c=$((c + 1))
		else
			at=$((t0 + (e + 1) * i))
			what="postsuspend $e"
			e=$((e + 1))
		fi
		d=$((at - $(now_us)))
		[ "$d" -gt 0 ] && [ "$d" -lt 1000000 ] && read -r -t "$(printf '0.%06d' "$d")" -u 8
		echo "$what"
	done
}

mkfifo "$tmp/sleep"
for ack in $ACK_MS_LIST; do
	rm -f "$tmp/stop" "$tmp/ctl"
	mkfifo "$tmp/ctl"
	ns a "$bin/ha-netbuf" hold --backend "$BACKEND" --queue 23 --limit 100000 gtap \
		<"$tmp/ctl" >"$tmp/out" 2>&1 &
	holder=$!
	exec 3>"$tmp/ctl"
	wait_for 10 grep -q "ok setup" "$tmp/out" || { cat "$tmp/out"; exit 1; }
	ns c "$bin/ha-client" udp-recv 9000 --idle "$IDLE_MS" >"$tmp/recv" &
	recv=$!
	wait_for 5 grep -q listening "$tmp/recv"
	drive "$INTERVAL_MS" "$ack" >&3 &
	driver=$!
	ns g "$bin/ha-client" udp-send 10.88.0.20:9000 --from 0 --count "$COUNT" --rate "$RATE"
	wait $recv
	{ ns a tc -s qdisc show; ns a cat /proc/net/netfilter/nfnetlink_queue
	  echo "receiver's UDP counters:"; ns c grep '^Udp:' /proc/net/snmp; } >"$tmp/tc" 2>&1
	touch "$tmp/stop"
	wait $driver
	exec 3>&-
	wait $holder
	grep -q '^error' "$tmp/out" && { echo "FAIL: the device reported an error:"; grep '^error' "$tmp/out" | head -n 3; exit 1; }
	grep '^seq' "$tmp/recv" | sort -n -k3 | awk -v b="$BACKEND" -v i="$INTERVAL_MS" -v a="$ack" -v want="$COUNT" '
		{ d[++n] = $3; s += $3 }
		END {
			if (!n) { printf "delay %s interval=%d ack=%d delivered=0/%d\n", b, i, a, want; exit }
			printf "delay %s interval=%d ack=%d delivered=%d/%d p50_us=%d p99_us=%d mean_us=%d max_us=%d\n",
				b, i, a, n, want, d[int(n * 0.5) + 1], d[int(n * 0.99) + 1], s / n, d[n] }'
	if [ "$(grep -c '^seq' "$tmp/recv")" -lt "$COUNT" ]; then # evidence: how far the epochs got, what the kernel holds
		echo "--- datagrams missing; the device's last answers:"
		tail -n 4 "$tmp/out"
		echo "--- when the receiver stopped: qdiscs and NFQUEUEs (id, portid, waiting, copy mode, range, dropped, user-dropped, last id) in namespace a; UDP counters in c"
		cat "$tmp/tc"
	fi
done
