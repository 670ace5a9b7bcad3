#!/bin/sh
# Split brain: hosts A and B lose each other while both live and clients
# can still reach them. The test counts the copies of the guest that
# answer clients afterwards:
#   unsafe   no fencing: ha-receive warns at start; after the partition
#            both copies answer (the documented unsafe behaviour)
#   fence    --fence-cmd "powers off" host A (kills every process in it)
#            before B activates: one copy, no acknowledged increment lost
#   fence-fails  the fence command fails: B stays passive, A serves
#   witness  A and B both reach ha-witness: A keeps the lease and claims
#            that it runs alone, B does not activate and discards its
#            copy; A serves
#   witness-isolated  A is cut off from B and the witness: A pauses the
#            guest before B gets the lease and activates; when the
#            partition heals, A learns it was superseded and stays paused
#   witness-blind  as witness-isolated, but A never reached the witness
#            before: B activates once the witness grants it the lease;
#            after the heal A cannot know whether B took over, and its
#            copy stays paused for good
#   witness-stop  A is stopped (ha-ctl stop) just after it lost B: its END
#            is not confirmed, so it claims "alone" with the witness
#            before it releases held output; B's copy is stale and never
#            activates; A's copy serves on, unprotected
#   witness-vmm-dies  A's ha-vm is killed: A's ha-protect stops (the
#            domain is gone; it claims nothing), its lease runs out and B
#            activates
#   witness-alone  A loses B first and runs on alone (it tells the
#            witness before it releases output), then loses the witness
#            too and pauses; B, which noticed late, must not activate its
#            copy, which lacks what A served alone: no copy serves, and no
#            acknowledged increment is lost
# A client in namespace c reaches whichever copy the switch points to; a
# probe inside namespace a reaches A's copy through A's own bridge.
# The partition is an ebtables DROP between the switch ports of A and B
# (or all of A's), so the client network stays up. The link is TLS (PSK).
# needs: kvm (ha-vm guests; tests/run.sh runs it in the KVM lab where /dev/kvm is missing)
PREFIX=hasb$$-
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/topology.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
tmp=$(mktemp -d)
# SB_KEEP=1 keeps the logs.
trap 'ns_cleanup; [ -n "${SB_KEEP:-}" ] && echo "logs in $tmp" || rm -rf "$tmp"' EXIT
need_root
[ -w /dev/kvm ] || skip "/dev/kvm is missing: ha-vm cannot run here"
command -v ebtables >/dev/null || skip "ebtables is not installed (the partition)"
command -v openssl >/dev/null || skip "openssl (to make the PSK) is not installed"
sh "$(dirname "$0")/../../scripts/tls-gen.sh" psk "$tmp/psk" pair ||
	{ echo "FAIL cannot make a PSK"; exit 1; }
WITNESS=$WITNESS_IP:7790

witness_up() {
	topo_witness_host
	ns w "$bin/ha-witness" --tls-psk "$tmp/psk" --listen "$WITNESS" --max-ttl $(ms 1000) \
		--state "$dir/wit.state" \
		> "$dir/wit.log" 2>&1 &
}

# A and B cannot exchange frames; everyone else still reaches both.
partition_ab() {
	ns sw ebtables -A FORWARD -i sw-a -o sw-b -j DROP
	ns sw ebtables -A FORWARD -i sw-b -o sw-a -j DROP
}
# A reaches nobody (but its own bridge, where the probe sits).
isolate_a() {
	ns sw ebtables -A FORWARD -i sw-a -j DROP
	ns sw ebtables -A FORWARD -o sw-a -j DROP
}
# A reaches the witness again; the A-B partition rules, older, stay. No
# flush and re-add: A retries B every second and would get through the gap.
unisolate_a() {
	ns sw ebtables -D FORWARD -i sw-a -j DROP
	ns sw ebtables -D FORWARD -o sw-a -j DROP
}

