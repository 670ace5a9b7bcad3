#!/bin/sh
# The secondary dies: the primary goes degraded, releases held output and
# keeps serving; the secondary comes back and protection resumes with a
# fresh synchronisation. Also: a second primary is refused by a busy
# secondary, and ha-ctl reports and tunes a running pair.
# needs: kvm (ha-vm guests; tests/run.sh runs it in the KVM lab where /dev/kvm is missing)
PREFIX=has-
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/topology.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
tmp=$(mktemp -d)
trap 'ns_cleanup; rm -rf "$tmp"' EXIT
need_root
[ -w /dev/kvm ] || skip "/dev/kvm is missing: ha-vm cannot run here"
command -v iptables >/dev/null || skip "iptables is not installed"

topo_up
start_rx() {
	ns b env HA_RUN_DIR="$tmp/b" HA_VM_ARGS="--tap tapb" \
		"$bin/ha-receive" --insecure --listen 10.66.0.2:7788 --timeout $(ms 150) >> "$tmp/rx.log" 2>&1 &
}
start_rx
ns a env HA_RUN_DIR="$tmp/a" "$bin/ha-vm" run --name web --mem 32M --guest counter \
	--tap tapa --ip "$GUEST_IP/24" --mac "$GUEST_MAC" > "$tmp/vm.log" 2>&1 &
wait_for 10 test -S "$tmp/a/ha-vm/web.sock"
ns a env HA_RUN_DIR="$tmp/a" "$bin/ha-protect" --insecure -i 50 --timeout $(ms 150) --retry 200 \
	--notify-cmd "echo \$HA_SEQ \$HA_EVENT \$HA_DOMAIN >> '$tmp/events'" \
	kvm:web 10.66.0.2:7788 > "$tmp/px.log" 2>&1 &
pxpid=$!
wait_for 20 grep -q "PROTECTED:" "$tmp/px.log" || { cat "$tmp/px.log"; exit 1; }
ctl() { ns "$1" env HA_RUN_DIR="$tmp/$1" "$bin/ha-ctl" "$2" "$3" $4; }

ctl a status kvm:web > "$tmp/st1"
check "ha-ctl status on the primary" grep -q "state: protected" "$tmp/st1"
ctl b status web > "$tmp/st2"
check "ha-ctl status on the secondary" grep -q "state: protected" "$tmp/st2"
ctl a interval kvm:web 20 > /dev/null
ctl a status kvm:web > "$tmp/st3"
check "ha-ctl interval changes the interval" grep -q "interval_ms: 20" "$tmp/st3"
check "a bad interval is refused, and ha-ctl exits 1" sh -c "ip netns exec ${PREFIX}a env HA_RUN_DIR=$tmp/a $bin/ha-ctl interval kvm:web 0 > $tmp/bad; test \$? -eq 1 && grep -q error $tmp/bad"

# A second primary is refused while the first is protected.
ns a env HA_RUN_DIR="$tmp/a2" "$bin/ha-vm" run --name web --mem 32M --guest counter \
	> "$tmp/vm2.log" 2>&1 &
wait_for 10 test -S "$tmp/a2/ha-vm/web.sock"
ns a env HA_RUN_DIR="$tmp/a2" timeout 10 "$bin/ha-protect" --insecure -F -n --timeout $(ms 150) \
	--ctl "$tmp/a2/ctl.sock" kvm:web 10.66.0.2:7788 > "$tmp/px2.log" 2>&1
check "a second primary is refused by the busy secondary" grep -q "already protecting" "$tmp/px2.log"
ns a env HA_RUN_DIR="$tmp/a2" "$bin/ha-vm" stop web

# The client runs through the secondary's death and return.
ns c "$bin/ha-client" counter "$GUEST_IP:7000" --name c1 --interval 5 --timeout 100 \
	--duration 9 > "$tmp/acks" 2> "$tmp/client.log" &
client=$!
sleep 2
ns sw ip link set sw-b down
ip netns pids "${PREFIX}b" | xargs -r kill -9
wait_for 5 grep -q DEGRADED "$tmp/px.log"
check "the primary goes degraded" grep -q "DEGRADED" "$tmp/px.log"
n1=$(wc -l < "$tmp/acks")
sleep 2
n2=$(wc -l < "$tmp/acks")
check "the guest keeps serving while degraded ($((n2 - n1)) acks in 2 s)" test "$n2" -gt "$((n1 + 50))"
ctl a status kvm:web > "$tmp/st4"
check "status says degraded" grep -q "state: degraded" "$tmp/st4"
# The secondary returns: protection resumes.
ns sw ip link set sw-b up
start_rx
wait_for 15 sh -c "grep -c 'PROTECTED: checkpointing' '$tmp/px.log' | grep -q 2"
check "protection resumes with a fresh synchronisation" sh -c "grep -c 'PROTECTED: checkpointing' '$tmp/px.log' | grep -q 2"
ctl a status kvm:web > "$tmp/st5"
check "status counts the re-protection" grep -q "reprotections: 1" "$tmp/st5"
wait $client
check "no acknowledged increment lost" awk '$2 != $3 { bad = 1 } END { exit bad }' "$tmp/acks"
# A clean stop ends the stream with END: the secondary discards its copy.
ctl a stop kvm:web > /dev/null
wait_for 10 grep -q "stopped protection cleanly" "$tmp/rx.log"
check "a clean stop is not a failover" sh -c "grep -q 'stopped protection cleanly' '$tmp/rx.log' && ! grep -q FAILOVER '$tmp/rx.log'"
wait_for 10 grep -q "stopped after" "$tmp/px.log"
check "the secondary confirms the END" grep -q "END confirmed by the secondary" "$tmp/px.log"
wait_for 10 grep -q stopped "$tmp/events"
wait $pxpid
rc=$?
check "ha-protect exits 0 after a stop ($rc)" test "$rc" -eq 0
check "the event hook ran once per event, in order" \
	sh -c "printf '1 protected kvm:web\n2 degraded kvm:web\n3 reprotected kvm:web\n4 stopped kvm:web\n' | diff - '$tmp/events'"
check "output flows after the stop" sh -c "ip netns exec ${PREFIX}c $bin/ha-client counter $GUEST_IP:7000 --name c2 --count 3 >/dev/null 2>&1"
if [ "$fails" -ne 0 ]; then
	for f in px rx vm px2; do echo "--- $f.log"; tail -n 20 "$tmp/$f.log"; done
fi
[ "$fails" -eq 0 ]
