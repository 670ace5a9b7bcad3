# Helpers for integration tests in network namespaces. Source it; set
# PREFIX first (namespace and interface names start with it) and call
# ns_cleanup from an EXIT trap.

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

# wait_for SECONDS CMD...: poll CMD until it succeeds.
wait_for() {
	t=$1
	shift
	i=0
	while [ "$i" -lt $((t * 10)) ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
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
