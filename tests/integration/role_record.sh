#!/bin/sh
# The role record across a failover and the restarts after it: a primary
# that crashed while protecting asks the secondary before it protects again,
# and when the secondary took over meanwhile it pauses its copy, records
# that it lost the role and refuses from then on; the host that took over
# refuses to stand by as the secondary; the pair is protected the other way
# round without any override; ha-ctl role shows the record, and writes it
# only while no daemon of the pair runs. Both "hosts" are one namespace,
# told apart with --host and a run and a state directory each.
# needs: kvm (ha-vm guests; tests/run.sh runs it in the KVM lab where /dev/kvm is missing)
PREFIX=hrr-
. "$(dirname "$0")/lib.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
gen="$(dirname "$0")/../../scripts/tls-gen.sh"
tmp=$(mktemp -d)
trap 'ns_cleanup; rm -rf "$tmp"' EXIT
need_root
[ -w /dev/kvm ] || skip "/dev/kvm is missing: ha-vm cannot run here"
ip netns add "${PREFIX}h"
ns h ip link set lo up
export HA_CONF_DIR="$tmp/conf"
mkdir -p "$HA_CONF_DIR"
sh "$gen" psk "$tmp/psk" pair || { echo "FAIL cannot make the PSK file"; exit 1; }
pair_conf "$HA_CONF_DIR/web.conf" 7820 "$tmp/psk"
# on HOST CMD...: CMD as host a or b (its run and state directories).
on() {
	h=$1
	shift
	ns h env HA_RUN_DIR="$tmp/run-$h" HA_STATE_DIR="$tmp/state-$h" HA_VM_ARGS= "$@"
}
role_of() { on "$1" "$bin/ha-ctl" role web; }
role_is() { role_of "$1" | grep -q "$2"; }
vm_state() { on "$1" "$bin/ha-vm" list | grep -q "^web .* $2"; }
pid_of() { # the PID of COMM in the namespace whose command line has WORD
	for p in $(ip netns pids "${PREFIX}h"); do
		[ "$(ps -o comm= -p "$p")" = "$1" ] && tr '\0' ' ' < /proc/"$p"/cmdline |
			grep -q -- "$2" && echo "$p"
	done
}

check "no record yet: none" role_is a "none (the pair never ran on this host)"

# The pair runs: B stands by, A protects its domain.
on b "$bin/ha-receive" --pair web --host b > "$tmp/rx1.log" 2>&1 &
rx1=$!
wait_for 5 grep -q "listening on 127.0.0.1:7820" "$tmp/rx1.log"
on a "$bin/ha-vm" run --name web --mem 16M --guest counter > "$tmp/vm-a.log" 2>&1 &
wait_for 10 test -S "$tmp/run-a/ha-vm/web.sock" || { cat "$tmp/vm-a.log"; exit 1; }
on a "$bin/ha-protect" --pair web --host a > "$tmp/px1.log" 2>&1 &
wait_for 20 grep -q "PROTECTED:" "$tmp/px1.log"
check "A protects, and its record says so" role_is a "primary, protecting since .*(protecting kvm:web to 127.0.0.1:7820)"
check "B's record: secondary" role_is b "secondary since .*(standing by for web)"
busy_refused() {
	! on a "$bin/ha-ctl" role web secondary --host a 2> "$tmp/ctl1.err" &&
		grep -q "ha-protect runs for kvm:web on this host" "$tmp/ctl1.err"
}
check "ha-ctl role refuses to write while ha-protect runs" busy_refused

# A's ha-protect dies without a word (a crash); its guest runs on. B sees
# the stream break without END and takes over.
kill -9 "$(pid_of ha-protect --pair)"
wait "$rx1"
rc=$?
check "B took over: exit 3" test "$rc" -eq 3
check "B's record: primary, took over" role_is b "primary since .*(took over web here: the primary was lost)"
check "A's record still says it was protecting" role_is a "primary, protecting"

