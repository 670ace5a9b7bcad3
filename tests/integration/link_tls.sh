#!/bin/sh
# The link's security, end to end with the real programs in a network
# namespace of its own: no TLS setting is a usage error; ha-receive refuses
# a plain primary, a wrong PSK, a certificate from another CA and garbage,
# each with a clear message and without dying; the right PSK and the right
# certificates protect the domain; ha-witness refuses another PSK too. A
# pair file configures both ends, and a SIGHUP reloads the PSK file and
# the log level without stopping either.
# needs: kvm (ha-vm guests; tests/run.sh runs it in the KVM lab where /dev/kvm is missing)
PREFIX=halt-
. "$(dirname "$0")/lib.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
gen="$(dirname "$0")/../../scripts/tls-gen.sh"
tmp=$(mktemp -d)
trap 'ns_cleanup; [ -n "${LT_KEEP:-}" ] && echo "logs in $tmp" || rm -rf "$tmp"' EXIT
need_root
[ -w /dev/kvm ] || skip "/dev/kvm is missing: ha-vm cannot run here"
command -v openssl >/dev/null || skip "openssl (to make certificates) is not installed"
command -v bash >/dev/null || skip "bash is needed for /dev/tcp"
ip netns add "${PREFIX}h"
ns h ip link set lo up
export HA_RUN_DIR="$tmp/run"

sh "$gen" ca "$tmp/pki" && sh "$gen" cert "$tmp/pki" a && sh "$gen" cert "$tmp/pki" b &&
	mkdir "$tmp/other" && sh "$gen" ca "$tmp/other" && sh "$gen" cert "$tmp/other" a &&
	sh "$gen" psk "$tmp/psk" pair && sh "$gen" psk "$tmp/psk2" pair ||
	{ echo "FAIL cannot make TLS material"; exit 1; }

"$bin/ha-receive" --listen 127.0.0.1:7800 > "$tmp/u1" 2>&1
rc=$?
check "ha-receive without TLS settings or --insecure: usage error naming both" \
	sh -c "test $rc -eq 2 && grep -q -- '--tls-psk' '$tmp/u1' && grep -q -- '--insecure' '$tmp/u1'"
"$bin/ha-protect" kvm:x 127.0.0.1:7800 > "$tmp/u2" 2>&1
rc=$?
check "ha-protect likewise" sh -c "test $rc -eq 2 && grep -q -- '--insecure' '$tmp/u2'"
"$bin/ha-receive" --insecure --tls-psk "$tmp/psk" --listen 127.0.0.1:7800 > "$tmp/u3" 2>&1
rc=$?
check "--insecure with --tls-* is refused" test $rc -eq 2
"$bin/ha-receive" --tls-cert "$tmp/pki/b.pem" --listen 127.0.0.1:7800 > "$tmp/u4" 2>&1
check "certificates without key and CA are refused" grep -q -- "--tls-key" "$tmp/u4"

ns h "$bin/ha-vm" run --name web --mem 16M --guest counter > "$tmp/vm.log" 2>&1 &
wait_for 10 test -S "$HA_RUN_DIR/ha-vm/web.sock" || { cat "$tmp/vm.log"; exit 1; }

# rx LOG OPTIONS...: ha-receive on 127.0.0.1:7800 in the namespace.
rx() {
	log=$1
	shift
	ns h env HA_RUN_DIR="$tmp/rx" "$bin/ha-receive" "$@" --listen 127.0.0.1:7800 --timeout $(ms 300) \
		> "$log" 2>&1 &
	wait_for 5 grep -q listening "$log"
}
rx_alive() { ip netns pids "${PREFIX}h" | xargs -r ps -o comm= -p | grep -q ha-receive; }
rx_stop() {
	for p in $(ip netns pids "${PREFIX}h"); do
		[ "$(ps -o comm= -p "$p")" = ha-receive ] && kill "$p"
	done
	wait_for 5 sh -c "! ip netns pids ${PREFIX}h | xargs -r ps -o comm= -p | grep -q ha-receive"
}
# px LOG OPTIONS...: one ha-protect attempt, bounded.
px() {
	log=$1
	shift
	ns h timeout 10 "$bin/ha-protect" "$@" --max-epochs 20 -i 20 \
		kvm:web 127.0.0.1:7800 > "$log" 2>&1
}

rx "$tmp/rx1.log" --tls-psk "$tmp/psk"
px "$tmp/p1.log" --insecure
check "a plain primary is refused: the receiver says it does not speak TLS" \
	grep -q "does not speak TLS 1.3" "$tmp/rx1.log"
check "and the plain primary is told the secondary may want TLS" sh -c "! grep -q PROTECTED: '$tmp/p1.log' && grep -q 'wants TLS' '$tmp/p1.log'"
px "$tmp/p2.log" --tls-psk "$tmp/psk2"
check "a wrong PSK is refused, the receiver says so" grep -q "pre-shared key does not match" "$tmp/rx1.log"
check "and the primary is told to check the PSK" grep -q "same identity and key" "$tmp/p2.log"
ns h bash -c "exec 3<>/dev/tcp/127.0.0.1/7800; head -c 65536 /dev/urandom >&3; exec 3>&-"
wait_for 5 sh -c "test \$(grep -c 'refusing the connection' '$tmp/rx1.log') -ge 3"
check "garbage is refused too" sh -c "test \$(grep -c 'refusing the connection' '$tmp/rx1.log') -ge 3"
check "ha-receive survived all of it" rx_alive
px "$tmp/p3.log" --tls-psk "$tmp/psk"
check "the right PSK protects the domain over TLS 1.3" \
	sh -c "grep -q 'PROTECTED:' '$tmp/p3.log' && grep -q 'link to 127.0.0.1:7800: TLS 1.3' '$tmp/p3.log'"
