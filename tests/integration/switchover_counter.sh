#!/bin/sh
# End to end: a planned switchover. A counter guest on host A is protected
# to host B over TLS 1.3 (pre-shared key); a client increments it
# continuously; `ha-ctl switchover` hands the guest to B: A's last
# checkpoint leaves it suspended, B commits and acknowledges it, A stops
# its VM, and B runs the copy. No acknowledged increment is lost (one
# client, exactly-once ids: the value acknowledged for request N must be
# N); A's VM is gone, ha-protect exits 0 and ha-receive 3. Then the roles
# swap: B protects the guest to A (a full pre-copy), and a second
# switchover brings it back to A, the client still counting. The
# downtimes (ha-protect's logs) and the longest silence the client saw are
# printed.
# needs: kvm (ha-vm guests; tests/run.sh runs it in the KVM lab where /dev/kvm is missing)
PREFIX=haw-
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/topology.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
tmp=$(mktemp -d)
trap 'ns_cleanup; rm -rf "$tmp"' EXIT
need_root
[ -w /dev/kvm ] || skip "/dev/kvm is missing: ha-vm cannot run here"
command -v iptables >/dev/null || skip "iptables is not installed"
gen="$(dirname "$0")/../../scripts/tls-gen.sh"
sh "$gen" psk "$tmp/psk" pair || { echo "FAIL cannot make a pre-shared key"; exit 1; }

dir=$tmp/run
mkdir -p "$dir"
ns_cleanup
topo_up
ns b env HA_RUN_DIR="$dir/b" HA_VM_ARGS="--tap tapb" \
	"$bin/ha-receive" --tls-psk "$tmp/psk" --listen 10.66.0.2:7788 --timeout $(ms 150) \
	--notify-cmd "echo \$HA_EVENT \$HA_DOMAIN >> '$dir/b.events'" > "$dir/rx.log" 2>&1 &
rxpid=$!
wait_for 20 grep -q 'listening on' "$dir/rx.log" || { cat "$dir/rx.log"; exit 1; }
ns a env HA_RUN_DIR="$dir/a" "$bin/ha-vm" run --name web --mem 32M --guest counter \
	--tap tapa --ip "$GUEST_IP/24" --mac "$GUEST_MAC" > "$dir/vm.log" 2>&1 &
vmpid=$!
wait_for 10 test -S "$dir/a/ha-vm/web.sock" || { cat "$dir/vm.log"; exit 1; }
ns a env HA_RUN_DIR="$dir/a" "$bin/ha-protect" --tls-psk "$tmp/psk" -i 50 --timeout $(ms 150) \
	--notify-cmd "echo \$HA_EVENT \$HA_DOMAIN >> '$dir/a.events'" \
	kvm:web 10.66.0.2:7788 > "$dir/px.log" 2>&1 &
pxpid=$!
wait_for 20 grep -q "PROTECTED:" "$dir/px.log" || { cat "$dir/px.log" "$dir/rx.log"; exit 1; }
ns c "$bin/ha-client" counter "$GUEST_IP:7000" --name c1 --interval 2 --timeout 100 \
	--duration 300 > "$dir/acks" 2> "$dir/client.log" &
client=$!
wait_for 20 sh -c "[ \$(wc -l < '$dir/acks') -gt 10 ]"
sleep 2

# Refused while not protected is covered by the unit tests; here the real one.
ns a env HA_RUN_DIR="$dir/a" "$bin/ha-ctl" switchover kvm:web > "$dir/sw.out" 2>&1
check "ha-ctl switchover is taken" grep -q '^ok:' "$dir/sw.out"
before=$(wc -l < "$dir/acks")
wait_for 60 grep -q -e 'SWITCHOVER complete' -e 'SWITCHOVER FAILED' -e 'SWITCHOVER UNCONFIRMED' \
	-e 'switchover of web aborted' "$dir/px.log"
