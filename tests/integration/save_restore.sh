#!/bin/sh
# Save and restore on ha-vm: a counter guest on host A is incremented 20
# times, saved with `ha-save kvm:web FILE` (a pre-copy and one checkpoint;
# the guest runs on), incremented 10 more times, then saved again with
# `ha-save --stop`, which stops it at that checkpoint. On host B,
# `ha-restore` runs each file in turn: the increments must answer 21, 22,
# ... from the first (the state of the save, not of the stop) and 31, ...
# from the second. The files are mode 0600 and verify with ha-stream; an
# existing file is never replaced; a file cut short before its only
# checkpoint, and one that is not a stream, are refused with the reason,
# by ha-restore and by ha-receive --restore itself.
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

ns a env HA_RUN_DIR="$dir/a" "$bin/ha-save" kvm:web "$dir/web.save" > "$dir/save.log" 2>&1
rc=$?
check "ha-save exits 0 ($rc)" test "$rc" -eq 0
check "... and checked the file" grep -q "web.save: valid: .* 1 checkpoints" "$dir/save.log"
check "the saved file is its owner's alone (0600)" test "$(stat -c %a "$dir/web.save")" = 600
ns a env HA_RUN_DIR="$dir/a" "$bin/ha-save" kvm:web "$dir/web.save" > "$dir/save2.log" 2>&1
rc=$?
check "an existing file is not replaced (exit $rc)" \
	sh -c "test $rc -eq 2 && grep -q 'never replaces a file' '$dir/save2.log'"
ns c "$bin/ha-client" counter "$GUEST_IP:7000" --name c2 --count 10 --interval 2 --timeout 200 \
	--duration 60 > "$dir/acks2" 2> "$dir/client2.log"
check "the guest ran on after the save (value 30)" sh -c "tail -n 1 '$dir/acks2' | awk '{exit \$3 != 30}'"
ns a env HA_RUN_DIR="$dir/a" "$bin/ha-save" --stop kvm:web "$dir/stop.save" > "$dir/stop.log" 2>&1
rc=$?
check "ha-save --stop exits 0 ($rc)" test "$rc" -eq 0
check "... saying the domain stopped after the file was written" \
	sh -c "grep -q 'SAVED and stopped' '$dir/stop.log' && grep -q 'the domain is stopped' '$dir/stop.log'"
wait_for 10 sh -c "! kill -0 $vmpid 2>/dev/null"
check "A's VM stopped with the save" sh -c "! kill -0 $vmpid 2>/dev/null"
check "the stopped domain's file verifies" "$bin/ha-stream" verify "$dir/stop.save"

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

ns b env HA_RUN_DIR="$dir/b2" "$bin/ha-restore" --vm-args "--tap tapb" "$dir/cut.save" \
	> "$dir/cut2.log" 2>&1
rc=$?
ns b env HA_RUN_DIR="$dir/b2" "$bin/ha-restore" "$dir/junk" > "$dir/junk2.log" 2>&1
rc2=$?
check "ha-restore refuses both ($rc, $rc2) before starting anything" sh -c "
	test $rc -eq 1 && test $rc2 -eq 1 && grep -q 'does not verify' '$dir/cut2.log' &&
	grep -q 'does not verify' '$dir/junk2.log' && ! test -e '$dir/b2'"

# restore FILE N: ha-restore runs FILE on B; its counter answers N.. N+4.
restore() {
	ns b env HA_RUN_DIR="$dir/b$2" "$bin/ha-restore" --vm-args "--tap tapb" "$dir/$1" \
		> "$dir/rx$2.log" 2>&1
	rc=$?
	check "ha-restore $1 exits 0: the domain runs ($rc)" test "$rc" -eq 0
	check "... from its last checkpoint" grep -q 'RESTORE complete' "$dir/rx$2.log"
	ns c "$bin/ha-client" counter "$GUEST_IP:7000" --name "c$2" --count 5 --interval 2 \
		--timeout 200 --duration 60 > "$dir/acks$2" 2> "$dir/client$2.log"
	check "the restored guest answers from the saved state ($2..$(($2 + 4)))" \
		sh -c "awk '\$1 == \"ack\" {v = v \$3 \" \"} END {exit v != \"$2 $(($2 + 1)) $(($2 + 2)) $(($2 + 3)) $(($2 + 4)) \"}' '$dir/acks$2'"
	ip netns pids "${PREFIX}b" | xargs -r kill
	wait_for 10 sh -c "test -z \"\$(ip netns pids ${PREFIX}b)\""
}
restore web.save 21
restore stop.save 31
if [ "$fails" -ne 0 ]; then
	for f in save stop rx21 rx31 vm client21; do echo "--- $f.log"; tail -n 15 "$dir/$f.log"; done
fi
[ "$fails" -eq 0 ]
