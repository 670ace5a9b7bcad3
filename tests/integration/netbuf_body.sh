# Sourced by netbuf_nfqueue.sh and netbuf_plug.sh with BACKEND and PREFIX
# set: an output buffer on a real bridge. A "guest" namespace sends
# sequence-numbered UDP and ICMP through the buffered port; the receiver
# must see nothing of epoch N before commit(N), then all of it, once and in
# order; teardown releases the rest and leaves nothing behind.
. "$(dirname "$0")/lib.sh"
bin=$HA_BUILD/bin
tmp=$(mktemp -d)
trap 'exec 3>&-; ns_cleanup; rm -rf "$tmp"' EXIT
need_root
[ "$BACKEND" = nfqueue ] && ! command -v iptables >/dev/null && skip "iptables is not installed"

# What a backend installs in namespace a (and must not leave behind).
has_leftovers() {
	if [ "$BACKEND" = nfqueue ]; then
		{ ns a iptables -S; ns a ip6tables -S; } 2>/dev/null | grep -q HANB
	else
		{ ns a ip -o link show; ns a tc qdisc show dev gtap; } 2>/dev/null |
			grep -q -e ': hanb[0-9]' -e ingress
	fi
}
no_leftovers() { ! has_leftovers; }

bridge_topo
ns g ping -c 1 -W 2 10.88.0.20 >/dev/null || { echo "FAIL: topology does not pass traffic"; exit 1; }

count() { grep -c '^seq' "$tmp/recv" 2>/dev/null || true; }
in_order() { # lines seq FROM..TO, exactly, in order
	seq "$1" "$2" | sed 's/^/seq /' > "$tmp/want"
	grep '^seq' "$tmp/recv" | cut -d' ' -f1,2 | diff -q - "$tmp/want" >/dev/null && return 0
	echo "     received $(count) datagrams, seq $(grep '^seq' "$tmp/recv" | head -n 1 | cut -d' ' -f2)..$(grep '^seq' "$tmp/recv" | tail -n 1 | cut -d' ' -f2); wanted $1..$2"
	return 1
}
held() { # exactly N received
	[ "$(count)" -eq "$1" ] && return 0
	echo "     received $(count) datagrams; wanted $1"
	return 1
}

ns c "$bin/ha-client" udp-recv 9000 --idle 20000 > "$tmp/recv" &
wait_for 5 grep -q listening "$tmp/recv"

mkfifo "$tmp/ctl"
ns a "$bin/ha-netbuf" hold --backend "$BACKEND" --queue 11 gtap < "$tmp/ctl" > "$tmp/out" 2>"$tmp/err" &
exec 3>"$tmp/ctl"
wait_for 10 grep -q "ok setup" "$tmp/out" || { cat "$tmp/out" "$tmp/err"; exit 1; }
check "buffer installed" has_leftovers

# Epoch 0: 50 datagrams and 3 pings.
ns g "$bin/ha-client" udp-send 10.88.0.20:9000 --from 0 --count 50
ns g ping -c 3 -i 0.2 -W 10 10.88.0.20 > "$tmp/ping" 2>&1 &
ping_pid=$!
sleep 0.8
check "epoch 0 held before its barrier" test "$(count)" -eq 0
echo "postsuspend 0" >&3
# Epoch 1: 50 more.
ns g "$bin/ha-client" udp-send 10.88.0.20:9000 --from 50 --count 50
sleep 0.5
check "nothing released before commit" test "$(count)" -eq 0
echo "commit 0" >&3
wait_for 5 test "$(count)" -ge 50
sleep 0.3
check "commit 0 releases exactly epoch 0, in order" in_order 0 49
wait $ping_pid
check "ICMP of epoch 0 held ~1s, then delivered" \
	sh -c "grep -q '3 received' '$tmp/ping' && awk '/^rtt/ {split(\$0, a, \"= \"); split(a[2], b, \"/\"); exit !(b[1] + 0 >= 500)}' '$tmp/ping'"
