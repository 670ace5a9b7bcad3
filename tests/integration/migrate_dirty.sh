#!/bin/sh
# End to end: live migration (ha-protect --migrate) of the dirty guest,
# which writes a pass number into every page of its working set, at a
# rate pre-copy keeps up with and at one it does not. Each run: host A's
# guest is pre-copied to B while it runs, the first checkpoint is
# committed there, the next one is the last (a switchover): A's VM stops,
# B's runs on from it. Checks that ha-protect exits 0 and says whether the
# pre-copy converged, that A's VM is gone and B's guest writes on past the
# pass it had reached; prints the total time and the downtime.
# needs: kvm (ha-vm guests; tests/run.sh runs it in the KVM lab where /dev/kvm is missing)
PREFIX=ham-
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/topology.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
tmp=$(mktemp -d)
trap 'ns_cleanup; rm -rf "$tmp"' EXIT
need_root
[ -w /dev/kvm ] || skip "/dev/kvm is missing: ha-vm cannot run here"
gen="$(dirname "$0")/../../scripts/tls-gen.sh"
sh "$gen" psk "$tmp/psk" pair || { echo "FAIL cannot make a pre-shared key"; exit 1; }

# The last pass the dirty guest reported in LOG ("dirty: pass N, ...").
last_pass() { sed -n 's/.*dirty: pass \([0-9]*\),.*/\1/p' "$1" | tail -n 1; }

run_once() { # pages per ms, working set (pages), expect converge|not
	rate=$1 ws=$2 expect=$3 dir=$tmp/run-$1
	mkdir -p "$dir"
	ns_cleanup
	topo_up
	ns b env HA_RUN_DIR="$dir/b" HA_VM_ARGS="--tap tapb" \
		"$bin/ha-receive" --tls-psk "$tmp/psk" --listen 10.66.0.2:7788 --once \
		--timeout $(ms 300) > "$dir/rx.log" 2>&1 &
	rxpid=$!
	wait_for 20 grep -q 'listening on' "$dir/rx.log" || { cat "$dir/rx.log"; return 1; }
	ns a env HA_RUN_DIR="$dir/a" "$bin/ha-vm" run --name web --mem 64M --guest dirty \
		--arg 0="$rate" --arg 1="$ws" --tap tapa > "$dir/vm.log" 2>&1 &
	vmpid=$!
	wait_for 10 test -S "$dir/a/ha-vm/web.sock" || { cat "$dir/vm.log"; return 1; }
	# Let it dirty its working set a few times over.
	wait_for 100 sh -c "[ \"\$(sed -n 's/.*dirty: pass \\([0-9]*\\),.*/\\1/p' '$dir/vm.log' | tail -n 1)\" -ge 1 ]"
	t0=$(date +%s%N)
	ns a env HA_RUN_DIR="$dir/a" "$bin/ha-protect" --tls-psk "$tmp/psk" --migrate -i 50 \
		--timeout $(ms 300) kvm:web 10.66.0.2:7788 > "$dir/px.log" 2>&1
	rc=$?
	t1=$(date +%s%N)
	check "ha-protect --migrate exits 0 ($rc; $rate pages/ms over $ws)" test "$rc" -eq 0
	if [ "$expect" = converge ]; then
		check "the pre-copy converged" grep -q 'pre-copy converged' "$dir/px.log"
	else
		check "the pre-copy did not converge, and said so" grep -q 'pre-copy does not converge' "$dir/px.log"
		grep -a -o 'pre-copy does not converge.*' "$dir/px.log" | sed 's/^/     /'
	fi
	check "the secondary runs it (SWITCHOVER complete)" grep -q 'SWITCHOVER complete' "$dir/rx.log"
	wait_for 20 sh -c "! kill -0 $vmpid 2>/dev/null"
	check "A's VM stopped" sh -c "! kill -0 $vmpid 2>/dev/null"
	pa=$(last_pass "$dir/vm.log")
	# B's incoming ha-vm logs as ha-receive's child, into rx.log.
	wait_for 150 sh -c "[ \"\$(sed -n 's/.*dirty: pass \\([0-9]*\\),.*/\\1/p' '$dir/rx.log' | tail -n 1)\" -gt '${pa:-0}' ]"
	pb=$(last_pass "$dir/rx.log")
	check "B's guest writes on past A's last pass (${pa:-?} -> ${pb:-?})" test "${pb:-0}" -gt "${pa:-0}"
	echo "     $rate pages/ms over $ws pages: $(grep -a -o 'pre-copy done in [0-9]* ms' "$dir/px.log"); $(grep -a -o 'MIGRATION complete.*' "$dir/px.log"); ha-protect ran $(( (t1 - t0) / 1000000 )) ms"
	ns b sh -c 'kill $(pidof ha-vm) 2>/dev/null'
	wait $rxpid 2>/dev/null
	if [ "$fails" -ne 0 ]; then
		for f in px rx vm; do echo "--- $f.log"; tail -n 15 "$dir/$f.log"; done
	fi
}

run_once 2 2000 converge || { echo "FAIL the run (2 pages/ms) did not start"; fails=$((fails + 1)); }
run_once 400 12000 not || { echo "FAIL the run (400 pages/ms) did not start"; fails=$((fails + 1)); }
[ "$fails" -eq 0 ]
