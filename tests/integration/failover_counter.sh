#!/bin/sh
# End to end: a counter guest on host A protected to host B; a client
# increments it continuously; host A is killed; the guest answers from B and
# no acknowledged increment is lost (one client, exactly-once ids: the value
# acknowledged for request N must be N). Repeated for several kill points,
# over TLS 1.3: with certificates (made by scripts/tls-gen.sh) and with a
# pre-shared key.
# needs: kvm (ha-vm guests; tests/run.sh runs it in the KVM lab where /dev/kvm is missing)
PREFIX=hae-
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/topology.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
tmp=$(mktemp -d)
trap 'ns_cleanup; rm -rf "$tmp"' EXIT
need_root
[ -w /dev/kvm ] || skip "/dev/kvm is missing: ha-vm cannot run here"
command -v iptables >/dev/null || skip "iptables is not installed"
command -v openssl >/dev/null || skip "openssl (to make certificates) is not installed"
gen="$(dirname "$0")/../../scripts/tls-gen.sh"
sh "$gen" ca "$tmp/pki" && sh "$gen" cert "$tmp/pki" hosta && sh "$gen" cert "$tmp/pki" hostb &&
	sh "$gen" psk "$tmp/psk" pair || { echo "FAIL cannot make TLS material"; exit 1; }

run_once() { # kill delay in seconds after protection starts, interval ms, cert|psk
	delay=$1 interval=$2 sec=$3 dir=$tmp/run-$1-$2
	mkdir -p "$dir"
	ns_cleanup
	topo_up
	if [ "$sec" = cert ]; then
		tls_a="--tls-cert $tmp/pki/hosta.pem --tls-key $tmp/pki/hosta.key --tls-ca $tmp/pki/ca.pem"
		tls_b="--tls-cert $tmp/pki/hostb.pem --tls-key $tmp/pki/hostb.key --tls-ca $tmp/pki/ca.pem"
	else
		tls_a="--tls-psk $tmp/psk" tls_b="--tls-psk $tmp/psk"
	fi
	# shellcheck disable=SC2086 # the TLS options are words
	ns b env HA_RUN_DIR="$dir/b" HA_VM_ARGS="--tap tapb" \
		"$bin/ha-receive" $tls_b --listen 10.66.0.2:7788 --timeout $(ms 150) \
		--notify-cmd "echo \$HA_EVENT \$HA_DOMAIN >> '$dir/b.events'" > "$dir/rx.log" 2>&1 &
	rxpid=$!
	# ha-protect's first connection must find B listening: a refused one
	# ends it (nothing ever worked).
	wait_for 20 grep -q 'listening on' "$dir/rx.log" || { cat "$dir/rx.log"; return 1; }
	ns a env HA_RUN_DIR="$dir/a" "$bin/ha-vm" run --name web --mem 32M --guest counter \
		--tap tapa --ip "$GUEST_IP/24" --mac "$GUEST_MAC" > "$dir/vm.log" 2>&1 &
	wait_for 10 test -S "$dir/a/ha-vm/web.sock" || { cat "$dir/vm.log"; return 1; }
	# shellcheck disable=SC2086
	ns a env HA_RUN_DIR="$dir/a" "$bin/ha-protect" $tls_a -i "$interval" --timeout $(ms 150) \
		--notify-cmd "echo \$HA_EVENT \$HA_DOMAIN >> '$dir/a.events'" \
		kvm:web 10.66.0.2:7788 > "$dir/px.log" 2>&1 &
	wait_for 20 grep -q "PROTECTED:" "$dir/px.log" || { cat "$dir/px.log" "$dir/rx.log"; return 1; }
	ns c "$bin/ha-client" counter "$GUEST_IP:7000" --name c1 --interval 2 --timeout 100 \
		--duration 300 > "$dir/acks" 2> "$dir/client.log" &
	client=$!
	# The kill point: the delay, counted from the guest's 11th answer (under
	# emulation answers come slowly at first).
	wait_for 20 sh -c "[ \$(wc -l < '$dir/acks') -gt 10 ]"
	mon_check a "$dir/a" kvm:web "$SCHEMA_PROTECT" \
		'.state == "protected" and .epochs > 0 and (.held_output_packets|type == "number") and (.held_output_bytes|type == "number")' \
		"ha-protect, protecting"
	mon_check b "$dir/b" web "$SCHEMA_RECEIVE" '.state == "protected" and .committed_epoch >= 0' \
		"ha-receive, protected"
	# Page by page: the checkpoint after `ha-ctl verify` carries a hash of
	# every page of A's guest, which B compares with its committed copy.
	ns a env HA_RUN_DIR="$dir/a" "$bin/ha-ctl" verify kvm:web > "$dir/verify.out" 2>&1
	check "ha-ctl verify is taken" grep -q '^ok:' "$dir/verify.out"
	wait_for 20 grep -q 'verify epoch' "$dir/rx.log"
	check "B's copy matches A's guest page by page (ha-ctl verify)" \
		grep -q 'verify epoch [0-9]*: [0-9]* pages compared, 0 differ, 0 not held here' "$dir/rx.log"
	sleep "$delay"
	before=$(wc -l < "$dir/acks")
	kill_host_a
	# The client runs on for a fixed time after the kill (under a sanitizer
	# the guest answers slowly, and the kill point moves late).
	sleep $((6 + 2 * TS))
	ip netns pids "${PREFIX}c" | xargs -r kill
	wait $client
	after=$(wc -l < "$dir/acks")
	echo "     kill after ${delay}s (interval ${interval} ms): $before acks before, $((after - before)) after"
	check "guest answered before the kill" test "$before" -gt 10
	check "guest answers from B after the kill" test "$after" -gt "$((before + 10))"
	check "no acknowledged increment lost (value == request id)" \
		awk '$2 != $3 { print "     lost: " $0; bad = 1 } END { exit bad }' "$dir/acks"
	check "the secondary failed over" grep -q "FAILOVER complete" "$dir/rx.log"
	check "the link was TLS 1.3 ($sec)" grep -q "TLS 1.3" "$dir/rx.log"
	wait_for 10 grep -q failover-complete "$dir/b.events"
	wait_for 10 sh -c "! kill -0 $rxpid 2>/dev/null"
	wait $rxpid
	rc=$?
	check "ha-receive exits 3: failed over ($rc)" test "$rc" -eq 3
	check "the hooks ran once per event, in order (A: protected; B: protected, primary-lost, failover-started, failover-complete)" \
		sh -c "printf 'protected kvm:web\n' | diff - '$dir/a.events' &&
			printf 'protected web\nprimary-lost web\nfailover-started web\nfailover-complete web\n' | diff - '$dir/b.events'"
	gap=$(awk 'NR > 1 && $5 - t > m { m = $5 - t } { t = $5 } END { print m + 0 }' "$dir/acks")
	echo "     longest silence the client saw (the failover): ${gap} ms (down timer 150 ms)"
	if [ "$fails" -ne 0 ]; then
		for f in px rx vm; do echo "--- $f.log"; tail -n 15 "$dir/$f.log"; done
	fi
}

# A run that could not even start counts as a failure.
for r in "1 20 cert" "3 50 psk" "2 100 psk"; do
	# shellcheck disable=SC2086 # the run's three words
	run_once $r || { echo "FAIL the run ($r) did not start"; fails=$((fails + 1)); }
done
[ "$fails" -eq 0 ]
