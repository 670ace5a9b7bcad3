#!/bin/sh
# ha-ctl check PAIR (ha-protect --check, ha-receive --check): the preflight
# finds each misconfiguration it is meant to, one line each, and passes a
# good pair. Both "hosts" are one namespace here, told apart with --host;
# the domain is an ha-vm guest, the witness a real ha-witness.
# needs: kvm (ha-vm guests; tests/run.sh runs it in the KVM lab where /dev/kvm is missing)
PREFIX=hpf-
. "$(dirname "$0")/lib.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
gen="$(dirname "$0")/../../scripts/tls-gen.sh"
tmp=$(mktemp -d)
trap 'ns_cleanup; rm -rf "$tmp"' EXIT
need_root
[ -w /dev/kvm ] || skip "/dev/kvm is missing: ha-vm cannot run here"
ip netns add "${PREFIX}h"
ns h ip link set lo up
export HA_RUN_DIR="$tmp/run" HA_CONF_DIR="$tmp/conf"
mkdir -p "$HA_CONF_DIR"
sh "$gen" psk "$tmp/psk" pair && sh "$gen" psk "$tmp/psk2" pair ||
	{ echo "FAIL cannot make the PSK files"; exit 1; }
printf '#!/bin/sh\nexit 0\n' > "$tmp/fence" && chmod 755 "$tmp/fence"

conf() { # the pair file "web", with extra lines for [common]
	cat > "$HA_CONF_DIR/web.conf" << EOF
[pair]
domain = kvm:web
port = 7810
[host a]
address = 127.0.0.1
[host b]
address = 127.0.0.1
[common]
tls-psk = $tmp/psk
witness = 127.0.0.1:7811
$*
[receive]
fence-cmd = $tmp/fence
EOF
}
# hactl LOG ARGS...: ha-ctl check in the namespace; its exit status.
# Each host keeps its role record (HA_STATE_DIR) and its control sockets
# (HA_RUN_DIR: A's domain, B's ha-receive) apart, as on two machines;
# RUN=DIR overrides the latter.
hactl() {
	log=$1
	shift
	case "$*" in
	*"--host a"*) st=$tmp/state-a run=$tmp/run ;;
	*) st=$tmp/state-b run=$tmp/run-b ;;
	esac
	ns h env HA_STATE_DIR="$st" HA_RUN_DIR="${RUN:-$run}" "$bin/ha-ctl" check web "$@" \
		> "$tmp/$log" 2>&1
}
has() { grep -q -- "$2" "$tmp/$1"; }

conf
ns h "$bin/ha-witness" --tls-psk "$tmp/psk" --listen 127.0.0.1:7811 --state "$tmp/w.state" \
	> "$tmp/w.log" 2>&1 &
wait_for 5 grep -q "witness on" "$tmp/w.log"

# B, before anything runs: as the secondary (the domain runs nowhere yet).
hactl b1 --host b
rc=$?
check "secondary, all good: exit 0" test $rc -eq 0
check "it chose the role: the domain does not run here" has b1 "does not run on this host (b): checking it as the secondary"
check "its port is free, the backend there, no copy running" \
	sh -c "grep -q 'ok   port 127.0.0.1:7810 free' '$tmp/b1' && grep -q 'ok   backend kvm' '$tmp/b1' &&
		grep -q 'ok   no domain kvm:web runs on this host' '$tmp/b1'"
check "the witness answers and authenticates" has b1 "ok   the witness 127.0.0.1:7811 reachable and authenticated"
check "the fence command is executable" has b1 "ok   --fence-cmd: $tmp/fence is executable"
check "no role record yet: none" has b1 "ok   role record $tmp/state-b/web.role: none (the pair never ran on this host)"

# Each misconfiguration, one at a time.
# A Xen pair on a host without Xen.
ns h env HA_STATE_DIR="$tmp/state-b" HA_RUN_DIR="$tmp/run-b" "$bin/ha-receive" --backend xen \
	--domain web --listen 127.0.0.1:7810 --tls-psk "$tmp/psk" --check > "$tmp/noxen" 2>&1
rc=$?
check "no Xen on a Xen secondary: FAIL, exit 1" \
	sh -c "test $rc -eq 1 && grep -q 'FAIL backend xen: /dev/xen/privcmd: .*not a Xen dom0' '$tmp/noxen'"
export HA_VM_ARGS="--tap nosuch0"
hactl bad-tap --host b
rc=$?
unset HA_VM_ARGS
check "a --tap interface (HA_VM_ARGS) that does not exist: FAIL, exit 1" \
	sh -c "test $rc -eq 1 && grep -q 'FAIL interface nosuch0 (--tap of HA_VM_ARGS): no such interface on this host' '$tmp/bad-tap'"
