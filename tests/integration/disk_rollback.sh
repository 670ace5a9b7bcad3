#!/bin/sh
# A checkpoint that commits on the disk but not in memory: ha-receive must
# take the disk commit back, durably. The stream (fault-forge) commits
# epoch 0, then brings epoch 1 with a disk write and a page that cannot be
# decoded. ha-receive commits the disk, fails the memory commit, takes the
# disk commit back and, the primary being alive but broken, tells it and
# discards its copy (no fencing, no failover); it is then killed. Restarted,
# it recovers the journal: the replica must hold epoch 0's write and not
# epoch 1's, like the memory that never committed epoch 1.
# needs: kvm (ha-vm guests; tests/run.sh runs it in the KVM lab where /dev/kvm is missing)
PREFIX=hadrb-
. "$(dirname "$0")/lib.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
tools=$(cd "$HA_BUILD/tests" && pwd)
tmp=$(mktemp -d)
trap 'ns_cleanup; rm -rf "$tmp"' EXIT
need_root
[ -w /dev/kvm ] || skip "/dev/kvm is missing: ha-vm cannot run here"
command -v bash >/dev/null || skip "bash is needed for /dev/tcp"

ip netns add "${PREFIX}b"
ns b ip link set lo up
"$tools/fault-forge" > "$tmp/forge.stream" || { echo "FAIL fault-forge"; exit 1; }

# start_rx LOG: ha-receive in namespace b on the replica; its pid in $rx.
start_rx() {
	ns b env HA_RUN_DIR="$tmp/run" "$bin/ha-receive" --insecure --listen 127.0.0.1:7941 \
		--timeout $(ms 300) --disk "$tmp/replica.img" --fence-cmd 'exit 1' --fence-retry $(ms 60000) \
		> "$tmp/$1" 2>&1 &
	rx=$!
	wait_for 10 grep -q listening "$tmp/$1"
}

start_rx rx1.log || { cat "$tmp/rx1.log"; echo "FAIL ha-receive did not start"; exit 1; }
ns b bash -c "exec 3<>/dev/tcp/127.0.0.1/7941; cat '$tmp/forge.stream' >&3; sleep 1; exec 3>&-"
wait_for 10 grep -q "the primary's stream is broken" "$tmp/rx1.log"
check "epoch 0 committed" grep -q "first checkpoint committed" "$tmp/rx1.log"
check "epoch 1's memory commit fails" grep -q "epoch 1: .*corrupt" "$tmp/rx1.log"
check "its disk commit is taken back" \
	grep -q "disk 0: the commit of epoch 1 is taken back" "$tmp/rx1.log"
check "the primary is told; no fencing, no failover" \
	sh -c "grep -q \"the primary's stream is broken\" '$tmp/rx1.log' && ! grep -q 'fencing the primary' '$tmp/rx1.log' && ! grep -q 'FAILOVER:' '$tmp/rx1.log'"
kill -9 "$rx"
wait "$rx" 2>/dev/null
ns_cleanup # the incoming ha-vm too
ip netns add "${PREFIX}b"
ns b ip link set lo up

# The restart recovers the journal as it was at the kill.
start_rx rx2.log || { cat "$tmp/rx2.log"; echo "FAIL ha-receive did not restart"; exit 1; }
kill "$rx"
wait "$rx" 2>/dev/null
check "the restart recovers epoch 0 and drops epoch 1" \
	grep -q "recovered 1 committed writes (through epoch 0), dropped 1 uncommitted" \
	"$tmp/rx2.log"
head -c 4096 /dev/zero | tr '\0' '\240' > "$tmp/want"
head -c $((1048576 - 4096)) /dev/zero >> "$tmp/want"
check "the replica holds epoch 0's write, not epoch 1's" cmp "$tmp/want" "$tmp/replica.img"

if [ "$fails" -ne 0 ]; then
	tail -n 20 "$tmp/rx1.log" "$tmp/rx2.log"
	exit 1
fi
