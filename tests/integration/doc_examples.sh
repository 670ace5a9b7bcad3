#!/bin/sh
# Every command example in the docs (the ```sh blocks of README.md and
# docs/*.md) as written, run against this tree's programs:
#   - ha-protect and ha-receive with --check: the command line must be
#     accepted (not exit 2, a usage or configuration error); what --check
#     finds missing on this machine (the domain, the peer) is not the
#     example's fault;
#   - ha-witness and ha-diskrepl for a moment, in a namespace of their own:
#     not exit 2;
#   - ha-ctl: not exit 2; ha-tls-gen (scripts/tls-gen.sh): run for real;
#   - make TARGET: the target exists (make -n);
#   - systemctl UNIT: the unit is one of dist/systemd's; pcs: the agent and
#     its parameters exist.
# Files the examples name under /etc and /var/lib live in a scratch
# directory instead, and the TLS files they name are made there first.
# Anything else (ipmitool, mail, cron lines) is not ours: listed, not run.
# A command that is not whole ("...", "[OPTIONAL]") fails: write it whole.
PREFIX=hdx-
. "$(dirname "$0")/lib.sh"
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "$HA_BUILD/bin" && pwd)
tmp=$(mktemp -d)
trap 'ns_cleanup; rm -rf "$tmp"' EXIT
need_root
ip netns add "${PREFIX}n"
ns n ip link set lo up