conf "timeot = 500"
hactl bad-key --host b
rc=$?
check "a misspelt key: exit 2, the file and line named" \
	sh -c "test $rc -eq 2 && grep -q 'web.conf:11: unknown key .timeot.' '$tmp/bad-key'"
conf
chmod 644 "$tmp/psk"
hactl bad-mode --host b
rc=$?
check "a PSK file others may read: refused, with the chmod to run" \
	sh -c "test $rc -ne 0 && grep -q 'other users may read it (mode 644); chmod 600 it' '$tmp/bad-mode'"
chmod 600 "$tmp/psk"
sed -i "s|fence-cmd = .*|fence-cmd = $tmp/no-such-fence --node a|" "$HA_CONF_DIR/web.conf"
hactl bad-fence --host b
rc=$?
check "a fence command that is not there: FAIL, exit 1" \
	sh -c "test $rc -eq 1 && grep -q 'FAIL --fence-cmd: $tmp/no-such-fence: No such file' '$tmp/bad-fence'"
conf
sed -i 's|witness = 127.0.0.1:7811|witness = 127.0.0.1:7819|' "$HA_CONF_DIR/web.conf"
hactl bad-witness --host b
rc=$?
check "a witness nobody serves: FAIL, exit 1" \
	sh -c "test $rc -eq 1 && grep -q 'FAIL the witness 127.0.0.1:7819 cannot be reached' '$tmp/bad-witness'"
conf

# The pair runs: B stands by, A's domain runs.
ns h env HA_VM_ARGS= HA_STATE_DIR="$tmp/state-b" HA_RUN_DIR="$tmp/run-b" "$bin/ha-receive" --pair web --host b \
	> "$tmp/rx.log" 2>&1 &
wait_for 5 grep -q "listening on 127.0.0.1:7810" "$tmp/rx.log"
hactl b2 --host b
rc=$?
check "ha-receive running: its port is taken, said so" \
	sh -c "test $rc -eq 1 && grep -q 'FAIL port 127.0.0.1:7810: .*(does ha-receive already run?)' '$tmp/b2'"
ns h "$bin/ha-vm" run --name web --mem 16M --guest counter > "$tmp/vm.log" 2>&1 &
wait_for 10 test -S "$HA_RUN_DIR/ha-vm/web.sock" || { cat "$tmp/vm.log"; exit 1; }
hactl a1 --host a
rc=$?
check "primary, all good: exit 0" test $rc -eq 0
check "it chose the role: the domain runs here" has a1 "runs on this host (a): checking it as the primary"
check "the domain, the secondary (authenticated), the witness" \
	sh -c "grep -q 'ok   domain kvm:web runs here' '$tmp/a1' &&
		grep -q 'ok   the secondary 127.0.0.1:7810 reachable and authenticated' '$tmp/a1' &&
		grep -q 'ok   the witness 127.0.0.1:7811 reachable and authenticated' '$tmp/a1'"
rx_waits() { ns h env HA_RUN_DIR="$tmp/run-b" "$bin/ha-ctl" status web | grep -q 'state: waiting'; }
check "the secondary took the probe as a connection that sent no stream, and waits on" \
	rx_waits
hactl b4 --host b --as primary
check "the host that stands by, checked as the primary: FAIL, with the way out" \
	has b4 "FAIL role record $tmp/state-b/web.role: this host is the secondary of pair web: secondary since .*ha-ctl role web primary"
RUN=$tmp/run
hactl b3 --host b --as secondary
RUN=
check "a secondary where the domain runs: FAIL (a failover would start a second copy)" \
	has b3 "FAIL domain kvm:web already runs on this host"
# A's PSK is not B's: the primary's preflight says so.
sed -i "s|tls-psk = .*|tls-psk = $tmp/psk2|" "$HA_CONF_DIR/web.conf"
hactl a2 --host a
rc=$?
check "the secondary does not authenticate us: FAIL naming the key" \
	sh -c "test $rc -eq 1 && grep -q 'FAIL the secondary 127.0.0.1:7810 reachable, but TLS failed: .*\(pre-shared key\|PSK\)' '$tmp/a2'"
conf
sed -i 's|port = 7810|port = 7818|' "$HA_CONF_DIR/web.conf"
hactl a3 --host a
check "a secondary that does not listen: FAIL" has a3 "FAIL the secondary 127.0.0.1:7818 cannot be reached"
if [ "$fails" -ne 0 ]; then
	for f in b1 a1 a2 rx.log; do echo "--- $f"; cat "$tmp/$f"; done
fi
[ "$fails" -eq 0 ]
