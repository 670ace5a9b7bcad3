#!/bin/sh
# The demo: a counter guest on host A, protected to host B; a client
# increments it; host A dies; the guest answers from B without losing an
# acknowledged increment. Hosts are network namespaces on this machine.
set -u
build=${1:-build/default}
bin=$(cd "$build/bin" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=hademo-
. "$here/tests/integration/lib.sh"
. "$here/tests/integration/topology.sh"
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it creates network namespaces)"; exit 1; }
KVMLAB_ENV=""
. "$here/tests/kvmlab/need-kvm.sh"
need_kvm "$here" "$0" "$@"
tmp=$(mktemp -d)
trap 'ns_cleanup; rm -rf "$tmp"' EXIT
say() { printf '\n== %s\n' "$*"; }

[ -w /dev/kvm ] || { echo "demo: /dev/kvm is missing: ha-vm needs KVM (HA_KVM=host was given)"; exit 1; }
[ "${HA_KVMLAB:-0}" = 1 ] && echo "demo: running in the KVM lab: the hosts, ha-vm and its guest are emulated (QEMU TCG), so every figure is slower than on real hardware"
need_root

say "Four hosts as network namespaces: A (primary), B (secondary), C (client), W (witness)"
topo_up
topo_witness_host
sh "$here/scripts/tls-gen.sh" psk "$tmp/pair.psk" demo-pair ||
	{ echo "demo: cannot make a pre-shared key (openssl)"; exit 1; }
echo "the replication link is TLS 1.3 with a pre-shared key (scripts/tls-gen.sh psk)"
# The timers: a down timer of 100 ms, a witness lease of 1 s (scaled under
# emulation: HA_TIME_SCALE).
down=$(ms 100) lease=$(ms 1000)
witness="--witness $WITNESS_IP:7790 --witness-ttl $lease"
ns w "$bin/ha-witness" --tls-psk "$tmp/pair.psk" --listen "$WITNESS_IP:7790" --max-ttl "$lease" \
	--state "$tmp/wit.state" \
	> "$tmp/wit.log" 2>&1 &
echo "host W runs ha-witness: B may activate only with the pair's lease, so a partition"
echo "never leaves two copies serving (lease ${lease} ms)"
# shellcheck disable=SC2086 # option lists are words
ns b env HA_RUN_DIR="$tmp/b" HA_VM_ARGS="--tap tapb" \
	"$bin/ha-receive" --tls-psk "$tmp/pair.psk" --listen 10.66.0.2:7788 --timeout "$down" $witness \
	> "$tmp/rx.log" 2>&1 &
ns a env HA_RUN_DIR="$tmp/a" "$bin/ha-vm" run --name web --mem 64M --guest counter \
	--tap tapa --ip "$GUEST_IP/24" --mac "$GUEST_MAC" > "$tmp/vm.log" 2>&1 &
wait_for 10 test -S "$tmp/a/ha-vm/web.sock" || { cat "$tmp/vm.log"; exit 1; }
echo "host A runs the 'counter' guest (ha-vm, 64 MiB) at $GUEST_IP:7000"

say "ha-protect --tls-psk FILE --witness W kvm:web 10.66.0.2:7788  (epoch every 25 ms, down timer $down ms)"
# shellcheck disable=SC2086
ns a env HA_RUN_DIR="$tmp/a" "$bin/ha-protect" --tls-psk "$tmp/pair.psk" -i 25 --timeout "$down" \
	$witness kvm:web 10.66.0.2:7788 > "$tmp/px.log" 2>&1 &
wait_for 20 grep -q "PROTECTED:" "$tmp/px.log" || { cat "$tmp/px.log"; exit 1; }
sed 's/^[^ ]* //' "$tmp/px.log"
sleep 1
ns a env HA_RUN_DIR="$tmp/a" "$bin/ha-ctl" status kvm:web | sed 's/^/    /'

say "Client C increments the counter continuously (every ack is logged)"
ns c "$bin/ha-client" counter "$GUEST_IP:7000" --name demo --interval 10 --timeout 100 \
	--duration $((30 * TS)) > "$tmp/acks" 2>/dev/null &
client=$!
for i in 1 2 3; do
	sleep 1
	echo "    t=${i}s: last acknowledged value $(tail -n 1 "$tmp/acks" | awk '{print $3}')"
done

protected() {
	ns a env HA_RUN_DIR="$tmp/a" "$bin/ha-ctl" status kvm:web 2>/dev/null | grep -q 'state: protected'
}
if ! protected; then
	echo "    (the pair is not protected right now: waiting for it before host A dies)"
	grep -E "DEGRADED|secondary lost" "$tmp/px.log" | tail -n 2 | sed 's/^[^ ]* /    /'
	wait_for 20 protected || { echo "demo: the pair is not protected:"; tail -n 5 "$tmp/px.log"; exit 1; }
fi
say "Host A dies (its link goes down, every process in it is killed)"
before=$(tail -n 1 "$tmp/acks" | awk '{print $3}')
kill_host_a
echo "    last value acknowledged by A: $before"
last() { tail -n 1 "$tmp/acks" | awk '{print $3}'; }
# Watch until the copy on B has answered for 3 s (at most 15 s, scaled).
i=0 served=0
while [ $i -lt $((15 * TS)) ] && [ $served -lt 3 ]; do
	sleep 1
	i=$((i + 1))
	[ "$(last)" -gt "$before" ] && served=$((served + 1))
	echo "    t=+${i}s: last acknowledged value $(last)"
done
kill "$client" 2>/dev/null
wait "$client" 2>/dev/null

say "Secondary's view"
grep -E "primary lost|FAILOVER complete" "$tmp/rx.log" | sed 's/^[^ ]* //'
grep "guest:" "$(ls "$tmp"/b/*.log 2>/dev/null | head -1)" 2>/dev/null | tail -n 2

say "Verdict"
gap=$(awk 'NR > 1 && $5 - t > m { m = $5 - t } { t = $5 } END { print m + 0 }' "$tmp/acks")
lost=$(awk '$2 != $3 { n++ } END { print n + 0 }' "$tmp/acks")
total=$(wc -l < "$tmp/acks")
echo "    $total increments acknowledged; the client's longest wait between two answers"
echo "    (the failover): ${gap} ms = the witness lease running out (${lease} ms) + activation + the client's retry"
if [ "$lost" -eq 0 ] && [ "$(last)" -gt "$before" ]; then
	echo "    every acknowledged increment survived; the guest now answers from host B"
	exit 0
fi
[ "$lost" -eq 0 ] || echo "    FAILED: $lost acknowledged increments were lost"
[ "$(last)" -gt "$before" ] || echo "    FAILED: the guest did not answer from host B within $((15 * TS)) s"
exit 1
