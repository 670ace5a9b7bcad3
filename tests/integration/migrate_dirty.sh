#!/bin/sh
# End to end: live migration (ha-protect --migrate) of the dirty guest,
# which writes a pass number into every page of its working set, at a
# rate pre-copy keeps up with and at one it does not. Each run: host A's
# guest is pre-copied to B while it runs, the first checkpoint is
# committed there, the next one is the last (a switchover): A's VM stops,
# B's runs on from it. Checks that ha-protect exits 0 and says whether the
# pre-copy converged, that A's VM is gone and B's guest writes on past the
# pass it had reached with its own memory check clean (the dirty guest
# checks every page holds the pass before it writes the next); prints the
# total time and the downtime. At the rate pre-copy does not keep up with,
# the same guest migrates once more with --postcopy, and the two are
# printed side by side. Last, a postcopy whose link goes down midway: the
# destination stops its copy, the source keeps its domain suspended, both
# say so (docs/operator-guide.md, "Postcopy").
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

# A fresh topology in $dir: ha-receive on B (--once), and on A the dirty
# guest at $rate pages per ms over $ws pages.
start_pair() {
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
}

run_once() { # pages per ms, working set (pages), expect converge|not|any|postcopy
	rate=$1 ws=$2 expect=$3 dir=$tmp/run-$1-$3
	pcopt=""
	[ "$expect" = postcopy ] && pcopt=--postcopy
	# Under emulation the guest may get so little CPU while pages are sent
	# that it dirties fewer than the default 1024 pages a round, and the
	# pre-copy converges (seen in a whole CI run at 400 pages/ms: 875 left
	# after round 4). The runs that need a pre-copy that does not converge
	# say so with a threshold any rate of this guest exceeds.
	case $expect in not | postcopy) pcopt="$pcopt --converge-pages 16" ;; esac
	start_pair || return 1
	# Let it dirty its working set a few times over.
	wait_for 100 sh -c "[ \"\$(sed -n 's/.*dirty: pass \\([0-9]*\\),.*/\\1/p' '$dir/vm.log' | tail -n 1)\" -ge 1 ]"
	t0=$(date +%s%N)
	ns a env HA_RUN_DIR="$dir/a" "$bin/ha-protect" --tls-psk "$tmp/psk" --migrate $pcopt -i 50 \
		--timeout $(ms 300) kvm:web 10.66.0.2:7788 > "$dir/px.log" 2>&1
	rc=$?
	t1=$(date +%s%N)
	check "ha-protect --migrate exits 0 ($rc; $rate pages/ms over $ws)" test "$rc" -eq 0
	if [ "$expect" = any ]; then
		grep -a -o 'pre-copy \(converged\|does not converge\)[^:;]*' "$dir/px.log" | sed 's/^/     /'
	elif [ "$expect" = converge ]; then
		check "the pre-copy converged" grep -q 'pre-copy converged' "$dir/px.log"
	elif [ "$expect" = postcopy ]; then
		check "the postcopy completed on both sides" sh -c \
			"grep -q 'POSTCOPY complete' '$dir/px.log' && grep -q 'POSTCOPY complete' '$dir/rx.log'"
		grep -a -o 'POSTCOPY complete.*' "$dir/rx.log" | sed 's/^/     /'
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
	check "the guest's memory check is clean on A and B (no BAD page)" \
		sh -c "! grep -q 'dirty: BAD' '$dir/vm.log' '$dir/rx.log' && grep -q 'dirty: pass.* 0 bad' '$dir/rx.log'"
	grep -a 'dirty: BAD' "$dir/vm.log" "$dir/rx.log" | head -n 4 | sed 's/^/     /'
	mode=pre-copy
	[ "$expect" = postcopy ] && mode=postcopy
	echo "$rate $mode $(sed -n 's/.*MIGRATION complete: .*total \([0-9]*\) ms, downtime \([0-9]*\) ms.*/\1 \2/p' "$dir/px.log")" >> "$tmp/figures"
	echo "     $rate pages/ms over $ws pages: $(grep -a -o 'pre-copy done in [0-9]* ms' "$dir/px.log"); $(grep -a -o 'MIGRATION complete.*' "$dir/px.log"); ha-protect ran $(( (t1 - t0) / 1000000 )) ms"
	ns b sh -c 'kill $(pidof ha-vm) 2>/dev/null'
	wait $rxpid 2>/dev/null
	if [ "$fails" -ne 0 ]; then
		for f in px rx vm; do echo "--- $f.log"; tail -n 15 "$dir/$f.log"; done
	fi
}

