#!/bin/sh
# ha-witness with certificates, as an operator of several pairs runs it:
# --tls-peer admits only the pairs' hosts, --pair binds each lease to the
# hosts of its pair (a host of another pair under the same CA cannot renew
# it), and --state keeps holders and generations across a restart (the
# primary's renewal after the restart keeps its generation, so it does not
# count itself superseded). The clients are openssl s_client with each
# host's certificate, on the loopback of a namespace.
PREFIX=hawp$$-
. "$(dirname "$0")/lib.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
gen="$(dirname "$0")/../../scripts/tls-gen.sh"
tmp=$(mktemp -d)
trap 'ns_cleanup; rm -rf "$tmp"' EXIT
need_root
command -v openssl >/dev/null || skip "openssl (certificates, and the TLS client) is not installed"
ip netns add "${PREFIX}w"
ns w ip link set lo up
W=127.0.0.1:7812
pki=$tmp/pki
sh "$gen" ca "$pki" && for h in a b c w mallory; do sh "$gen" cert "$pki" "$h"; done ||
	{ echo "FAIL cannot make certificates"; exit 1; }

witness_up() {
	# Not through the ns function: $! must be ha-witness itself.
	ip netns exec "${PREFIX}w" "$bin/ha-witness" --listen "$W" --max-ttl 1000 -v \
		--tls-cert "$pki/w.pem" --tls-key "$pki/w.key" --tls-ca "$pki/ca.pem" \
		--tls-peer a,b,c --pair web=a,b --pair db=c --state "$tmp/w.state" \
		>> "$tmp/w.log" 2>&1 &
	wpid=$!
	wait_for 5 sh -c "grep -c 'witness on' '$tmp/w.log' | grep -q '^$1\$'"
	sleep 1.2 # the quiet time after a start (--max-ttl 1000)
}
# ask HOST REQUEST: the witness's answer to HOST's request.
ask() {
	printf '%s\n' "$2" | ns w timeout 10 openssl s_client -connect "$W" -tls1_3 -quiet \
		-cert "$pki/$1.pem" -key "$pki/$1.key" -CAfile "$pki/ca.pem" -verify_return_error \
		2>/dev/null | tr -d '\001'
}

witness_up 1 || { echo "FAIL ha-witness did not start"; cat "$tmp/w.log"; exit 1; }
ask a "LEASE web primary 1000" > "$tmp/r1"
check "a host of the pair gets its lease" grep -q "^GRANTED " "$tmp/r1"
g1=$(awk '{print $2}' "$tmp/r1")
ask c "LEASE web primary 1000" > "$tmp/r2"
check "a host of another pair under the same CA may not renew it" \
	grep -q "^ERROR this host may not ask for that pair" "$tmp/r2"
ask c "LEASE web secondary 1000" > "$tmp/r3"
check "nor take it over as the secondary" grep -q "^ERROR " "$tmp/r3"
ask c "LEASE db primary 1000" > "$tmp/r4"
check "it gets its own pair's" grep -q "^GRANTED " "$tmp/r4"
ask a "LEASE other primary 1000" > "$tmp/r5"
check "a pair the witness was not given is refused" grep -q "^ERROR " "$tmp/r5"
ask mallory "LEASE web primary 1000" > "$tmp/r6"
check "a certificate of the CA for another name is refused in the handshake" \
	sh -c "! grep -q GRANTED '$tmp/r6' && grep -q 'none of the names in --tls-peer' '$tmp/w.log'"

# A restart: the primary renews under the same generation; the state file
# is private to the witness.
kill -9 "$wpid"
wait "$wpid" 2>/dev/null
witness_up 2 || { echo "FAIL ha-witness did not restart"; cat "$tmp/w.log"; exit 1; }
ask a "LEASE web primary 1000" > "$tmp/r7"
check "after a restart the primary keeps its generation ($g1)" grep -q "^GRANTED $g1 " "$tmp/r7"
check "the state file is mode 0600" sh -c "stat -c %a '$tmp/w.state' | grep -qx 600"
printf 'ha-witness-state 1\nweb primary zz\n' > "$tmp/w.state"
kill -9 "$wpid"
wait "$wpid" 2>/dev/null
ip netns exec "${PREFIX}w" timeout 10 "$bin/ha-witness" --listen "$W" --insecure --state "$tmp/w.state" \
	> "$tmp/bad.log" 2>&1
rc=$?
check "a damaged state file stops it at start, naming the line" \
	sh -c "test $rc -eq 1 && grep -q 'w.state, line 2' '$tmp/bad.log'"
ip netns exec "${PREFIX}w" "$bin/ha-witness" --listen "$W" --insecure > "$tmp/nostate.log" 2>&1
rc=$?
check "no --state is a usage error" sh -c "test $rc -eq 2 && grep -q -- '--state FILE is required' '$tmp/nostate.log'"
[ "$fails" -eq 0 ] || { echo "--- w.log"; tail -n 20 "$tmp/w.log"; }
[ "$fails" -eq 0 ]
