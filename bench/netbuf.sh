#!/bin/sh
# netbuf benchmark: UDP through a bridge port, unbuffered and through the
# NFQUEUE buffer with 10 ms epochs committed as soon as they close (an
# instant secondary). Reports delivered rate and one-way delay p50/p99;
# with buffering the delay should be the epoch wait (on average half an
# epoch) plus the added cost per packet, which is what the difference shows.
PREFIX=hanbb-
. "$(dirname "$0")/../tests/integration/lib.sh"
bin=$HA_BUILD/bin
tmp=$(mktemp -d)
trap 'exec 3>&- 2>/dev/null; ns_cleanup; rm -rf "$tmp"' EXIT
[ "$(id -u)" -eq 0 ] || { echo "bench netbuf: SKIP: needs root"; exit 0; }
command -v iptables >/dev/null || { echo "bench netbuf: SKIP: no iptables"; exit 0; }
ns_cleanup
bridge_topo

RATE=20000 N=60000
run() { # label
	ns c "$bin/ha-client" udp-recv 9000 --idle 1500 > "$tmp/recv" &
	r=$!
	sleep 0.3
	t0=$(date +%s%N)
	ns g "$bin/ha-client" udp-send 10.88.0.20:9000 --from 0 --count $N --rate $RATE
	wait $r
	got=$(grep -c '^seq' "$tmp/recv")
	sort -n -k3 "$tmp/recv" | awk -v n="$got" -v label="$1" -v want=$N '
		/^seq/ { d[++i] = $3 }
		END { printf "%-28s %6d/%d delivered  delay p50 %7.0f us  p99 %7.0f us\n",
			label, n, want, d[int(n * 0.5)], d[int(n * 0.99)] }'
}

echo "netbuf benchmark: $N UDP datagrams at $RATE/s through a bridge port"
run "unbuffered"
mkfifo "$tmp/ctl"
ns a "$bin/ha-netbuf" hold --backend nfqueue --queue 21 --limit 100000 gtap \
	< "$tmp/ctl" > "$tmp/out" 2>&1 &
exec 3>"$tmp/ctl"
wait_for 10 grep -q "ok setup" "$tmp/out"
( e=0; while [ -p "$tmp/ctl" ]; do echo "postsuspend $e"; echo "commit $e"; e=$((e + 1)); sleep 0.01; done ) >&3 &
ticker=$!
run "nfqueue, 10 ms epochs"
kill $ticker 2>/dev/null
exec 3>&-
echo "(one sleeping shell drives the epochs: expect ~5 ms of epoch wait on top of the unbuffered delay)"