# A postcopy whose link goes down once the destination runs the domain:
# its pages go raw (-u: the dirty guest's compress to almost nothing) and
# the push is slowed (netem, 8 Mbit/s: 47 MiB take a minute) from the last
# checkpoint on, so the link is surely cut midway.
run_cut() {
	rate=400 ws=12000 dir=$tmp/run-cut
	start_pair || return 1
	ns a env HA_RUN_DIR="$dir/a" "$bin/ha-protect" --tls-psk "$tmp/psk" --migrate --postcopy -u \
		-i 50 --timeout $(ms 300) kvm:web 10.66.0.2:7788 > "$dir/px.log" 2>&1 &
	pxpid=$!
	wait_for 120 grep -q 'are left out of the last checkpoint' "$dir/px.log" ||
		{ tail "$dir/px.log"; return 1; }
	ns a tc qdisc add dev a0 root netem rate 8mbit ||
		{ echo "FAIL cannot slow the link (tc netem)"; return 1; }
	wait_for 60 grep -q 'activated: the guest runs here' "$dir/rx.log" ||
		{ tail "$dir/rx.log"; return 1; }
	check "the domain runs on B before the postcopy ends" sh -c "! grep -q 'POSTCOPY complete' '$dir/rx.log'"
	ns a ip link set a0 down
	wait_for 30 sh -c "! kill -0 $pxpid 2>/dev/null"
	wait $pxpid
	rc=$?
	check "ha-protect fails the migration (exit $rc)" test "$rc" -ne 0
	check "the source says the postcopy failed, the domain suspended there" \
		grep -q 'POSTCOPY FAILED.*stays suspended' "$dir/px.log"
	check "A's VM is kept (suspended, never resumed)" kill -0 "$vmpid"
	wait_for 30 grep -q 'POSTCOPY FAILED' "$dir/rx.log"
	check "the destination says the postcopy failed" grep -q 'POSTCOPY FAILED' "$dir/rx.log"
	wait_for 30 sh -c "! pgrep -f '[h]a-vm run --incoming' >/dev/null"
	check "B's copy, never whole, is stopped" sh -c "! pgrep -f '[h]a-vm run --incoming' >/dev/null"
	wait_for 30 sh -c "! kill -0 $rxpid 2>/dev/null"
	check "ha-receive ends" sh -c "! kill -0 $rxpid 2>/dev/null"
	kill "$vmpid" "$rxpid" 2>/dev/null
	wait $rxpid 2>/dev/null
	if [ "$fails" -ne 0 ]; then
		for f in px rx vm; do echo "--- $f.log"; tail -n 25 "$dir/$f.log"; done
	fi
}

table() {
	echo "     pages/ms  mode      total ms  downtime ms (the same guest, one run)"
	while read -r r m t d; do
		printf '     %-9s %-9s %-9s %s\n' "$r" "$m" "${t:-?}" "${d:-?}"
	done < "$tmp/figures"
}
# For the figures (docs/operator-guide.md, "Postcopy"): MIGRATE_RATES="R
# ..." migrates the guest at each rate (pages per ms over 12000 pages)
# with pre-copy, then with postcopy, and prints the table; MIGRATE_ONLY=cut
# runs the cut postcopy alone.
if [ -n "${MIGRATE_RATES:-}" ]; then
	for r in $MIGRATE_RATES; do
		run_once "$r" 12000 any || fails=$((fails + 1))
		run_once "$r" 12000 postcopy || fails=$((fails + 1))
	done
	table
	[ "$fails" -eq 0 ]
	exit
fi
if [ "${MIGRATE_ONLY:-}" = cut ]; then
	run_cut || fails=$((fails + 1))
	[ "$fails" -eq 0 ]
	exit
fi
run_once 2 2000 converge || { echo "FAIL the run (2 pages/ms) did not start"; fails=$((fails + 1)); }
run_once 400 12000 not || { echo "FAIL the run (400 pages/ms) did not start"; fails=$((fails + 1)); }
run_once 400 12000 postcopy || { echo "FAIL the postcopy run (400 pages/ms) did not start"; fails=$((fails + 1)); }
table
run_cut || { echo "FAIL the cut postcopy run did not start"; fails=$((fails + 1)); }
[ "$fails" -eq 0 ]
