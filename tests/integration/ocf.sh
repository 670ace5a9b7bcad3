#!/bin/sh
# The Pacemaker agent (dist/ocf/pair) against a real protected pair:
# ocf-tester (resource-agents) drives start, monitor, promote, demote and
# stop on the primary's node, where each promote protects the domain to
# the secondary and each demote ends protection cleanly; the secondary's
# node is started and stopped by the agent too (ha-receive standing by).
# Then the node that stands by refuses a promotion while its primary runs
# (the promoted role is moved by demoting the primary first), and after the
# primary's loss the secondary's node reports the domain running there,
# promotable, and its promotion protects it back to the first node, which
# the agent started as the secondary again. Last, the promoted role moves
# back as Pacemaker moves it: a pre-demote notification naming the first
# node, the demote (a switchover), its promotion. Both "nodes" are one namespace, told apart
# with --host and a run, state and log directory each.
# needs: kvm (ha-vm guests; tests/run.sh runs it in the KVM lab where /dev/kvm is missing)
PREFIX=hoc-
. "$(dirname "$0")/lib.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
top=$(cd "$(dirname "$0")/../.." && pwd)
gen="$top/scripts/tls-gen.sh"
tmp=$(mktemp -d)
trap 'ns_cleanup; rm -rf "$tmp"' EXIT
need_root
[ -w /dev/kvm ] || skip "/dev/kvm is missing: ha-vm cannot run here"
command -v ocf-tester > /dev/null || skip "ocf-tester is missing (Debian package resource-agents)"
ip netns add "${PREFIX}h"
ns h ip link set lo up
# ocf-tester runs the agent's meta-data as nobody too: a copy it can reach.
chmod 755 "$tmp"
install -m 0755 "$top/dist/ocf/pair" "$tmp/pair"
agent=$tmp/pair
mkdir -p "$tmp/conf"
sh "$gen" psk "$tmp/psk" pair || { echo "FAIL cannot make the PSK file"; exit 1; }
pair_conf "$tmp/conf/web.conf" 7830 "$tmp/psk"
# ra NODE ACTION: the agent's ACTION on node a or b; its exit status.
ra() {
	n=$1
	shift
	# shellcheck disable=SC2086 # RA_ENV: more NAME=VALUE words
	ns h env ${RA_ENV:-} OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE="web-$n" HA_RSCTMP="$tmp/rsc-$n" \
		OCF_RESKEY_pair=web OCF_RESKEY_host="$n" OCF_RESKEY_conf_dir="$tmp/conf" \
		OCF_RESKEY_state_dir="$tmp/state-$n" OCF_RESKEY_run_dir="$tmp/run-$n" \
		OCF_RESKEY_sbin="$bin" OCF_RESKEY_ctl="$bin/ha-ctl" OCF_RESKEY_log_dir="$tmp/log-$n" \
		OCF_RESKEY_start_timeout=$(ms 20) OCF_RESKEY_CRM_meta_interval=10000 \
		"$agent" "$1" > "$tmp/ra.out" 2>&1
}
ra_rc() { ra "$1" "$2"; echo $?; }
on() { # NODE CMD...: CMD with NODE's run and state directories
	h=$1
	shift
	ns h env HA_CONF_DIR="$tmp/conf" HA_RUN_DIR="$tmp/run-$h" HA_STATE_DIR="$tmp/state-$h" "$@"
}
vm_on() { # NODE: an ha-vm "web" on NODE
	on "$1" "$bin/ha-vm" run --name web --mem 16M --guest counter > "$tmp/vm-$1.log" 2>&1 &
	wait_for 10 test -S "$tmp/run-$1/ha-vm/web.sock"
}

# Node b stands by, started by the agent.
check "b: monitor before start: not running (7)" test "$(ra_rc b monitor)" -eq 7
check "b: start: ha-receive stands by (0)" test "$(ra_rc b start)" -eq 0
check "b: monitor: unpromoted, running (0)" test "$(ra_rc b monitor)" -eq 0
check "b: ha-receive waits for a primary" sh -c "ip netns exec ${PREFIX}h env HA_RUN_DIR='$tmp/run-b' '$bin/ha-ctl' status web | grep -q '^state: waiting'"

# Node a runs the domain: ocf-tester, with every promotion a real one.
vm_on a || { cat "$tmp/vm-a.log"; exit 1; }
ns h env HA_RSCTMP="$tmp/rsc-a" ocf-tester -n web-a -o pair=web -o host=a -o conf_dir="$tmp/conf" \
	-o state_dir="$tmp/state-a" -o run_dir="$tmp/run-a" -o sbin="$bin" -o ctl="$bin/ha-ctl" \
	-o log_dir="$tmp/log-a" -o start_timeout=$(ms 20) "$agent" > "$tmp/tester.out" 2>&1