# start NAME "ha-receive options" "ha-protect options" [COMMAND]
# COMMAND runs once the network is up, before ha-protect starts.
start() {
	dir=$tmp/$1
	mkdir -p "$dir"
	ns_cleanup
	topo_up
	witness_up
	${4:-true}
	# shellcheck disable=SC2086 # option lists are words
	ns b env HA_RUN_DIR="$dir/b" HA_VM_ARGS="--tap tapb" "$bin/ha-receive" \
		--tls-psk "$tmp/psk" --listen 10.66.0.2:7788 --timeout $(ms 150) $2 \
		--notify-cmd "echo \$HA_EVENT >> '$dir/b.events'" > "$dir/rx.log" 2>&1 &
	ns a env HA_RUN_DIR="$dir/a" "$bin/ha-vm" run --name web --mem 32M --guest counter \
		--tap tapa --ip "$GUEST_IP/24" --mac "$GUEST_MAC" > "$dir/vm.log" 2>&1 &
	wait_for 10 test -S "$dir/a/ha-vm/web.sock" ||
		{ echo "FAIL $1: ha-vm on A did not start"; tail "$dir/vm.log"; return 1; }
	# shellcheck disable=SC2086
	ns a env HA_RUN_DIR="$dir/a" "$bin/ha-protect" --tls-psk "$tmp/psk" -i 50 $3 \
		--notify-cmd "echo \$HA_EVENT >> '$dir/a.events'" \
		kvm:web 10.66.0.2:7788 > "$dir/px.log" 2>&1 &
	pxpid=$!
	wait_for 20 grep -q "PROTECTED:" "$dir/px.log" ||
		{ echo "FAIL $1: A never reached PROTECTED"; tail "$dir/px.log" "$dir/rx.log"; return 1; }
	ns c "$bin/ha-client" counter "$GUEST_IP:7000" --name c1 --interval 10 --timeout 100 \
		--duration 14 > "$dir/c1.acks" 2> /dev/null &
	client=$!
	sleep 1.5
	ns a env HA_RUN_DIR="$dir/a" "$bin/ha-ctl" status kvm:web > "$dir/a.status" 2>&1
	ns b env HA_RUN_DIR="$dir/b" "$bin/ha-ctl" status web > "$dir/b.status" 2>&1
}

# probe NAMESPACE NAME: answers a fresh client gets in 2 s there.
probe() {
	ns "$1" "$bin/ha-client" counter "$GUEST_IP:7000" --name "$2" --interval 20 --timeout 100 \
		--duration 2 > "$dir/$2.acks" 2> /dev/null
	wc -l < "$dir/$2.acks"
}

# Answers to the first client, up to now, whose value is not their
# request id (increments lost, or served by two copies). The guest's
# counter is shared, so this is counted before the probes add to it.
c1_mismatches() {
	sleep 1
	head -n "$(wc -l < "$dir/c1.acks")" "$dir/c1.acks" |
		awk '$2 != $3 { n++ } END { print n + 0 " of " NR }'
}

# a_witness TEXT: A's ha-ctl status says "witness: TEXT...".
a_witness() {
	ip netns exec "${PREFIX}a" env HA_RUN_DIR="$dir/a" "$bin/ha-ctl" status kvm:web 2>/dev/null |
		grep -q "witness: $1"
}
# a_stays_paused: A's copy is paused and never ran again.
a_stays_paused() {
	ip netns exec "${PREFIX}a" env HA_RUN_DIR="$dir/a" "$bin/ha-vm" list | grep -q '^web .* paused' &&
		! grep -q 'runs again' "$dir/px.log"
}

# Timestamp of the first log line matching a pattern.
stamp() {
	grep -m1 "$2" "$1" | cut -d' ' -f1
}
# earlier T1 T2: the ISO timestamp T1 is before T2.
earlier() {
	[ -n "$1" ] && [ -n "$2" ] && [ "$1" != "$2" ] &&
		[ "$(printf '%s\n%s\n' "$1" "$2" | sort | head -n 1)" = "$1" ]
}