# A's ha-protect starts again (systemd's restart): the record says the last
# run did not record its end, B does not answer as a secondary: A pauses
# its copy, records that it lost the role and stops with 5.
on a "$bin/ha-protect" --pair web --host a > "$tmp/px2.log" 2>&1
rc=$?
check "A's restart: exit 5" test "$rc" -eq 5
check "it asked first" grep -q "did not record its end .* protection goes on only if it answers as the secondary" "$tmp/px2.log"
check "and says it lost the role, its copy paused" grep -q "this host LOST the primary role of pair web: .* The domain is left PAUSED" "$tmp/px2.log"
check "A's copy is paused" vm_state a paused
check "A's record: lost" role_is a "lost since .*(the last protection here did not record its end, and the secondary 127.0.0.1:7820 did not answer"

# Again: refused at once, the domain not even opened.
on a "$bin/ha-protect" --pair web --host a > "$tmp/px3.log" 2>&1
rc=$?
check "A once more: exit 5, naming the way out" \
	sh -c "test $rc -eq 5 && grep -q 'not protecting: this host lost the primary role of pair web: .*ha-ctl role web primary' '$tmp/px3.log'"
check "and its copy stays paused" vm_state a paused
preflight_fails() {
	! on a "$bin/ha-ctl" check web --host a --as primary > "$tmp/chk-a" 2>&1 &&
		grep -q "FAIL role record .*lost the primary role" "$tmp/chk-a"
}
check "the preflight says the same" preflight_fails

# B, which runs the domain now, must not stand by as the secondary.
on b "$bin/ha-receive" --pair web --host b > "$tmp/rx2.log" 2>&1
rc=$?
check "B as secondary: exit 5, naming the way out" \
	sh -c "test $rc -eq 5 && grep -q 'not standing by: this host is the primary of pair web: .*While the domain runs here' '$tmp/rx2.log'"

# Protected the other way round, with no override: A destroys its paused
# copy and stands by (a host that lost the role may), B protects.
on a "$bin/ha-vm" stop web > /dev/null 2>&1
wait_for 10 sh -c "! test -S '$tmp/run-a/ha-vm/web.sock'"
on a "$bin/ha-receive" --pair web --host a > "$tmp/rx3.log" 2>&1 &
wait_for 5 grep -q "listening on 127.0.0.1:7820" "$tmp/rx3.log"
check "A stands by: secondary" role_is a "secondary since"
on b "$bin/ha-protect" --pair web --host b > "$tmp/px4.log" 2>&1 &
px4=$!
wait_for 20 grep -q "PROTECTED:" "$tmp/px4.log"
check "B protects toward A" grep -q "PROTECTED: checkpointing every 20 ms to 127.0.0.1:7820" "$tmp/px4.log"
check "B's record: primary, protecting" role_is b "primary, protecting"
# A clean stop: END confirmed, the record says nobody holds a copy.
kill "$(pid_of ha-protect 'host b')"
wait "$px4"
check "B stopped cleanly: its record says the copy was discarded" \
	role_is b "primary since .*(protection of kvm:web stopped: the secondary confirmed END and discarded its copy)"
kill "$(pid_of ha-receive 'host a')" 2> /dev/null

# An operator's word: what it writes, and what it refuses.
on a "$bin/ha-ctl" role web lost > /dev/null 2> "$tmp/ctl2.err"
rc=$?
check "ha-ctl role: 'lost' is not the operator's to say (exit 2)" test "$rc" -eq 2
on a "$bin/ha-ctl" role web primary --host a > "$tmp/ctl3.out" 2>&1
rc=$?
check "ha-ctl role web primary: written" \
	sh -c "test $rc -eq 0 && grep -q 'primary since .*(set by the operator: ha-ctl role web primary)' '$tmp/ctl3.out'"
printf '[role]\nrole = boss\n' > "$tmp/state-a/web.role"
on a "$bin/ha-protect" --pair web --host a > "$tmp/px5.log" 2>&1
rc=$?
check "a damaged record: refused (5), naming file and line" \
	sh -c "test $rc -eq 5 && grep -q 'web.role:2: role = boss: expected primary, secondary or lost' '$tmp/px5.log'"
if [ "$fails" -ne 0 ]; then
	for f in px1.log rx1.log px2.log px3.log rx2.log rx3.log px4.log; do
		echo "--- $f"
		cat "$tmp/$f"
	done
fi
[ "$fails" -eq 0 ]
