#!/bin/sh
# The secondary's own failures. The stream (fault-forge big) commits epoch
# 0, then sends 1.2 MiB of epoch 1.
# 1. A limit of the secondary is no reason to fail over: a checkpoint
#    larger than --max-checkpoint (1 MiB here), from a primary that is
#    still connected, ends the session with an error the primary is told
#    (it runs degraded), and the copy is discarded. The fence command
#    fails: a secondary that took this for a lost primary would be seen
#    fencing.
# 2. A failover that fails (the forged state is no ha-vm state: the
#    activation refuses it) says so, leaves no copy behind, and the next
#    primary is served.
# needs: kvm (ha-vm guests; tests/run.sh runs it in the KVM lab where /dev/kvm is missing)
PREFIX=harxl-
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
"$tools/fault-forge" big > "$tmp/big.stream" || { echo "FAIL fault-forge"; exit 1; }

ns b env HA_RUN_DIR="$tmp/run" "$bin/ha-receive" --insecure --listen 127.0.0.1:7951 \
	--timeout $(ms 2000) --max-checkpoint 1 --fence-cmd 'exit 1' --fence-retry $(ms 60000) \
	> "$tmp/rx.log" 2>&1 &
rx=$!
wait_for 10 grep -q listening "$tmp/rx.log" || { cat "$tmp/rx.log"; echo "FAIL ha-receive did not start"; exit 1; }
# The "primary" stays connected for 3 s after its last octet, and keeps
# what the secondary answers.
ns b bash -c "exec 3<>/dev/tcp/127.0.0.1/7951; cat '$tmp/big.stream' >&3; sleep 3; timeout 1 cat <&3 > '$tmp/back'; exec 3>&-"
wait_for 10 grep -q "cannot keep the copy" "$tmp/rx.log"
check "epoch 0 committed" grep -q "first checkpoint committed" "$tmp/rx.log"
check "the oversized checkpoint is a local failure" \
	grep -q "cannot keep the copy: checkpoint larger than the 1048576-octet buffer bound" "$tmp/rx.log"
check "the primary is told (HA_ERROR on the back channel)" \
	grep -q -a "raise --max-checkpoint" "$tmp/back"
check "no fencing, no failover beside a live primary" \
	sh -c "! grep -q -e 'primary lost' -e 'fencing the primary' -e 'FAILOVER' '$tmp/rx.log'"
copy_gone() { ! ns b env HA_RUN_DIR="$tmp/$1" "$bin/ha-vm" list 2>/dev/null | grep -q forge; }
check "the copy is discarded" copy_gone run
kill "$rx"
wait "$rx" 2>/dev/null

ns b env HA_RUN_DIR="$tmp/run2" "$bin/ha-receive" --insecure --listen 127.0.0.1:7952 \
	--timeout $(ms 300) --fence-cmd true --notify-cmd "echo \$HA_EVENT >> '$tmp/rx2.events'" \
	> "$tmp/rx2.log" 2>&1 &
rx=$!
wait_for 10 grep -q listening "$tmp/rx2.log" || { cat "$tmp/rx2.log"; echo "FAIL ha-receive did not start"; exit 1; }
send() { ns b bash -c "exec 3<>/dev/tcp/127.0.0.1/7952; cat '$tmp/big.stream' >&3; exec 3>&-"; }
send
wait_for 15 grep -q "FAILOVER FAILED" "$tmp/rx2.log"
check "a failed activation says what is left" grep -q "FAILOVER FAILED (activation failed" "$tmp/rx2.log"
check "the failed copy is discarded" copy_gone run2
send
two_sessions() { [ "$(grep -c 'first checkpoint committed' "$tmp/rx2.log")" -ge 2 ]; }
wait_for 15 two_sessions
check "the next primary is served" two_sessions
# The same forged stream twice: each session commits, loses its primary
# and fails to activate.
wait_for 10 sh -c "[ \$(grep -c failover-failed '$tmp/rx2.events') -ge 2 ]"
check "the hook heard, twice: protected, primary-lost, failover-started, failover-failed" \
	sh -c "printf 'protected\nprimary-lost\nfailover-started\nfailover-failed\n%.0s' 1 2 | diff - '$tmp/rx2.events'"
kill "$rx"
wait "$rx" 2>/dev/null
ns b env HA_RUN_DIR="$tmp/run2" "$bin/ha-vm" stop forge 2>/dev/null

if [ "$fails" -ne 0 ]; then
	cat "$tmp/rx.log" "$tmp/rx2.log"
	exit 1
fi
echo "PASS rx_limits"