finish() {
	# The client itself: killing the shell that waits for it would run
	# this script's traps in that shell.
	ip netns pids "${PREFIX}c" | xargs -r kill 2>/dev/null
	wait "$client" 2>/dev/null
	if [ "$fails" -ne "${fails_before:-0}" ]; then
		for f in px rx wit; do echo "--- $1 $f.log"; tail -n 20 "$dir/$f.log"; done
	fi
	fails_before=$fails
}

# SB_ONLY=NAME runs one scenario (for debugging).
want() { [ -z "${SB_ONLY:-}" ] || [ "$SB_ONLY" = "$1" ]; }

if want unsafe; then
echo "# unsafe: no fencing, no witness"
start unsafe "" "--timeout $(ms 150)" || exit 1
check "ha-receive says at start that a partition is unsafe" grep -q "UNSAFE: no fencing" "$dir/rx.log"
partition_ab
wait_for 10 grep -q "FAILOVER complete" "$dir/rx.log"
check "B activated its copy" grep -q "FAILOVER complete" "$dir/rx.log"
bad=$(c1_mismatches)
na=$(probe a pa) nc=$(probe c pc)
echo "     after the partition: A's copy answered $na, the client side got $nc answers"
check "two copies serve clients (the unsafe behaviour)" test "$na" -gt 0 -a "$nc" -gt 0
echo "     the first client got $bad answers whose value is not their request id"
finish unsafe
fi

if want fence; then
echo "# fence: --fence-cmd powers host A off"
start fence "--fence-cmd $tmp/fence.sh --fence-timeout $(ms 5000)" "--timeout $(ms 1500)" || exit 1
cat > "$tmp/fence.sh" <<EOF
#!/bin/sh
echo "power off host \$HA_PEER_HOST (primary of \$HA_DOMAIN, committed epoch \$HA_EPOCH)"
ip netns pids ${PREFIX}a | xargs -r kill -9
EOF
chmod +x "$tmp/fence.sh"
check "ha-receive says activation waits for the fence" grep -q "activation waits for" "$dir/rx.log"
partition_ab
wait_for 10 grep -q "FAILOVER complete" "$dir/rx.log"
check "B fenced A, then activated" sh -c "grep -q 'is fenced' '$dir/rx.log' && grep -q 'FAILOVER complete' '$dir/rx.log'"
check "the fence command's output is logged" grep -q "fence: power off host 10.66.0.1" "$dir/rx.log"
check "no process is left on host A" test -z "$(ip netns pids ${PREFIX}a)"
bad=$(c1_mismatches)
check "no acknowledged increment lost (value == request id; $bad wrong)" test "${bad%% *}" -eq 0
na=$(probe a pa) nc=$(probe c pc)
echo "     after the partition: A's copy answered $na, the client side got $nc answers"
check "exactly one copy serves" test "$na" -eq 0 -a "$nc" -gt 0
finish fence
fi

if want fence-fails; then
echo "# fence-fails: the fence command fails"
printf '#!/bin/sh\necho IPMI unreachable\nexit 1\n' > "$tmp/fence-fails.sh"
chmod +x "$tmp/fence-fails.sh"
start fence-fails "--fence-cmd $tmp/fence-fails.sh --fence-retry $(ms 500)" "--timeout $(ms 150)" || exit 1
partition_ab
wait_for 10 grep -q "fencing the primary .* failed" "$dir/rx.log"
# The next attempt comes --fence-retry (scaled) after the first failure.
wait_for 10 sh -c "test \$(grep -c 'fencing the primary .* (attempt' '$dir/rx.log') -ge 2"
check "the failure is logged with the command's output" sh -c "grep -q 'fence: IPMI unreachable' '$dir/rx.log' && grep -q 'NOT activating' '$dir/rx.log'"
check "B keeps retrying and does not activate" sh -c "test \$(grep -c 'fencing the primary .* (attempt' '$dir/rx.log') -ge 2 && ! grep -q 'FAILOVER:' '$dir/rx.log'"
ns b env HA_RUN_DIR="$dir/b" "$bin/ha-ctl" status web > "$dir/st" 2>&1
check "ha-ctl status shows it fencing" grep -q "state: fencing the primary (not active)" "$dir/st"
mon_check b "$dir/b" web "$SCHEMA_RECEIVE" \
	'.state == "fencing" and .fencing.command and .fencing.attempts >= 2 and (.fencing.result|test("exited 1"))' \
	"ha-receive, fencing (a failover waiting for its fence)"
