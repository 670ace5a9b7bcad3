#!/bin/sh
# ha-witness and the connections it serves: a client that trickles its
# request one byte at a time is cut off after the witness's bound on a
# connection (3 s) instead of holding a slot for minutes; a real request
# still gets its answer meanwhile; and a stop while such a client is
# connected ends at once and cleanly (the connection threads let go of the
# lease table before it is freed; under SAN=1 a use after free would
# abort). Plain TCP (--insecure) on the loopback of a namespace; the
# clients are bash's /dev/tcp.
PREFIX=hawc$$-
. "$(dirname "$0")/lib.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
tmp=$(mktemp -d)
trap 'ns_cleanup; rm -rf "$tmp"' EXIT
need_root
command -v bash >/dev/null || skip "bash is not installed (the clients use its /dev/tcp)"
ip netns add "${PREFIX}w"
ns w ip link set lo up
W=127.0.0.1:7811

witness_up() {
	# Not through the ns function: $! must be ha-witness itself.
	ip netns exec "${PREFIX}w" "$bin/ha-witness" --insecure --listen "$W" --max-ttl 1000 -v \
		--state "$tmp/w.state" \
		> "$tmp/w.log" 2>&1 &
	wpid=$!
	wait_for 5 grep -q "witness on" "$tmp/w.log"
}

# trickle SECONDS: sends "LEASE web primary 1000" one byte every 0.5 s for
# at most SECONDS, and logs when the witness closed the connection.
trickle() {
	ns w bash -c '
		trap "" PIPE
		exec 3<>/dev/tcp/127.0.0.1/7811 || exit 1
		msg="LEASE web primary 1000 protected 00000000000000aa 1"
		i=0 t0=$(date +%s%N)
		while [ $i -lt $(($1 * 2)) ]; do
			printf %s "${msg:$((i % ${#msg})):1}" >&3 2>/dev/null || break
			sleep 0.5
			i=$((i + 1))
		done
		echo "closed after $((($(date +%s%N) - t0) / 1000000)) ms"
	' trickle "$1"
}

# ask: one whole request; prints the reply.
ask() {
	ns w bash -c 'exec 3<>/dev/tcp/127.0.0.1/7811 && printf "LEASE web primary 1000\n" >&3 &&
		IFS= read -r -t 5 line <&3 && echo "$line"'
}

witness_up || { echo "FAIL ha-witness did not start"; cat "$tmp/w.log"; exit 1; }
trickle 20 > "$tmp/t1" &
tpid=$!
sleep 1.5 # the witness's quiet time after its start (--max-ttl 1000)
ask > "$tmp/a1"
check "a whole request is answered while a client trickles" grep -q "^GRANTED " "$tmp/a1"
wait "$tpid"
echo "     the trickling client: $(cat "$tmp/t1")"
check "the trickling client is cut off within 3 s (and a bit)" \
	awk '$1 == "closed" && $3 >= 2500 && $3 < 5000 { ok = 1 } END { exit !ok }' "$tmp/t1"
check "the witness says why" grep -q "no complete request within 3000 ms: cut off" "$tmp/w.log"

# A stop while a client trickles: no waiting on it, and a clean exit.
trickle 20 > /dev/null &
tpid=$!
sleep 1
t0=$(date +%s%N)
kill -TERM "$wpid"
wait "$wpid"
rc=$?
t=$((($(date +%s%N) - t0) / 1000000))
echo "     stopped in $t ms, exit $rc"
check "a stop with a client connected takes under a second" test "$t" -lt 1000
check "and exits 0, having logged that it stopped" sh -c "test $rc -eq 0 && grep -q 'stopped' '$tmp/w.log'"
check "no sanitizer report" sh -c "! grep -q 'Sanitizer' '$tmp/w.log'"
wait "$tpid"
[ "$fails" -eq 0 ] || { echo "--- w.log"; tail -n 20 "$tmp/w.log"; }
[ "$fails" -eq 0 ]
