#!/bin/sh
# End to end with a replicated disk: the `disk` guest on host A writes
# sequence-numbered blocks through ha-diskrepl (an NBD export of A's image,
# mirrored into the checkpoint stream); host B keeps a replica with its
# journal. Host A dies mid-epoch; on B the guest resumes on the replica and
# checks that disk and memory agree (the block of the last sequence it
# recorded holds it, and no newer block exists). Then the replica is checked
# against the guest's own view, and a second run re-protects after a
# secondary restart (incremental resynchronisation).
# needs: kvm (ha-vm guests; tests/run.sh runs it in the KVM lab where /dev/kvm is missing)
PREFIX=hadk-
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/topology.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
tmp=$(mktemp -d)
trap 'ns_cleanup; umount "$tmp/full/small" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
need_root
[ -w /dev/kvm ] || skip "/dev/kvm is missing: ha-vm cannot run here"

# start_primary DIR INTERVAL: ha-diskrepl + ha-vm (disk guest) + ha-protect on A.
start_primary() {
	dir=$1
	ns a env HA_RUN_DIR="$dir/a" "$bin/ha-diskrepl" --name d0 --image "$dir/primary.img" \
		> "$dir/drl.log" 2>&1 &
	wait_for 10 test -S "$dir/a/ha-diskrepl/d0.nbd" || { cat "$dir/drl.log"; return 1; }
	ns a env HA_RUN_DIR="$dir/a" "$bin/ha-vm" run --name st --mem 32M --guest disk \
		--disk "nbd:unix:$dir/a/ha-diskrepl/d0.nbd" --tap tapa --ip "$GUEST_IP/24" \
		--mac "$GUEST_MAC" > "$dir/vm.log" 2>&1 &
	wait_for 10 test -S "$dir/a/ha-vm/st.sock" || { cat "$dir/vm.log"; return 1; }
	ns a env HA_RUN_DIR="$dir/a" "$bin/ha-protect" --insecure -i "$2" --timeout $(ms 150) --disk d0 \
		kvm:st 10.66.0.2:7788 > "$dir/px.log" 2>&1 &
	wait_for 30 grep -q "PROTECTED:" "$dir/px.log" || { tail -n 20 "$dir/px.log" "$dir/rx.log"; return 1; }
}

start_secondary() {
	dir=$1
	ns b env HA_RUN_DIR="$dir/b" HA_VM_ARGS="--tap tapb" "$bin/ha-receive" --insecure \
		--listen 10.66.0.2:7788 --timeout $(ms 150) --disk "$dir/replica.img" >> "$dir/rx.log" 2>&1 &
	rx=$!
	wait_for 10 test -S "$dir/b/ha-receive/st.sock" -o -S "$dir/b/ha-receive/ha-receive.sock" ||
		sleep 0.5
}

# The highest sequence number among the disk guest's 4 KiB blocks.
max_seq() {
	od -An -v -t u8 -w4096 "$1" | awk '$2 > m { m = $2 } END { print m + 0 }'
}

dump_logs() {
	for f in px rx vm drl; do echo "--- $f.log"; tail -n 20 "$1/$f.log" 2>/dev/null; done
}