check "its metrics say fencing" grep -qx 'ha_receive_state{domain="web",state="fencing"} 1' "$dir/b/metrics.prom"
check "B's hook heard: protected, primary-lost, then fence-failed at each attempt" \
	sh -c "head -n 3 '$dir/b.events' | tr '\n' ' ' | grep -qx 'protected primary-lost fence-failed ' && ! grep -q failover-started '$dir/b.events'"
na=$(probe a pa)
echo "     after the partition: A's copy answered $na"
check "A's copy is the one that serves" test "$na" -gt 0
ns b env HA_RUN_DIR="$dir/b" "$bin/ha-ctl" stop web > /dev/null 2>&1
wait_for 5 grep -q "stop requested while fencing" "$dir/rx.log"
check "a stop while fencing leaves B's copy inactive" grep -q "stop requested while fencing" "$dir/rx.log"
finish fence-fails
fi

if want witness; then
echo "# witness: A and B lose each other, both reach the witness"
start witness "--witness $WITNESS --witness-ttl $(ms 1000)" "--witness $WITNESS --witness-ttl $(ms 1000) --timeout $(ms 150)" || exit 1
wait_for 5 a_witness 'lease held'
check "the primary holds the lease" a_witness 'lease held'
partition_ab
# B stands down: it sees A renew its lease, or the witness tells it that A
# runs without it (whichever B learns first).
standdown="still renews its lease\|ran without this secondary"
wait_for 10 grep -q "$standdown" "$dir/rx.log"
check "B learns that A serves and does not activate" sh -c "grep -q '$standdown' '$dir/rx.log' && ! grep -q 'FAILOVER:' '$dir/rx.log'"
check "A runs degraded under its lease, not paused" sh -c "grep -q DEGRADED '$dir/px.log' && ! grep -q PAUSED '$dir/px.log'"
bad=$(c1_mismatches)
check "the client's answers all come from one copy (value == request id; $bad wrong)" test "${bad%% *}" -eq 0
na=$(probe a pa) nc=$(probe c pc)
echo "     after the partition: A's copy answered $na, the client side got $nc answers"
check "one copy (A's) serves" test "$na" -gt 0 -a "$nc" -gt 0
finish witness
fi

if want witness-isolated; then
echo "# witness-isolated: A loses B and the witness"
start witness-isolated "--witness $WITNESS --witness-ttl $(ms 1000)" "--witness $WITNESS --witness-ttl $(ms 1000) --timeout $(ms 150)" || exit 1
# A restarted witness grants nothing for --max-ttl: wait until A holds it
# (witness-blind is the case where it never did).
wait_for 10 a_witness 'lease held'
check "A holds the lease" a_witness 'lease held'
isolate_a
wait_for 10 grep -q "FAILOVER complete" "$dir/rx.log"
check "B got the lease and activated" sh -c "grep -q 'witness granted the lease' '$dir/rx.log' && grep -q 'FAILOVER complete' '$dir/rx.log'"
check "A paused its guest" grep -q "PAUSED" "$dir/px.log"
tp=$(stamp "$dir/px.log" PAUSED) tf=$(stamp "$dir/rx.log" "FAILOVER:")
echo "     A paused at $tp, B activated at $tf"
check "A paused before B activated" earlier "$tp" "$tf"
bad=$(c1_mismatches)
check "no acknowledged increment lost (value == request id; $bad wrong)" test "${bad%% *}" -eq 0
na=$(probe a pa) nc=$(probe c pc)
echo "     after the partition: A's copy answered $na, the client side got $nc answers"
check "exactly one copy (B's) serves" test "$na" -eq 0 -a "$nc" -gt 0
# The partition heals: A reaches the witness again, learns that the
# secondary held the lease meanwhile, and keeps its copy paused.
ns sw ebtables -F FORWARD
wait_for 10 a_witness 'SUPERSEDED'
check "after the partition heals A knows it was superseded" a_witness 'SUPERSEDED'
sleep 1
check "and its copy stays paused" a_stays_paused
check "A's hook heard: protected, degraded, lease-lost, superseded, once each" \
	sh -c "printf 'protected\ndegraded\nlease-lost\nsuperseded\n' | diff - '$dir/a.events'"