# file:line<TAB>command, continuation lines joined, trailing comments cut.
(cd "$top" && awk '
	/^```sh$/ { inb = 1; next }
	/^```/ { inb = 0; next }
	!inb { next }
	{
		line = $0
		if (cmd == "") start = FILENAME ":" FNR
		if (line ~ /\\$/) { cmd = cmd substr(line, 1, length(line) - 1); next }
		cmd = cmd line
		sub(/[ \t]+#.*$/, "", cmd)
		sub(/^[ \t]+/, "", cmd)
		if (cmd != "" && cmd !~ /^#/) print start "\t" cmd
		cmd = ""
	}' README.md docs/*.md) > "$tmp/examples"
n=$(wc -l < "$tmp/examples")
[ "$n" -gt 10 ] || { echo "FAIL only $n examples found: the extraction is broken"; exit 1; }
echo "     $n command examples"

root=$tmp/root
mkdir -p "$root/etc" "$root/var/lib"
# Paths of the examples, moved into the scratch root.
scratch() { sed -e "s#\(^\|[ =]\)/etc/#\1$root/etc/#g" -e "s#\(^\|[ =]\)/var/lib/#\1$root/var/lib/#g"; }

# tls_files ARGS...: makes the TLS files the arguments name.
tls_files() {
	while [ $# -gt 0 ]; do
		case $1 in
		--tls-psk)
			mkdir -p "$(dirname "$2")"
			[ -e "$2" ] || sh "$top/scripts/tls-gen.sh" psk "$2" pair > /dev/null 2>&1
			;;
		esac
		shift
	done
}

ran=0 external=0
cd "$tmp" || exit 1 # relative paths of the examples land here
exec 3< "$tmp/examples"
while IFS="	" read -r where cmd <&3; do
	cmd=$(printf '%s\n' "$cmd" | scratch | sed 's/ &$//')
	# The program, after any VAR=VALUE assignments.
	prog=$(printf '%s\n' "$cmd" | sed -E 's/^([A-Z_][A-Z0-9_]*=("[^"]*"|[^ ]*) +)*//' | cut -d' ' -f1)
	case $prog in
	ha-protect | ha-receive | ha-witness | ha-diskrepl | ha-ctl | ha-tls-gen | \
		scripts/tls-gen.sh | make | systemctl | pcs) ;;
	ha-vm)
		echo "     $where: ha-vm needs /dev/kvm: not run here (the KVM lab's tests run it)"
		external=$((external + 1))
		continue
		;;
	*)
		echo "     $where: not run, not a command of this project: $prog ..."
		external=$((external + 1))
		continue
		;;
	esac
	case $cmd in
	*...* | *\[--* | *\[-[a-z]\ *)
		check "$where: a whole command (no '...' or [OPTIONAL]): $cmd" false
		continue
		;;
	*\;* | *\|* | *\&* | *\$* | *\`*)
		check "$where: one command, with no shell syntax to run: $cmd" false
		continue
		;;
	esac
	# Ours from this tree: "ENV=... PROG ARGS" becomes "ENV=... BIN/PROG ARGS",
	# run through env(1), which takes the assignments as they are written.
	case $prog in
	ha-protect | ha-receive | ha-witness | ha-diskrepl)
		cmd=$(printf '%s\n' "$cmd" | sed "s#\(^\| \)$prog #\1$bin/$prog #")
		;;
	esac
	set -f
	eval "set -- $cmd"
	set +f
	case $prog in
	ha-protect | ha-receive)
		tls_files "$@"
		ns n env HA_RUN_DIR="$tmp/run" HA_STATE_DIR="$tmp/state" "$@" --check \
			> "$tmp/out" 2>&1 < /dev/null
		rc=$?
		check "$where: $prog accepts its options (--check exit $rc, not 2)" test "$rc" -ne 2
		[ "$rc" -eq 2 ] && cat "$tmp/out"
		;;
	ha-witness | ha-diskrepl)
		tls_files "$@"
		for a in "$@"; do
			case $a in "$root"/*) mkdir -p "$(dirname "$a")" ;; esac
		done
		ns n env HA_RUN_DIR="$tmp/run" timeout 2 env "$@" > "$tmp/out" 2>&1 < /dev/null
		rc=$?
		check "$where: $prog accepts its options (exit $rc in 2 s, not 2)" test "$rc" -ne 2
		[ "$rc" -eq 2 ] && cat "$tmp/out"
		;;
	ha-ctl)
		shift
		ns n env HA_RUN_DIR="$tmp/run" HA_CONF_DIR="$root/etc/ha-protect" \
			"$bin/ha-ctl" "$@" > "$tmp/out" 2>&1 < /dev/null
		rc=$?
		check "$where: ha-ctl accepts its arguments (exit $rc, not 2)" test "$rc" -ne 2
		;;
	ha-tls-gen | scripts/tls-gen.sh)
		shift
		mkdir -p "$root/etc/ha-protect"
		sh "$top/scripts/tls-gen.sh" "$@" > "$tmp/out" 2>&1 < /dev/null
		rc=$?
		check "$where: $prog runs (exit $rc)" test "$rc" -eq 0
		;;
	make)
		(cd "$top" && env "$@" -n > /dev/null 2>&1 < /dev/null)
		rc=$?
		check "$where: $* is a target (make -n: exit $rc)" test "$rc" -eq 0
		;;
	systemctl)
		unit=$(for a in "$@"; do case $a in ha-*) echo "$a" ;; esac; done | head -n 1)
		file=$top/dist/systemd/$(echo "$unit" | sed 's/@.*/@/').service
		check "$where: systemctl's unit $unit is one of dist/systemd" test -f "$file"
		;;
	pcs)
		agent=$(for a in "$@"; do case $a in ocf:*) echo "$a" ;; esac; done)
		params=$(for a in "$@"; do case $a in *=*) echo "${a%%=*}" ;; esac; done)
		meta=$(OCF_ROOT=/usr/lib/ocf "$top/dist/ocf/pair" meta-data 2> /dev/null)
		ok=1
		[ "$agent" = ocf:ha-protect:pair ] || ok=0
		for p in $params; do
			case $p in promoted-max | promoted-node-max | clone-max | clone-node-max | notify) continue ;; esac # clone meta attributes
			echo "$meta" | grep -q "<parameter name=\"$p\"" || ok=0
		done
		check "$where: pcs names ocf:ha-protect:pair and its parameters" test "$ok" -eq 1
		;;
	esac
	ran=$((ran + 1))
done
exec 3<&-
echo "     $ran examples run, $external external"
check "the examples of ours were run" test "$ran" -gt 10
[ "$fails" -eq 0 ]