echo "postsuspend 1" >&3
echo "commit 1" >&3
wait_for 5 test "$(count)" -ge 100
sleep 0.3
check "commit 1 releases epoch 1, once and in order" in_order 0 99
# An empty epoch commits cleanly.
echo "postsuspend 2" >&3
echo "commit 2" >&3
# Pipelined, as the epoch loop runs with --max-inflight 2 when ACKs are
# slower than the interval: epoch 4 closes before ACK(3) arrives, so two
# closed epochs are held at once. Epoch 4 is larger than epoch 3: a buffer
# that released by the count of the wrong epoch would let part of it out.
ns g "$bin/ha-client" udp-send 10.88.0.20:9000 --from 100 --count 30
sleep 0.5
echo "postsuspend 3" >&3
ns g "$bin/ha-client" udp-send 10.88.0.20:9000 --from 130 --count 50
sleep 0.5
echo "postsuspend 4" >&3
ns g "$bin/ha-client" udp-send 10.88.0.20:9000 --from 180 --count 20
sleep 0.5
check "pipelined: two closed epochs and an open one held" held 100
echo "commit 3" >&3
wait_for 5 test "$(count)" -ge 130
sleep 0.5
check "pipelined: commit 3 releases epoch 3 only (not epoch 4, closed too)" in_order 0 129
echo "commit 4" >&3
sleep 0.8
n=$(count)
if [ "$BACKEND" = plug ]; then
	# sch_plug counts one closed epoch: epoch 4 closed while 3 was held,
	# so it goes with the next epoch closed (docs/netbuf.md).
	check "pipelined: commit 4 releases nothing of the open epoch 5 (plug: epoch 4 waits for the next)" \
		held 130
else
	check "pipelined: commit 4 releases epoch 4, nothing of the open epoch 5" in_order 0 179
fi
echo "postsuspend 5" >&3
sleep 0.3
check "pipelined: closing epoch 5 releases nothing" held "$n"
echo "commit 5" >&3
wait_for 5 test "$(count)" -ge 200
sleep 0.3
check "pipelined: commit 5 releases epochs up to 5, once and in order" in_order 0 199
# Output after the last barrier is released by teardown.
ns g "$bin/ha-client" udp-send 10.88.0.20:9000 --from 200 --count 20
sleep 0.3
check "open epoch still held" held 200
exec 3>&-
wait_for 5 grep -q "ok teardown" "$tmp/out"
wait_for 5 test "$(count)" -ge 220
check "teardown releases the rest, in order" in_order 0 219
check "no error from the device" sh -c "! grep -q '^error' '$tmp/out'"
check "teardown leaves nothing behind" no_leftovers

# Killed: rules stay (fail closed), the cleanup command removes them.
mkfifo "$tmp/ctl2"
ns a "$bin/ha-netbuf" hold --backend "$BACKEND" --queue 12 gtap < "$tmp/ctl2" > "$tmp/out2" 2>&1 &
holder=$!
exec 4>"$tmp/ctl2"
wait_for 10 grep -q "ok setup" "$tmp/out2"
# ha-netbuf itself ($holder may be the shell running it, as with bash).
for pid in $(ip netns pids "${PREFIX}a"); do
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = ha-netbuf ] && kill -9 "$pid"
done
wait $holder 2>/dev/null
exec 4>&-
check "a killed holder leaves its buffer (output stays held)" has_leftovers
ns a "$bin/ha-netbuf" cleanup gtap
check "cleanup removes it" no_leftovers

# Bad input: clear errors.
check "missing interface is an error" sh -c \
	"echo | ip netns exec ${PREFIX}a $bin/ha-netbuf hold --backend $BACKEND nosuch0 2>&1 | grep -q 'no interface nosuch0'"
if command -v setpriv >/dev/null; then
	check "no CAP_NET_ADMIN is an error" sh -c \
		"echo | ip netns exec ${PREFIX}a setpriv --reuid=65534 --regid=65534 --clear-groups $bin/ha-netbuf hold --backend $BACKEND gtap 2>&1 | grep -q '^error setup'"
fi
if [ "$BACKEND" = nfqueue ] && ! "$bin/ha-netbuf" probe-plug; then
	ns a "$bin/ha-netbuf" hold --backend plug gtap < /dev/null > "$tmp/plug" 2>&1
	check "plug without sch_plug: a clear error" grep -q "no sch_plug" "$tmp/plug"
	check "plug without sch_plug: no IFB or ingress qdisc left" sh -c \
		"! ip netns exec ${PREFIX}a ip -o link show | grep -q ': hanb[0-9]' && ! ip netns exec ${PREFIX}a tc qdisc show dev gtap | grep -q ingress"
fi
check "bad backend is a usage error" sh -c "! $bin/ha-netbuf hold --backend carrier gtap 2>/dev/null"
[ "$fails" -eq 0 ]