check "B's hook heard: protected, primary-lost, failover-started, failover-complete" \
	sh -c "printf 'protected\nprimary-lost\nfailover-started\nfailover-complete\n' | diff - '$dir/b.events'"
finish witness-isolated
fi

if want witness-blind; then
echo "# witness-blind: A loses B and the witness before it ever held the lease"
# A cannot reach the witness from the start; it needs no lease while
# protected, so it protects as usual.
start witness-blind "--witness $WITNESS --witness-ttl $(ms 1000)" \
	"--witness $WITNESS --witness-ttl $(ms 1000) --timeout $(ms 150)" \
	"ns sw ebtables -A FORWARD -i sw-a -o sw-w -j DROP" || exit 1
check "A protects without a lease" a_witness 'no lease'
isolate_a
wait_for 10 grep -q "FAILOVER complete" "$dir/rx.log"
check "B got the lease and activated" sh -c "grep -q 'witness granted the lease' '$dir/rx.log' && grep -q 'FAILOVER complete' '$dir/rx.log'"
wait_for 10 grep -q "PAUSED" "$dir/px.log"
check "A paused its guest and held its output" grep -q "PAUSED" "$dir/px.log"
bad=$(c1_mismatches)
check "no acknowledged increment lost (value == request id; $bad wrong)" test "${bad%% *}" -eq 0
na=$(probe a pa) nc=$(probe c pc)
echo "     after the partition: A's copy answered $na, the client side got $nc answers"
check "exactly one copy (B's) serves" test "$na" -eq 0 -a "$nc" -gt 0
# The partition heals: whether the witness still shows B's lease or B's
# lease ran out (B does not renew it once active), A cannot know that B
# did not take over while A held no lease, so its copy must never run.
ns sw ebtables -F FORWARD
wait_for 10 a_witness 'SUPERSEDED'
check "after the partition heals A counts its copy superseded" a_witness 'SUPERSEDED'
# Past the end of B's lease, when the witness would grant A a new one.
sleep "$(ms 1000 | awk '{ print $1 / 1000 + 1 }')"
still_superseded() { a_witness SUPERSEDED && a_stays_paused; }
check "and its copy stays paused, also once B's lease ran out" still_superseded
finish witness-blind
fi

if want witness-alone; then
echo "# witness-alone: A runs without B, then loses the witness; B notices late"
# B's down timer (3 s) outlasts A's (150 ms) and A's lease (1 s).
start witness-alone "--witness $WITNESS --witness-ttl $(ms 1000) --timeout $(ms 3000)" \
	"--witness $WITNESS --witness-ttl $(ms 1000) --timeout $(ms 150)" || exit 1
# A must hold the lease when it loses B, or it pauses for good (witness-blind).
wait_for 10 a_witness 'lease held'
partition_ab
wait_for 5 grep -q "DEGRADED" "$dir/px.log"
sleep 1 # A serves alone; the client sees values that B's copy lacks
isolate_a
check "A claimed with the witness that it runs without B" grep -q "took the claim" "$dir/px.log"
wait_for 10 grep -q "ran without this secondary" "$dir/rx.log"
sleep 1
check "B is told its copy is stale and does not activate" \
	sh -c "grep -q 'ran without this secondary' '$dir/rx.log' && ! grep -q 'FAILOVER:' '$dir/rx.log'"
