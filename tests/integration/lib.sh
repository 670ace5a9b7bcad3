# Helpers for integration tests in network namespaces. Source it; set
# PREFIX first (namespace and interface names start with it) and call
# ns_cleanup from an EXIT trap.

# Timing under emulation: HA_TIME_SCALE (a whole number, default 1)
# multiplies a test's timers (down timers, witness leases, how long it waits
# for something to happen) where everything runs slower than on hardware.
# The KVM lab sets it (tests/kvmlab/run.sh). It never relaxes an invariant:
# it only changes how long a test waits before it concludes.
TS=${HA_TIME_SCALE:-1}
case $TS in '' | *[!0-9]* | 0) echo "HA_TIME_SCALE is a whole number >= 1, not '$TS'"; exit 2 ;; esac
# ms N: N milliseconds of a timer, scaled.
ms() { echo $(($1 * TS)); }

skip() {
	echo "SKIP: $*"
	exit 77
}

need_root() {
	[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces)"
	ns_cleanup
	ip netns add "${PREFIX}probe" 2>/dev/null || skip "cannot create network namespaces"
	ip netns del "${PREFIX}probe"
	# Leave nothing behind, also when interrupted.
	trap 'exit 130' INT TERM
}

ns_cleanup() {
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${PREFIX}"); do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$ns" 2>/dev/null
	done
}

# ns NAME CMD...: run CMD in namespace PREFIX-NAME.
ns() {
	n=$1
	shift
	ip netns exec "${PREFIX}$n" "$@"
}

# wait_for SECONDS CMD...: poll CMD until it succeeds (SECONDS scaled).
wait_for() {
	t=$1
	shift
	i=0
	while [ "$i" -lt $((t * 10 * TS)) ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# pair_conf FILE PORT PSK: the pair file of a test whose two "hosts", a
# and b, are both 127.0.0.1 (told apart with --host): domain kvm:web, the
# PSK, a 300 ms down timer (scaled), 20 ms epochs.
pair_conf() {
	cat > "$1" << EOF
# the pair of this test: both "hosts" are this namespace
[pair]
domain = kvm:web
port = $2
[host a]
address = 127.0.0.1
[host b]
address = 127.0.0.1
[common]
tls-psk = $3
timeout = $(ms 300)
[protect]
interval = 20
EOF
}

fails=0
check() { # description, then a command that must succeed
	d=$1
	shift
	if "$@"; then
		echo "ok   $d"
	else
		echo "FAIL $d"
		fails=$((fails + 1))
	fi
}

# A bridge in namespace a with two ports: gtap (its peer geth, 10.88.0.10,
# in namespace g: the "guest") and up0 (its peer ceth, 10.88.0.20, in
# namespace c: the receiver), with static neighbours (no ARP needed).
bridge_topo() {
	for n in a g c; do ip netns add "${PREFIX}$n"; done
	ns a ip link add br0 type bridge
	ns a ip link set br0 up
	ns a ip link add gtap type veth peer name geth netns "${PREFIX}g"
	ns a ip link add up0 type veth peer name ceth netns "${PREFIX}c"
	for i in gtap up0; do ns a ip link set "$i" master br0 up; done
	ns g ip addr add 10.88.0.10/24 dev geth
	ns c ip addr add 10.88.0.20/24 dev ceth
	for h in g c; do ns "$h" ip link set lo up; done
	ns g ip link set geth up
	ns c ip link set ceth up
	ns g ip neigh replace 10.88.0.20 lladdr "$(ns c cat /sys/class/net/ceth/address)" dev geth
	ns c ip neigh replace 10.88.0.10 lladdr "$(ns g cat /sys/class/net/geth/address)" dev ceth
}

# The JSON status schemas of docs/monitoring.md, as jq expressions (jq -e
# exits 0 only when they hold).
SCHEMA_PROTECT='(.role == "primary") and (.domain|type == "string")
	and (.state|IN("syncing","protected","degraded","stopping"))
	and ([.state_seconds, .epoch, .last_ack_age_seconds, .interval_seconds,
	      .held_output_age_seconds, .epochs,
	      .pages, .wire_bytes, .raw_bytes, .wire_ratio, .stretched_epochs, .degradations,
	      .reprotections]|all(type == "number"))
	and (.acked_epoch|type == "number" or . == null)
	and ([.pause_seconds[], .ack_latency_seconds[]]|all(type == "number"))
	and (.sync.active|type == "boolean")'
SCHEMA_RECEIVE='(.role == "secondary") and (.domain|type == "string")
	and (.state|IN("waiting","syncing","protected","fencing","failing_over","active"))
	and (.committed_epoch|type == "number" or . == null)
	and ([.state_seconds, .last_commit_age_seconds, .checkpoints, .pages, .bytes,
	      .apply_seconds, .failovers, .failover_seconds, .fencing.attempts]|all(type == "number"))
	and ([.fencing.witness, .fencing.command]|all(type == "boolean"))'

# mon_check NS RUNDIR DOMAIN SCHEMA JQ WHAT: the daemon's JSON status
# follows SCHEMA and JQ, and promtool accepts its metrics (where jq and
# promtool are installed: scripts/install-deps.sh installs both).
mon_check() {
	if ! command -v jq > /dev/null || ! command -v promtool > /dev/null; then
		echo "     (jq or promtool missing: status and metrics not checked)"
		return 0
	fi
	ns "$1" env HA_RUN_DIR="$2" "$HA_BUILD/bin/ha-ctl" status --json "$3" > "$2/status.json" 2>&1
	check "$6: its JSON status follows the schema" \
		sh -c 'jq -e "($1) and ($2)" "$3" > /dev/null' _ "$4" "$5" "$2/status.json" ||
		cat "$2/status.json"
	ns "$1" env HA_RUN_DIR="$2" "$HA_BUILD/bin/ha-ctl" metrics "$3" > "$2/metrics.prom" 2>&1
	check "$6: promtool accepts its metrics" promtool check metrics < "$2/metrics.prom"
}