rc=$?
sed -n 's/^/     ocf-tester: /p' "$tmp/tester.out" | grep -v '^     ocf-tester: $' | tail -n 3
check "ocf-tester on the primary's node: exit 0" test "$rc" -eq 0
check "and it tested promote and demote (a promotable agent)" \
	sh -c "grep -q 'passed all tests' '$tmp/tester.out' && ! grep -q 'does not support the promote action' '$tmp/tester.out'"
n=$(grep -c 'PROTECTED: checkpointing every 20 ms to 127.0.0.1:7830' "$tmp/log-a/web-protect.log" 2> /dev/null)
check "each of its 3 promotions protected the domain (log: $n)" test "${n:-0}" -eq 3
n=$(grep -c 'END confirmed by the secondary' "$tmp/log-a/web-protect.log" 2> /dev/null)
check "each demotion ended protection cleanly: END confirmed ($n)" test "${n:-0}" -eq 3
check "the secondary discarded each copy and still waits" \
	sh -c "ip netns exec ${PREFIX}h env HA_RUN_DIR='$tmp/run-b' '$bin/ha-ctl' status web | grep -q '^state: waiting'"

# Promoted on a for good; b cannot be promoted beside it.
check "a: start, promote (0)" sh -c "test $(ra_rc a start) -eq 0 && test $(ra_rc a promote) -eq 0"
check "a: monitor: promoted (8)" test "$(ra_rc a monitor)" -eq 8
ra b promote
rc=$?
check "b: promote while a protects: refused (1), saying why" \
	sh -c "test $rc -eq 1 && grep -q 'moving the promoted role' '$tmp/ra.out'"
check "b: still standing by (0)" test "$(ra_rc b monitor)" -eq 0

# Node a is lost: its ha-protect and its domain die at once. b takes over.
for p in $(ip netns pids "${PREFIX}h"); do
	case $(tr '\0' ' ' < /proc/"$p"/cmdline) in
	*"ha-protect --pair web --host a"* | *"ha-vm run --name web"*) kill -9 "$p" ;;
	esac
done
wait_for 20 sh -c "grep -q 'ACTIVATED\|activated' '$tmp/log-b/web-receive.log'"
check "b: its copy runs now" wait_for 20 test -S "$tmp/run-b/ha-vm/web.sock"
check "b: monitor: running, unpromoted, promotable (0)" test "$(ra_rc b monitor)" -eq 0
check "a: monitor: the promoted instance failed (9)" test "$(ra_rc a monitor)" -eq 9
check "a: stop (0)" test "$(ra_rc a stop)" -eq 0
# a comes back as the secondary (its record says primary, but the domain
# does not run there); b is promoted and protects the domain back to it.
check "a: start: stands by (0)" test "$(ra_rc a start)" -eq 0
check "b: promote: protects towards a (0)" test "$(ra_rc b promote)" -eq 0
check "b: monitor: promoted (8)" test "$(ra_rc b monitor)" -eq 8
check "a: monitor: standing by (0)" test "$(ra_rc a monitor)" -eq 0
# The promoted role moves back to a (pcs resource move --promoted): the
# pre-demote notification names a, b's demote hands the domain over to a
# and stands by, a's promote protects it towards b.
RA_ENV="OCF_RESKEY_CRM_meta_on_node=b OCF_RESKEY_CRM_meta_notify_type=pre
	OCF_RESKEY_CRM_meta_notify_operation=demote OCF_RESKEY_CRM_meta_notify_promote_uname=a"
check "b: pre-demote notification naming a (0)" test "$(ra_rc b notify)" -eq 0
RA_ENV="OCF_RESKEY_CRM_meta_on_node=b"
ra b demote
rc=$?
check "b: demote: switched over to a, standing by ($rc)" \
	sh -c "test $rc -eq 0 && grep -q 'SWITCHOVER complete' '$tmp/log-b/web-protect.log'"
RA_ENV=
check "b: monitor: unpromoted, standing by (0)" test "$(ra_rc b monitor)" -eq 0
check "a: the domain runs there (its ha-receive handed it over)" \
	sh -c "grep -q 'SWITCHOVER complete' '$tmp/log-a/web-receive.log' && test -S '$tmp/run-a/ha-vm/web.sock'"
check "a: promote: protects towards b (0)" test "$(ra_rc a promote)" -eq 0
check "a: monitor: promoted (8)" test "$(ra_rc a monitor)" -eq 8
check "a: demote (no promotion elsewhere: protection ends, the domain stays), stop; b: stop (0)" \
	sh -c "test $(ra_rc a demote) -eq 0 && test $(ra_rc a stop) -eq 0 && test $(ra_rc b stop) -eq 0 &&
		test -S '$tmp/run-a/ha-vm/web.sock'"
check "a: monitor after stop (7)" test "$(ra_rc a monitor)" -eq 7
check "b: monitor after stop (7)" test "$(ra_rc b monitor)" -eq 7
if [ "$fails" -ne 0 ]; then
	cat "$tmp/tester.out"
	for f in "$tmp"/log-*/*.log; do
		echo "--- $f"
		tail -n 30 "$f"
	done
fi
[ "$fails" -eq 0 ]