check "A paused once it lost the lease" grep -q "is PAUSED" "$dir/px.log"
bad=$(c1_mismatches)
check "no acknowledged increment lost (value == request id; $bad wrong)" test "${bad%% *}" -eq 0
nc=$(probe c pc)
echo "     after A lost the witness: the client side got $nc answers"
check "no copy serves (A paused, B discarded its stale copy)" test "$nc" -eq 0
check "B's hook heard: protected, primary-lost, failover-refused" \
	sh -c "printf 'protected\nprimary-lost\nfailover-refused\n' | diff - '$dir/b.events'"
# A reaches the witness again (B still cut off): B never held the lease,
# so A gets it back and runs on, unprotected.
unisolate_a
wait_for 15 grep -q "lease is back" "$dir/px.log"
check "A's lease comes back and its copy runs again" grep -q "lease is back" "$dir/px.log"
check "A's hook heard: protected, degraded, lease-lost, lease-back" \
	sh -c "printf 'protected\ndegraded\nlease-lost\nlease-back\n' | diff - '$dir/a.events'"
finish witness-alone
fi

if want witness-stop; then
echo "# witness-stop: A is told to stop just after it lost B"
start witness-stop "--witness $WITNESS --witness-ttl $(ms 1000)" \
	"--witness $WITNESS --witness-ttl $(ms 1000) --timeout $(ms 150)" || exit 1
wait_for 10 a_witness 'lease held'
partition_ab
ns a env HA_RUN_DIR="$dir/a" "$bin/ha-ctl" stop kvm:web > /dev/null 2>&1
wait_for 10 grep -q "stopped after" "$dir/px.log"
wait_for 10 grep -q "ran without this secondary\|FAILOVER:" "$dir/rx.log"
sleep "$(ms 1000 | awk '{ print $1 / 1000 + 1 }')" # past A's last lease
check "A's END is not confirmed (B cannot hear it)" grep -q "END not confirmed" "$dir/px.log"
check "A claimed with the witness that it runs without B before releasing" grep -q "took the claim" "$dir/px.log"
check "B is told its copy is stale and does not activate" \
	sh -c "grep -q 'ran without this secondary' '$dir/rx.log' && ! grep -q 'FAILOVER:' '$dir/rx.log'"
bad=$(c1_mismatches)
check "no acknowledged increment lost (value == request id; $bad wrong)" test "${bad%% *}" -eq 0
na=$(probe a pa) nc=$(probe c pc)
echo "     after the stop: A's copy answered $na, the client side got $nc answers"
check "one copy (A's, unprotected) serves" test "$na" -gt 0
finish witness-stop
fi

if want witness-vmm-dies; then
echo "# witness-vmm-dies: A's ha-vm dies"
start witness-vmm-dies "--witness $WITNESS --witness-ttl $(ms 1000)" \
	"--witness $WITNESS --witness-ttl $(ms 1000) --timeout $(ms 150)" || exit 1
for p in $(ip netns pids "${PREFIX}a"); do
	[ "$(cat "/proc/$p/comm" 2>/dev/null)" = ha-vm ] && kill -9 "$p"
done
wait_for 10 grep -q "FAILOVER complete" "$dir/rx.log"
# A and B notice on their own clocks: B may activate before A has logged
# that its domain is gone.
wait_for 10 grep -q "protected domain is gone" "$dir/px.log"
check "A's ha-protect stops: the domain is gone" grep -q "protected domain is gone" "$dir/px.log"
wait $pxpid
rc=$?
check "and exits 3, saying so to its supervisor ($rc)" test "$rc" -eq 3
check "A does not claim to run alone" sh -c "! grep -q 'took the claim' '$dir/px.log'"
check "B got the lease and activated" sh -c "grep -q 'witness granted the lease' '$dir/rx.log' && grep -q 'FAILOVER complete' '$dir/rx.log'"
bad=$(c1_mismatches)
check "no acknowledged increment lost (value == request id; $bad wrong)" test "${bad%% *}" -eq 0
finish witness-vmm-dies
fi

[ "$fails" -eq 0 ]