run_failover() { # seconds of protection before the kill, interval ms
	delay=$1 interval=$2 dir=$tmp/fo-$1-$2
	mkdir -p "$dir"
	ns_cleanup
	topo_up
	truncate -s 8M "$dir/primary.img"
	start_secondary "$dir"
	start_primary "$dir" "$interval" || { fails=$((fails + 1)); dump_logs "$dir"; return; }
	sleep "$delay"
	kill_host_a
	wait_for 10 grep -q "FAILOVER complete" "$dir/rx.log"
	# The resumed guest reports its check on its console (in ha-receive's log).
	wait_for 10 grep -q "disk: .* at sequence" "$dir/rx.log" "$dir"/b/*.log 2>/dev/null
	seqs=$(grep -ho "disk and memory agree at sequence [0-9]*" "$dir/rx.log" "$dir"/b/*.log 2>/dev/null |
		awk '{print $NF}' | tail -n 1)
	echo "     kill after ${delay}s (interval ${interval} ms): resumed at sequence ${seqs:-?}"
	check "the secondary failed over" grep -q "FAILOVER complete" "$dir/rx.log"
	check "the resumed guest finds disk and memory in agreement" test -n "$seqs"
	check "no MISMATCH reported" sh -c "! grep -q MISMATCH '$dir/rx.log' $dir/b/*.log 2>/dev/null"
	# The guest keeps writing on B, on the replica: its newest block moves
	# past the sequence it resumed at.
	sleep 1
	newest=$(max_seq "$dir/replica.img")
	echo "     newest block on the replica one second later: sequence $newest"
	check "the guest writes on after the failover" test "${newest:-0}" -gt "${seqs:-0}"
	[ "$fails" -eq 0 ] || dump_logs "$dir"
}

# The secondary dies and comes back on the same replica while the guest
# writes on: the primary degrades, tracks the changed chunks, re-protects
# with an incremental resynchronisation; then host A dies and the guest
# resumes on B with disk and memory in agreement.
run_reprotect() {
	dir=$tmp/reprotect
	mkdir -p "$dir"
	ns_cleanup
	topo_up
	truncate -s 8M "$dir/primary.img"
	start_secondary "$dir"
	start_primary "$dir" 30 || { fails=$((fails + 1)); dump_logs "$dir"; return; }
	sleep 1
	ip netns pids "${PREFIX}b" | xargs -r kill -9 # ha-receive and its incoming ha-vm
	wait_for 10 grep -q "DEGRADED" "$dir/px.log"
	sleep 1
	start_secondary "$dir"
	wait_for 30 sh -c "grep -c 'PROTECTED:' '$dir/px.log' | grep -qv '^1\$'"
	sync_line=$(grep "disk 0: attached" "$dir/px.log" | tail -n 1 | sed 's/.*attached/attached/')
	echo "     re-protection: $sync_line"
	check "re-protected after the secondary came back" \
		test "$(grep -c 'PROTECTED:' "$dir/px.log")" -ge 2
	check "the re-protection resynchronised incrementally" \
		sh -c "grep 'disk 0: attached' '$dir/px.log' | tail -n 1 | grep -q incremental"
	sleep 2
	kill_host_a
	wait_for 10 grep -q "FAILOVER complete" "$dir/rx.log"
	wait_for 10 grep -q "disk: .* at sequence" "$dir/rx.log"
	seqs=$(grep -o "disk and memory agree at sequence [0-9]*" "$dir/rx.log" | awk '{print $NF}' |
		tail -n 1)
	echo "     failover after re-protection: resumed at sequence ${seqs:-?}"
	check "after re-protection, the resumed guest finds disk and memory in agreement" \
		test -n "$seqs"
	[ "$fails" -eq 0 ] || dump_logs "$dir"
}

# The secondary's disk fills up (its journal on a 2 MiB tmpfs): the primary
# is told, goes degraded saying why, and the guest runs on unprotected.
run_disk_full() {
	dir=$tmp/full
	mkdir -p "$dir/small"
	mount -t tmpfs -o size=2m tmpfs "$dir/small" || { echo "     SKIP disk full: no tmpfs"; return; }
	ns_cleanup
	topo_up
	truncate -s 8M "$dir/primary.img"
	ns b env HA_RUN_DIR="$dir/b" HA_VM_ARGS="--tap tapb" "$bin/ha-receive" --insecure \
		--listen 10.66.0.2:7788 --timeout $(ms 150) \
		--disk "$dir/replica.img,journal=$dir/small/journal" > "$dir/rx.log" 2>&1 &
	start_primary "$dir" 50 || { fails=$((fails + 1)); dump_logs "$dir"; umount "$dir/small"; return; }
	wait_for 20 grep -q "disk is full" "$dir/px.log"
	echo "     $(grep -o "the secondary reports: .*" "$dir/px.log" | head -n 1)"
	check "a full disk on the secondary: the primary degrades and says why" \
		sh -c "grep 'DEGRADED\|secondary reports' '$dir/px.log' | grep -q 'disk is full'"
	before=$(max_seq "$dir/primary.img")
	sleep 1
	check "the guest writes on, unprotected" test "$(max_seq "$dir/primary.img")" -gt "$before"
	[ "$fails" -eq 0 ] || dump_logs "$dir"
	ns_cleanup
	umount "$dir/small"
}

run_failover 2 20
run_failover 3 50
run_reprotect
run_disk_full
[ "$fails" -eq 0 ]
