#!/bin/sh
# The standby must not replay old input. While ha-receive's incoming ha-vm
# waits, its TAP is attached to host B's bridge; here both bridges flood
# every frame (ageing time 0), as a switch does for a MAC it has not seen
# lately, so the client's requests to the guest on A also reach B's TAP,
# where nothing reads them. At the failover the guest on B must not get
# those frames: they are requests the primary served long ago. The counter
# guest refuses them ("ERR stale"), and the client reports each as a replay.
# needs: kvm (ha-vm guests; tests/run.sh runs it in the KVM lab where /dev/kvm is missing)
PREFIX=hsr-
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/topology.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
tmp=$(mktemp -d)
trap 'ns_cleanup; rm -rf "$tmp"' EXIT
need_root
[ -w /dev/kvm ] || skip "/dev/kvm is missing: ha-vm cannot run here"
command -v iptables >/dev/null || skip "iptables is not installed"

topo_up
ns sw ip link set br0 type bridge ageing_time 0
ns b ip link set brb type bridge ageing_time 0
ns b env HA_RUN_DIR="$tmp/b" HA_VM_ARGS="--tap tapb" "$bin/ha-receive" --insecure \
	--listen 10.66.0.2:7788 --timeout $(ms 150) > "$tmp/rx.log" 2>&1 &
ns a env HA_RUN_DIR="$tmp/a" "$bin/ha-vm" run --name web --mem 32M --guest counter \
	--tap tapa --ip "$GUEST_IP/24" --mac "$GUEST_MAC" > "$tmp/vm.log" 2>&1 &
wait_for 10 test -S "$tmp/a/ha-vm/web.sock" || { cat "$tmp/vm.log"; exit 1; }
ns a env HA_RUN_DIR="$tmp/a" "$bin/ha-protect" --insecure -i 50 --timeout $(ms 150) \
	kvm:web 10.66.0.2:7788 > "$tmp/px.log" 2>&1 &
wait_for 20 grep -q "PROTECTED:" "$tmp/px.log" || { cat "$tmp/px.log" "$tmp/rx.log"; exit 1; }
ns c "$bin/ha-client" counter "$GUEST_IP:7000" --name c1 --interval 2 --timeout 100 \
	--duration 300 > "$tmp/acks" 2> "$tmp/client.log" &
client=$!
# Requests pile up in B's TAP meanwhile.
wait_for 20 sh -c "[ \$(wc -l < '$tmp/acks') -gt 200 ]"
before=$(wc -l < "$tmp/acks")
kill_host_a
wait_for 20 grep -q "FAILOVER complete" "$tmp/rx.log"
sleep $((3 + 2 * TS))
ip netns pids "${PREFIX}c" | xargs -r kill
wait $client
after=$(wc -l < "$tmp/acks")
echo "     $before acks before the kill, $((after - before)) after"
check "the secondary failed over" grep -q "FAILOVER complete" "$tmp/rx.log"
check "the guest on B got no old request (the client saw no ERR, no replay)" \
	sh -c "! grep -q 'ERR\\|replay' '$tmp/client.log'"
check "and answers on" test "$after" -gt "$((before + 10))"
check "ha-vm on B says what it dropped" grep -q "dropped .* frames that reached tapb while" "$tmp/rx.log"
if [ "$fails" -ne 0 ]; then
	for f in px rx vm client; do echo "--- $f.log"; tail -n 15 "$tmp/$f.log"; done
fi
[ "$fails" -eq 0 ]
