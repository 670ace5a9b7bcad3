#!/bin/sh
# Save and restore on ha-vm: a counter guest on host A is incremented 20
# times, saved with `ha-protect -F -b --save FILE --max-epochs 1` (a
# pre-copy and one checkpoint; the guest runs on) and incremented 10 more
# times; then A's VM is stopped, and `ha-receive --restore FILE` on host B
# runs the saved state: the next increments must answer 21, 22, ... (the
# state of the save, not of the stop). The file is mode 0600 and verifies
# with ha-stream; a file cut short before its only checkpoint, and one
# that is not a stream, are refused with the reason.
# needs: kvm (ha-vm guests; tests/run.sh runs it in the KVM lab where /dev/kvm is missing)
PREFIX=has-
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/topology.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
tmp=$(mktemp -d)
trap 'ns_cleanup; rm -rf "$tmp"' EXIT
need_root
[ -w /dev/kvm ] || skip "/dev/kvm is missing: ha-vm cannot run here"

dir=$tmp/run
mkdir -p "$dir"
ns_cleanup
topo_up
ns a env HA_RUN_DIR="$dir/a" "$bin/ha-vm" run --name web --mem 32M --guest counter \
	--tap tapa --ip "$GUEST_IP/24" --mac "$GUEST_MAC" > "$dir/vm.log" 2>&1 &
vmpid=$!
wait_for 10 test -S "$dir/a/ha-vm/web.sock" || { cat "$dir/vm.log"; exit 1; }
ns c "$bin/ha-client" counter "$GUEST_IP:7000" --name c1 --count 20 --interval 2 --timeout 200 \
	--duration 60 > "$dir/acks1" 2> "$dir/client1.log"
check "20 increments before the save" test "$(grep -c '^ack ' "$dir/acks1")" -eq 20

ns a env HA_RUN_DIR="$dir/a" "$bin/ha-protect" -F -b --save "$dir/web.save" --max-epochs 1 \
	kvm:web > "$dir/save.log" 2>&1
rc=$?
check "the save exits 0 ($rc)" test "$rc" -eq 0
check "the saved file is its owner's alone (0600)" test "$(stat -c %a "$dir/web.save")" = 600
check "the saved file verifies" sh -c "'$bin/ha-stream' verify '$dir/web.save' | grep -q 'valid: .* 1 checkpoints'"
ns c "$bin/ha-client" counter "$GUEST_IP:7000" --name c2 --count 10 --interval 2 --timeout 200 \
	--duration 60 > "$dir/acks2" 2> "$dir/client2.log"
check "the guest ran on after the save (value 30)" sh -c "tail -n 1 '$dir/acks2' | awk '{exit \$3 != 30}'"
ip netns pids "${PREFIX}a" | xargs -r kill
wait_for 10 sh -c "! kill -0 $vmpid 2>/dev/null"
check "A's VM stopped" sh -c "! kill -0 $vmpid 2>/dev/null"

# Not a stream: refused, nothing started.
head -c 4096 /dev/urandom > "$dir/junk"
ns b env HA_RUN_DIR="$dir/b0" HA_VM_ARGS="--tap tapb" "$bin/ha-receive" --restore "$dir/junk" \
	> "$dir/junk.log" 2>&1
rc=$?
check "a file that is no stream is refused (exit $rc)" test "$rc" -eq 1
check "... saying so" grep -q "is not a stream ha-protect --save wrote" "$dir/junk.log"

# Cut in its pre-copy: no complete checkpoint, nothing to run.
head -c $(($(stat -c %s "$dir/web.save") / 2)) "$dir/web.save" > "$dir/cut.save"
ns b env HA_RUN_DIR="$dir/b1" HA_VM_ARGS="--tap tapb" "$bin/ha-receive" --restore "$dir/cut.save" \
	> "$dir/cut.log" 2>&1
rc=$?
check "a file cut before its checkpoint is refused (exit $rc)" test "$rc" -eq 1
check "... saying so" grep -q "holds no complete checkpoint" "$dir/cut.log"

ns b env HA_RUN_DIR="$dir/b" HA_VM_ARGS="--tap tapb" "$bin/ha-receive" --restore "$dir/web.save" \
	> "$dir/rx.log" 2>&1
rc=$?
check "ha-receive --restore exits 0: the domain runs ($rc)" test "$rc" -eq 0
check "it restored the last checkpoint" grep -q 'RESTORE complete' "$dir/rx.log"
ns c "$bin/ha-client" counter "$GUEST_IP:7000" --name c3 --count 5 --interval 2 --timeout 200 \
	--duration 60 > "$dir/acks3" 2> "$dir/client3.log"
check "the restored guest answers from the saved state (21..25)" \
	sh -c "awk '\$1 == \"ack\" {v = v \$3 \" \"} END {exit v != \"21 22 23 24 25 \"}' '$dir/acks3'"
ip netns pids "${PREFIX}b" | xargs -r kill
if [ "$fails" -ne 0 ]; then
	for f in save rx vm client3; do echo "--- $f.log"; tail -n 15 "$dir/$f.log"; done
	cat "$dir/acks3"
fi
[ "$fails" -eq 0 ]