check "A handed the guest over" grep -q 'SWITCHOVER complete' "$dir/px.log"
check "B activated it" grep -q 'SWITCHOVER complete' "$dir/rx.log"
wait_for 20 sh -c "! kill -0 $pxpid 2>/dev/null"
wait $pxpid
rc=$?
check "ha-protect exits 0: handed over ($rc)" test "$rc" -eq 0
wait_for 20 sh -c "! kill -0 $vmpid 2>/dev/null"
check "A's VM stopped" sh -c "! kill -0 $vmpid 2>/dev/null"
wait_for 20 sh -c "! kill -0 $rxpid 2>/dev/null"
wait $rxpid
rc=$?
check "ha-receive exits 3: the domain runs there ($rc)" test "$rc" -eq 3
sleep $((2 + TS))

# --- the way back: B protects the guest to A, then hands it back -------
ns a env HA_RUN_DIR="$dir/a" HA_VM_ARGS="--tap tapa" \
	"$bin/ha-receive" --tls-psk "$tmp/psk" --listen 10.66.0.1:7788 --timeout $(ms 150) \
	> "$dir/rx2.log" 2>&1 &
rxpid=$!
wait_for 20 grep -q 'listening on' "$dir/rx2.log" || { cat "$dir/rx2.log"; exit 1; }
ns b env HA_RUN_DIR="$dir/b" "$bin/ha-protect" --tls-psk "$tmp/psk" -i 50 --timeout $(ms 150) \
	kvm:web 10.66.0.1:7788 > "$dir/px2.log" 2>&1 &
pxpid=$!
wait_for 20 grep -q "PROTECTED:" "$dir/px2.log" || { cat "$dir/px2.log" "$dir/rx2.log"; exit 1; }
check "B protects the guest to A" grep -q "PROTECTED:" "$dir/px2.log"
sleep 2
back=$(wc -l < "$dir/acks")
ns b env HA_RUN_DIR="$dir/b" "$bin/ha-ctl" switchover kvm:web > "$dir/sw2.out" 2>&1
check "the second switchover is taken" grep -q '^ok:' "$dir/sw2.out"
wait_for 60 grep -q -e 'SWITCHOVER complete' -e 'SWITCHOVER FAILED' -e 'SWITCHOVER UNCONFIRMED' \
	-e 'switchover of web aborted' "$dir/px2.log"
check "B handed the guest back to A" grep -q 'SWITCHOVER complete' "$dir/px2.log"
check "A runs it again" grep -q 'SWITCHOVER complete' "$dir/rx2.log"
wait_for 20 sh -c "! kill -0 $pxpid 2>/dev/null"
wait $pxpid
rc=$?
check "B's ha-protect exits 0 ($rc)" test "$rc" -eq 0
wait_for 20 sh -c "! kill -0 $rxpid 2>/dev/null"
wait $rxpid
rc=$?
check "A's ha-receive exits 3 ($rc)" test "$rc" -eq 3
sleep $((4 + 2 * TS))
ip netns pids "${PREFIX}c" | xargs -r kill
after=$(wc -l < "$dir/acks")
echo "     $before acks before the switchover, $((back - before)) on B, $((after - back)) back on A"
check "guest answered from B after the switchover" test "$back" -gt "$((before + 10))"
check "guest answers from A after the switchover back" test "$after" -gt "$((back + 10))"
check "no acknowledged increment lost (value == request id)" \
	awk '$2 != $3 { print "     lost: " $0; bad = 1 } END { exit bad }' "$dir/acks"
check "no failover: B saw a handover, not a lost primary" sh -c "! grep -q 'FAILOVER' '$dir/rx.log'"
check "the hooks ran once per event, in order (A: protected, switched-over, stopped; B: protected, switchover-started, switchover-complete)" \
	sh -c "printf 'protected kvm:web\nswitched-over kvm:web\nstopped kvm:web\n' | diff - '$dir/a.events' &&
		printf 'protected web\nswitchover-started web\nswitchover-complete web\n' | diff - '$dir/b.events'"
grep -a -o 'downtime [0-9]* ms.*' "$dir/px.log" "$dir/px2.log" | sed 's/^/     /'
gap=$(awk 'NR > 1 && $5 - t > m { m = $5 - t } { t = $5 } END { print m + 0 }' "$dir/acks")
echo "     longest silence the client saw (two switchovers): ${gap} ms"
if [ "$fails" -ne 0 ]; then
	for f in px rx vm px2 rx2; do echo "--- $f.log"; tail -n 15 "$dir/$f.log"; done
fi
[ "$fails" -eq 0 ]