rx_stop

rx "$tmp/rx2.log" --tls-cert "$tmp/pki/b.pem" --tls-key "$tmp/pki/b.key" --tls-ca "$tmp/pki/ca.pem"
px "$tmp/p4.log" --tls-cert "$tmp/other/a.pem" --tls-key "$tmp/other/a.key" --tls-ca "$tmp/pki/ca.pem"
check "a certificate from another CA is refused, naming the cause" \
	grep -q "certificate was rejected.*issuer is unknown" "$tmp/rx2.log"
check "and the primary learns it was refused" grep -q "refused" "$tmp/p4.log"
px "$tmp/p5.log" --tls-cert "$tmp/pki/a.pem" --tls-key "$tmp/pki/a.key" --tls-ca "$tmp/other/ca.pem"
check "a primary that does not trust the receiver's CA refuses it" \
	grep -q "certificate was rejected" "$tmp/p5.log"
px "$tmp/p6.log" --tls-cert "$tmp/pki/a.pem" --tls-key "$tmp/pki/a.key" --tls-ca "$tmp/pki/ca.pem"
check "the right certificates protect the domain (peer named)" \
	sh -c "grep -q 'PROTECTED:' '$tmp/p6.log' && grep -q 'peer CN=b' '$tmp/p6.log'"
check "ha-receive survived" rx_alive
rx_stop

ns h "$bin/ha-witness" --tls-psk "$tmp/psk" --listen 127.0.0.1:7801 --max-ttl $(ms 1000) \
	--state "$tmp/w.state" \
	> "$tmp/w.log" 2>&1 &
wait_for 5 grep -q "witness on" "$tmp/w.log"
rx "$tmp/rx3.log" --tls-psk "$tmp/psk2"
px "$tmp/p7.log" --tls-psk "$tmp/psk2" --witness 127.0.0.1:7801
check "ha-witness refuses a pair with another PSK" grep -q "refusing .*pre-shared key does not match" "$tmp/w.log"
check "and the primary says it has no lease" grep -q "witness: .*refused the handshake" "$tmp/p7.log"
rx_stop

# Both ends from one pair file; a SIGHUP reloads the PSK file and the log
# level and stops nothing.
pair_conf "$tmp/pair.conf" 7802 "$tmp/psk"
ns h env HA_RUN_DIR="$tmp/rx" HA_STATE_DIR="$tmp/state-b" "$bin/ha-receive" --config "$tmp/pair.conf" --host b \
	> "$tmp/rx4.log" 2>&1 &
wait_for 5 grep -q "listening on 127.0.0.1:7802" "$tmp/rx4.log"
ns h env HA_STATE_DIR="$tmp/state-a" "$bin/ha-protect" --config "$tmp/pair.conf" --host a \
	> "$tmp/p8.log" 2>&1 &
wait_for 20 grep -q "PROTECTED:" "$tmp/p8.log"
check "a pair file gives both ends their domain, addresses and TLS" \
	sh -c "grep -q 'PROTECTED: checkpointing every 20 ms to 127.0.0.1:7802' '$tmp/p8.log' &&
		grep -q 'this host is b, its peer a' '$tmp/rx4.log'"
sh "$gen" psk "$tmp/psk.new" pair && cp "$tmp/psk.new" "$tmp/psk" # rotated in place
printf '[common]\nlog-level = debug\n' >> "$tmp/pair.conf"
hup_pair() {
	for p in $(ip netns pids "${PREFIX}h"); do
		case $(ps -o comm= -p "$p") in ha-receive | ha-protect) kill -HUP "$p" ;; esac
	done
}
px_alive() { ip netns pids "${PREFIX}h" | xargs -r ps -o comm= -p | grep -q ha-protect; }
hup_pair
wait_for 5 grep -q "reload: log level debug" "$tmp/rx4.log"
wait_for 5 grep -q "reload: log level debug" "$tmp/p8.log"
check "SIGHUP: both read the PSK file again" \
	sh -c "grep -q \"reload: the link's TLS credentials read again\" '$tmp/rx4.log' &&
		grep -q \"reload: the link's TLS credentials read again\" '$tmp/p8.log'"
check "and take the pair file's new log level" \
	sh -c "grep -q 'reload: log level debug' '$tmp/rx4.log' &&
		grep -q 'reload: log level debug' '$tmp/p8.log'"
sleep 1
check "and the pair stays up: ha-protect alive" px_alive
check "ha-receive alive" rx_alive
check "and no degradation" sh -c "! grep -q DEGRADED '$tmp/p8.log'"
for p in $(ip netns pids "${PREFIX}h"); do
	[ "$(ps -o comm= -p "$p")" = ha-protect ] && kill "$p"
done
rx_stop
printf '[protect]\ninterval = fast\n' >> "$tmp/pair.conf"
"$bin/ha-protect" --config "$tmp/pair.conf" --host a > "$tmp/p9.log" 2>&1
rc=$?
check "a bad value in the pair file: a usage error naming the file and line" \
	sh -c "test $rc -eq 2 && grep -q 'pair.conf:17: --interval wants a number' '$tmp/p9.log'"

[ "$fails" -eq 0 ]
