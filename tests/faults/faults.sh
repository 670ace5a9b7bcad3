#!/bin/bash
# Randomized fault injection: N faults drawn from SEED, injected into a
# protected counter guest while a client increments it, with the invariants
# checked after every fault. Usage (as root, from the project's top):
#
#   N=20 SEED=1234 tests/faults/faults.sh build/default     (make faults)
#
# Environment: N (faults, default 20), SEED (default: the time; printed),
# FAULT_GUEST (counter, default, or disk: the disk guest on a replicated
# disk), FAULT_KINDS (comma-separated kinds, or all; default: the kinds in
# DEFAULT_KINDS below), FENCE (how a partition is arbitrated; see below),
# KEEP=1 (keep the logs of passing runs), INTERVAL and TIMEOUT (epoch
# interval and down timer, ms; the timer's default, 400, is scaled by
# HA_TIME_SCALE), WITNESS_TTL (the lease, ms; default 1000, scaled).
#
# Topology: tests/integration/topology.sh (hosts a and b, client c, switch
# sw) plus host w on the switch (10.66.0.4), which runs ha-witness. The
# roles move: after a failover the old secondary is the primary and the
# failed host is rebuilt as the new secondary. The replication stream goes
# through fault-relay on the secondary's host (port 7789 -> 7788), which
# flips bits on SIGUSR1. The link is TLS with a pre-shared key made for the
# run; the witness uses the same key.
#
# Arbitration (FENCE):
#   witness   (default) ha-protect and ha-receive both get --witness: the
#             secondary activates only with the pair's lease, a primary
#             without secondary and lease pauses its guest, a primary that
#             runs on alone tells the witness first (the secondary then
#             discards its stale copy). w stays reachable from the side
#             that keeps the switch: a fault cuts off one host (link-*), or
#             only the path between a and b (drop-*), or slows one uplink.
#             Once granted the lease, ha-receive also runs its --fence-cmd,
#             which powers the old primary's host off (kills every process
#             in its namespace), as an operator's fence agent would: the
#             witness decides, the product fences.
#   witness-only  the witness without --fence-cmd: a guest whose ha-protect
#             was killed keeps running on the old primary with its IP
#             output blocked but answering ARP (docs/faults.md)
#   harness   no witness: the harness powers the old primary's host off as
#             soon as the secondary announces a failover (a fence agent
#             that acts once the secondary has decided). It cannot undo
#             output a primary released before that, so the partition
#             kinds (drop-to-primary, link-secondary, slow-link) are not in
#             its default set.
#   none      no witness, nobody fences: partitions leave two copies.
#
# Invariants, after every fault:
#   lost      no acknowledged increment lost, no output of an unacknowledged
#             epoch released: the client's Nth acknowledged request got the
#             value N (its ids are consecutive, so a value the client saw
#             and a failover then forgot shows as a mismatch)
#   copies    at most one copy of the guest answers (ARP probe from the
#             client's side, counted while the fault's effects last and
#             again after recovery) and exactly one runs after recovery
#   service   the client's increments are acknowledged again after recovery
#   reprotect the pair is back to protected (fresh pre-copy where needed)
set -u
build=${1:-build/default}
N=${N:-20}
SEED=${SEED:-}
[ -n "$SEED" ] || SEED=$(date +%s)
FENCE=${FENCE:-witness}
# Timers are scaled under emulation (HA_TIME_SCALE, tests/integration/lib.sh).
TS=${HA_TIME_SCALE:-1}
WITNESS_TTL=${WITNESS_TTL:-$((1000 * TS))}
KEEP=${KEEP:-0}
INTERVAL=${INTERVAL:-50}
TIMEOUT=${TIMEOUT:-$((400 * TS))}
JOURNAL_MB=${JOURNAL_MB:-4} # the secondary compacts its disk journal past this size
GUEST=${FAULT_GUEST:-counter}
case $GUEST in
counter) ALL_KINDS="kill-vmm kill-protect kill-receive link-primary link-secondary drop-to-secondary drop-to-primary slow-link bitflip hammer restart-witness stop-partition" ;;
disk) ALL_KINDS="kill-vmm kill-protect kill-receive link-primary link-secondary drop-to-secondary drop-to-primary slow-link bitflip hammer restart-witness stop-partition slow-flush disk-full" ;;
*) echo "faults: FAULT_GUEST is counter or disk, not '$GUEST'"; exit 2 ;;
esac
case $FENCE in
witness | witness-only | harness | none) ;;
*) echo "faults: FENCE is witness, witness-only, harness or none, not '$FENCE'"; exit 2 ;;
esac
# The default kinds are the failures the product claims to handle. With a
# witness that is every kind. Without one, a primary that loses the
# secondary while the secondary still sees it (one-way loss, a slow link,
# an isolated secondary) releases output that the secondary's failover then
# forgets: those kinds run on request only (FAULT_KINDS=all, or by name).
DEFAULT_KINDS="kill-vmm kill-protect kill-receive link-primary drop-to-secondary bitflip hammer"
case $FENCE in witness*) DEFAULT_KINDS="$DEFAULT_KINDS link-secondary drop-to-primary slow-link restart-witness stop-partition" ;; esac
[ "$GUEST" = disk ] && DEFAULT_KINDS="$DEFAULT_KINDS slow-flush disk-full"
case ${FAULT_KINDS:-} in
"") KINDS=$DEFAULT_KINDS ;;
all) KINDS=$ALL_KINDS ;;
*) KINDS=$(echo "$FAULT_KINDS" | tr ',' ' ') ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
KVMLAB_ENV="N SEED FAULT_GUEST FAULT_KINDS FENCE KEEP INTERVAL TIMEOUT WITNESS_TTL JOURNAL_MB"
# The lab's bound grows with N: a fault takes 25-30 s in the emulated lab
# with the counter guest (about 65 s with the disk guest, in CI's run
# beside the Xen lab), and the lab's default hour cut `make faults N=200`
# short after 135 faults.
case $N in '' | *[!0-9]*) echo "N must be a number of faults, not '$N'" >&2; exit 2 ;; esac
export KVMLAB_TIMEOUT=${KVMLAB_TIMEOUT:-$((N * 90 > 3000 ? 600 + N * 90 : 3600))}
. "$top/tests/kvmlab/need-kvm.sh"
need_kvm "$top" "$0" "$@"
PREFIX=haf$$-
. "$top/tests/integration/lib.sh"
. "$top/tests/integration/topology.sh"
bin=$(cd "$build/bin" 2>/dev/null && pwd) || { echo "faults: no $build/bin: run make first"; exit 2; }
tools=$(cd "$build/tests" && pwd)
for t in fault-relay fault-arp; do
	[ -x "$tools/$t" ] || { echo "faults: $tools/$t is missing: run make all"; exit 2; }
done
for k in $KINDS; do
	case " $ALL_KINDS " in *" $k "*) ;; *) echo "faults: unknown kind '$k' (kinds: $ALL_KINDS)"; exit 2 ;; esac
done
# Logs stay under build/faults/; the run's sockets, keys and disk images
# live in a temporary directory (in the KVM lab the project's tree is on
# virtio-9p, where Unix sockets cannot be bound).
out=$top/build/faults/$SEED${FAULT_GUEST:+-$GUEST}
run=$(mktemp -d /tmp/haf.XXXXXX)
logs=$out/logs
rm -rf "$out"
mkdir -p "$logs"

cleanup() {
	hammer_stop
	[ -n "${client_pid:-}" ] && kill "$client_pid" 2>/dev/null
	ns_cleanup
	mountpoint -q "$run/disk/jfs" 2>/dev/null && umount "$run/disk/jfs"
	rm -rf "$run"
}
trap cleanup EXIT
need_root
[ -w /dev/kvm ] || skip "/dev/kvm is missing: ha-vm cannot run here"
command -v iptables >/dev/null || skip "iptables is not installed"
command -v tc >/dev/null || skip "tc is not installed"
command -v openssl >/dev/null || skip "openssl (to make the link's PSK) is not installed"

RANDOM=$SEED
arbiter=$FENCE
[ "$FENCE" = witness ] && arbiter="witness, lease $WITNESS_TTL ms, then ha-receive's fence command"
[ "$FENCE" = witness-only ] && arbiter="witness only, lease $WITNESS_TTL ms"
echo "faults: N=$N SEED=$SEED guest $GUEST, kinds: $KINDS (arbitration: $arbiter; interval $INTERVAL ms, down timer $TIMEOUT ms)"
fence_env=""
[ "$FENCE" = witness ] || fence_env="FENCE=$FENCE "
replay="${fence_env}make faults N=$N SEED=$SEED${FAULT_GUEST:+ FAULT_GUEST=$FAULT_GUEST}${FAULT_KINDS:+ FAULT_KINDS=$FAULT_KINDS}"
echo "faults: replay with: $replay"

ip_of() { case $1 in a) echo 10.66.0.1 ;; b) echo 10.66.0.2 ;; esac; }
other() { case $1 in a) echo b ;; b) echo a ;; esac; }
# rand MIN MAX: sets r from the seeded schedule (no subshell: bash reseeds
# RANDOM in subshells, which would break the replay).
rand() { r=$((RANDOM % ($2 - $1 + 1) + $1)); }
now_ms() { date +%s%3N; }
log() { echo "$(date -u +%H:%M:%S.%3N) $*" >> "$logs/harness.log"; }

# The replication link's security: TLS with a pre-shared key made for this
# run (ha-witness takes the same settings).
psk=$run/pair.psk
sh "$top/scripts/tls-gen.sh" psk "$psk" faults-pair || { echo "faults: cannot make a PSK"; exit 2; }
link_opts="--tls-psk $psk"
WITNESS=$WITNESS_IP:7790
witness=false
case $FENCE in witness*) witness=true ;; esac
witness_wait=0
$witness && witness_wait=$WITNESS_TTL

# ha-receive's fence commands (FENCE=witness): poweroff-H powers host H off.
for h in a b; do
	cat > "$run/poweroff-$h" <<EOF
#!/bin/sh
echo "power off host $h (the primary of \$HA_DOMAIN, committed epoch \$HA_EPOCH)"
ip netns pids ${PREFIX}$h | xargs -r kill -9
EOF
	chmod +x "$run/poweroff-$h"
done

# Host w on the switch runs the witness for the whole run: the faults cut
# off a or b (or the path between them), never w from both.
witness_up() {
	topo_witness_host
	witness_start
}
witness_start() {
	# shellcheck disable=SC2086 # option lists are words
	ns w "$bin/ha-witness" $link_opts --listen "$WITNESS" --max-ttl "$WITNESS_TTL" -v \
		--state "$run/witness.state" \
		>> "$logs/witness.log" 2>&1 &
	wait_for 10 ip netns exec "${PREFIX}w" sh -c "ss -Hltn | grep -q ':7790 '"
}

# ha ROLE HOST ARGS...: starts ha-protect (ROLE protect) or ha-receive
# (ROLE receive) in HOST's namespace, in the background. The only place that
# builds their command lines: options of the replication link (transport
# security, arbitration) belong here.
ha() {
	local role=$1 h=$2 arb=""
	shift 2
	# A secondary that cannot reach the witness asks again after 250 ms
	# (not the default 5 s), so that it decides soon after a fault heals.
	$witness && arb="--witness $WITNESS --witness-ttl $WITNESS_TTL"
	$witness && [ "$role" = receive ] && arb="$arb --fence-retry 250"
	# The primary of a secondary on h is on the other host.
	[ "$FENCE" = witness ] && [ "$role" = receive ] && arb="$arb --fence-cmd $run/poweroff-$(other "$h")"
	# shellcheck disable=SC2086
	case $role in
	protect) set -- "$bin/ha-protect" $link_opts $arb -i "$INTERVAL" --timeout "$TIMEOUT" --retry 300 "$@" ;;
	receive) set -- "$bin/ha-receive" $link_opts $arb --timeout "$TIMEOUT" "$@" ;;
	esac
	if [ "$GUEST" = disk ]; then
		case $role in
		protect) set -- "$@" --disk d0 ;;
		receive) set -- "$@" --disk "$disk/replica.img,journal=$disk/jfs/replica.journal" --journal-limit "$JOURNAL_MB" ;;
		esac
	fi
	log "start on $h: $*"
	ns "$h" env HA_RUN_DIR="$run/$h" HA_VM_ARGS="--tap tap$h" "$@" >> "$logs/$role-$h.log" 2>&1 &
}

ctl() { ns "$1" env HA_RUN_DIR="$run/$1" "$bin/ha-ctl" status "$2" 2>/dev/null; }
vm_state() { # HOST: state of the guest web there (running, incoming, paused or none)
	local s
	s=$(ns "$1" env HA_RUN_DIR="$run/$1" "$bin/ha-vm" list 2>/dev/null | awk '$1 == "web" { print $3 }')
	echo "${s:-none}"
}
pids_of() { # HOST COMM: pids of processes named COMM in HOST's namespace
	local p
	for p in $(ip netns pids "${PREFIX}$1" 2>/dev/null); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$2" ] && echo "$p"
	done
}
alive() { [ -n "$(pids_of "$1" "$2")" ]; }
# Powers a host off: every process in its namespace dies (the fence).
power_off() {
	ip netns pids "${PREFIX}$1" 2>/dev/null | xargs -r kill -9 2>/dev/null
	wait_for 5 sh -c "[ -z \"\$(ip netns pids ${PREFIX}$1)\" ]"
}
answering() { # copies of the guest that answer an ARP request from the client's side
	ns c "$tools/fault-arp" c0 "$GUEST_IP" --wait 1000 2>/dev/null | head -n 1
}
lines() { [ -f "$1" ] && wc -l < "$1" || echo 0; }
since() { tail -n +"$(($2 + 1))" "$1" 2>/dev/null; } # FILE LINES-ALREADY-SEEN

# A host becomes the secondary: everything on it is stopped, leftovers of
# a primary's output buffering are removed, relay and ha-receive start.
start_secondary() {
	local h=$1
	power_off "$h"
	rm -rf "${run:?}/$h"
	ns "$h" "$bin/ha-netbuf" cleanup "tap$h" >> "$logs/harness.log" 2>&1
	ns "$h" "$tools/fault-relay" "$(ip_of "$h"):7789" "$(ip_of "$h"):7788" --seed "$((SEED + fault))" \
		>> "$logs/relay-$h.log" 2>&1 &
	ha receive "$h" --listen "$(ip_of "$h"):7788"
	# Both the relay and ha-receive listen before a primary may connect:
	# ha-protect gives up when its first connection is refused.
	wait_for 10 ip netns exec "${PREFIX}$h" sh -c "ss -Hltn | grep -q ':7788 ' && ss -Hltn | grep -q ':7789 '"
}

# Unauthenticated clients hammer HOST's listener from the client's host:
# every 0.1 s eight new connections that stay silent, each kept 4 s, until
# hammer_stop. (Garbage ends a handshake at once: it would let the primary
# in between; the unit tests and link_tls.sh cover it.)
hammer_start() {
	ip netns exec "${PREFIX}c" bash -c '
		trap "" PIPE
		fds=()
		while :; do
			for i in 1 2 3 4 5 6 7 8; do
				exec {fd}<>"/dev/tcp/$1/7788" && fds+=("$fd")
			done
			while [ "${#fds[@]}" -gt 320 ]; do
				eval "exec ${fds[0]}>&-"
				fds=("${fds[@]:1}")
			done
			sleep 0.1
		done' hammer "$(ip_of "$1")" >/dev/null 2>&1 &
	hammer_pid=$!
}
hammer_stop() {
	[ -n "${hammer_pid:-}" ] || return 0
	kill "$hammer_pid" 2>/dev/null
	wait "$hammer_pid" 2>/dev/null
	hammer_pid=
}

start_primary() { # HOST: protects the guest running there
	ha protect "$1" kvm:web "$(ip_of "$(other "$1")"):7789"
}

# The pair P -> S checkpoints; with a witness, P holds its lease too (a
# primary that loses its secondary before it ever held one pauses for good).
protected() {
	local st
	st=$(ctl "$P" kvm:web) && echo "$st" | grep -q "state: protected" &&
		{ ! $witness || echo "$st" | grep -q "witness: lease held"; } &&
		ctl "$S" web | grep -q "state: protected"
}

client_gen=0
acks=$out/acks.none # the disk guest has no client
start_client() {
	client_gen=$((client_gen + 1))
	acks=$out/acks.$client_gen
	# Not through the ns function: $! must be the client itself.
	ip netns exec "${PREFIX}c" "$bin/ha-client" counter "$GUEST_IP:7000" --name "f$client_gen" \
		--interval 5 --timeout 100 --duration 1000000 > "$acks" 2>> "$logs/client.log" &
	client_pid=$!
}

# The disk guest's pair from scratch: host a serves a fresh 8 MiB image
# through ha-diskrepl to the disk guest; host b keeps the replica, its
# journal on a 16 MiB tmpfs (the disk-full fault fills it).
disk=$run/disk
rebuild_disk() {
	power_off a
	P=a S=b
	power_off b
	mkdir -p "$disk/jfs"
	mountpoint -q "$disk/jfs" || mount -t tmpfs -o size=$((2 * JOURNAL_MB + 16))m faults-journal "$disk/jfs" || return 1
	rm -f "$disk"/*.img "$disk"/jfs/*
	truncate -s 8M "$disk/primary.img"
	start_secondary b
	rm -rf "${run:?}/a"
	ns a "$bin/ha-netbuf" cleanup tapa >> "$logs/harness.log" 2>&1
	ns a env HA_RUN_DIR="$run/a" "$bin/ha-diskrepl" --name d0 --image "$disk/primary.img" \
		>> "$logs/diskrepl-a.log" 2>&1 &
	wait_for 10 test -S "$run/a/ha-diskrepl/d0.nbd" || return 1
	ns a env HA_RUN_DIR="$run/a" "$bin/ha-vm" run --name web --mem 32M --guest disk \
		--disk "nbd:unix:$run/a/ha-diskrepl/d0.nbd" --tap tapa >> "$logs/vm-a.log" 2>&1 &
	wait_for 10 test -S "$run/a/ha-vm/web.sock" || return 1
	start_primary a
	wait_for 30 protected
}

# The whole pair from scratch: a fresh guest on a, protected to b, a new
# client (its values start at 1 again).
rebuild() {
	# A fresh guest does not announce itself: forget where the switch last
	# saw its MAC (on b, after a failover), or it keeps sending there.
	for h in a b; do
		ns sw ip link set "sw-$h" down
		ns sw ip link set "sw-$h" up
	done
	[ "$GUEST" = disk ] && { rebuild_disk; return; }
	[ -n "${client_pid:-}" ] && kill "$client_pid" 2>/dev/null && wait "$client_pid" 2>/dev/null
	power_off a
	P=a S=b
	start_secondary b
	rm -rf "${run:?}/a"
	ns a "$bin/ha-netbuf" cleanup tapa >> "$logs/harness.log" 2>&1
	ns a env HA_RUN_DIR="$run/a" "$bin/ha-vm" run --name web --mem 32M --guest counter \
		--tap tapa --ip "$GUEST_IP/24" --mac "$GUEST_MAC" >> "$logs/vm-a.log" 2>&1 &
	wait_for 10 test -S "$run/a/ha-vm/web.sock" || return 1
	start_primary a
	wait_for 30 protected || return 1
	start_client
	wait_for 10 test -s "$acks"
}

# --- invariant checks -------------------------------------------------------

violations=0
viol_note=""
violation() {
	violations=$((violations + 1))
	fault_viol=$((fault_viol + 1))
	viol_note="$viol_note $1"
	echo "     VIOLATION: $*"
	log "VIOLATION: $*"
}

# The client's Nth line must be "ack N N": ids are consecutive and each value
# its id. After a loss the values stay shifted; the shift found is kept so
# that one loss is reported once.
checked_lines=0 ack_shift=0
check_acks() {
	local res
	res=$(awk -v from="$checked_lines" -v shift="$ack_shift" '
		NR > from && ($2 != NR || $3 - $2 != shift) {
			if (!bad) first = $0
			bad++
			shift = $3 - $2
		}
		END { print shift + 0, bad + 0, first }' "$acks")
	set -- $res
	ack_shift=$1
	if [ "$2" -gt 0 ]; then
		shift 2
		violation lost "an acknowledged value does not match its request (ack ID VALUE US MS: $*)"
	fi
	checked_lines=$(lines "$acks")
}

# A request the guest refuses as older than one it already executed reached
# it again: a replay (ha-client says "replay:" and counts on).
replays_seen=0
check_replays() {
	local n
	n=$(grep -c "ha-client: replay:" "$logs/client.log" 2>/dev/null)
	if [ "${n:-0}" -gt "$replays_seen" ]; then
		violation replay "$((n - replays_seen)) old request(s) reached the guest again: $(grep "ha-client: replay:" "$logs/client.log" | tail -n 1)"
	fi
	replays_seen=${n:-0}
}

check_service() { # the client is acknowledged again
	local n0
	n0=$(lines "$acks")
	if ! wait_for 10 sh -c "[ \$(wc -l < '$acks') -gt $((n0 + 5)) ]"; then
		violation service "no increment acknowledged for 10 s after recovery"
		return 1
	fi
}

check_copies_during() { # while the fault's effects last
	local n
	n=$(answering)
	[ "${n:-0}" -le 1 ] || violation copies "$n copies of the guest answer after the fault"
	during_copies=${n:-0}
}

check_copies_after() {
	local n running=0 h
	for h in a b; do
		case $(vm_state "$h") in running | paused) running=$((running + 1)) ;; esac
	done
	n=$(answering)
	[ "$running" -eq 1 ] || violation copies "$running copies of the guest run after recovery"
	[ "${n:-0}" -eq 1 ] || violation copies "${n:-0} copies of the guest answer after recovery"
}

# Disk guest: a failover must resume it with disk and memory in agreement
# (it checks on its own when it resumes on a new host and reports on its
# console, which is in ha-receive's log). A fault without failover is
# followed by one (host P dies), so every fault's aftermath is checked.
# The resumed guest runs on the replica, outside ha-diskrepl, so the pair
# is rebuilt afterwards.
check_disk() {
	local off=$rx_off verdict running=0 h
	if [ "$outcome" != failover ]; then
		off=$(lines "$logs/receive-$S.log")
		sleep 1
		ns sw ip link set "sw-$P" down
		power_off "$P"
		ns sw ip link set "sw-$P" up
		if ! wait_for 10 sh -c "tail -n +$((off + 1)) '$logs/receive-$S.log' | grep -q 'FAILOVER complete'"; then
			violation disk "the verification failover did not complete"
			need_rebuild=1
			return
		fi
		outcome="$outcome+check"
	fi
	wait_for 10 sh -c "tail -n +$((off + 1)) '$logs/receive-$S.log' | grep -q 'disk: .* at sequence'"
	verdict=$(since "$logs/receive-$S.log" "$off" | grep -o "disk: .* at sequence [0-9]*" | tail -n 1)
	case $verdict in
	"disk: disk and memory agree"*) disk_checks=$((disk_checks + 1)) ;;
	"") violation disk "the resumed guest reported no disk check" ;;
	*) violation disk "the resumed guest reports: $verdict" ;;
	esac
	for h in a b; do
		case $(vm_state "$h") in running | paused) running=$((running + 1)) ;; esac
	done
	[ "$running" -eq 1 ] || violation copies "$running copies of the guest run after the failover"
	need_rebuild=1
}
disk_checks=0

# --- faults -----------------------------------------------------------------

heal_cmds=""
inject() { # KIND: injects the fault; sets heal_cmds (run later) and hold_ms
	local d
	heal_cmds="" hold_ms=0 fault_detail=""
	case $1 in
	kill-vmm) kill -9 $(pids_of "$P" ha-vm) 2>/dev/null ;;
	kill-protect) kill -9 $(pids_of "$P" ha-protect) 2>/dev/null ;;
	kill-receive) kill -9 $(pids_of "$S" ha-receive) 2>/dev/null ;;
	link-primary | link-secondary)
		[ "$1" = link-primary ] && d=$P || d=$S
		ns sw ip link set "sw-$d" down
		heal_cmds="ns sw ip link set sw-$d up"
		rand 100 2000
		hold_ms=$r
		;;
	drop-to-secondary)
		ns "$P" iptables -w -I OUTPUT -d "$(ip_of "$S")" -j DROP
		heal_cmds="ns $P iptables -w -D OUTPUT -d $(ip_of "$S") -j DROP"
		rand 100 2000
		hold_ms=$r
		;;
	drop-to-primary)
		ns "$S" iptables -w -I OUTPUT -d "$(ip_of "$P")" -j DROP
		heal_cmds="ns $S iptables -w -D OUTPUT -d $(ip_of "$P") -j DROP"
		rand 100 2000
		hold_ms=$r
		;;
	slow-link)
		rand 1 8
		ns "$P" tc qdisc add dev "${P}0" root tbf rate "${r}00kbit" burst 16kb latency 200ms
		heal_cmds="ns $P tc qdisc del dev ${P}0 root"
		fault_detail="${r}00 kbit/s"
		rand 1000 3000
		hold_ms=$r
		;;
	bitflip) kill -USR1 $(pids_of "$S" fault-relay) 2>/dev/null ;;
	stop-partition)
		# The operator stops protection (SIGTERM, as ha-ctl stop or
		# systemd) while P and S cannot reach each other: END cannot be
		# confirmed, so P must claim "alone" at the witness before it
		# releases held output, and S must stand down, not activate.
		ns "$P" iptables -w -I OUTPUT -d "$(ip_of "$S")" -j DROP
		ns "$S" iptables -w -I OUTPUT -d "$(ip_of "$P")" -j DROP
		heal_cmds="ns $P iptables -w -D OUTPUT -d $(ip_of "$S") -j DROP; ns $S iptables -w -D OUTPUT -d $(ip_of "$P") -j DROP"
		sleep 0.2
		kill -TERM $(pids_of "$P" ha-protect) 2>/dev/null
		rand 1000 3000
		hold_ms=$r
		;;
	slow-flush)
		# The disk device's flush is slow: P's ha-diskrepl (the guest's
		# disk and its replication) stops for 0.3 to 1.5 s, so
		# ha-protect's flush of each epoch waits, with the guest's disk
		# I/O. The guest must not stay paused meanwhile (devset), and
		# the pair carries on; check_disk then fails over and compares.
		kill -STOP $(pids_of "$P" ha-diskrepl) 2>/dev/null
		heal_cmds="kill -CONT \$(pids_of $P ha-diskrepl)"
		rand 300 1500
		hold_ms=$r
		;;
	restart-witness)
		# The witness host restarts: kill -9, back after 0.1 to 2 s with
		# its memory empty (it grants nothing for --max-ttl after its
		# start). The pair stays protected and takes the lease again.
		$witness || return 0
		kill -9 $(pids_of w ha-witness) 2>/dev/null
		heal_cmds="witness_start"
		rand 100 2000
		hold_ms=$r
		;;
	hammer)
		# The secondary is lost while unauthenticated clients hammer its
		# listener; they go on until the pair is protected again, so the
		# primary must win the restarted secondary's session slot
		# against them.
		hammer_start "$S"
		sleep 1
		kill -9 $(pids_of "$S" ha-receive) 2>/dev/null
		;;
	disk-full)
		dd if=/dev/zero of="$disk/jfs/filler" bs=64k 2>/dev/null
		heal_cmds="rm -f $disk/jfs/filler"
		rand 300 2000
		hold_ms=$r
		;;
	esac
}

# Watches for WAIT_MS: fences the old primary (FENCE=harness) the moment the
# secondary announces a failover, and heals the fault after hold_ms. Then,
# with a witness, waits (at most 10 s) until a secondary that lost the
# primary has decided: activated, or stood down.
watch() {
	local until=$(($(now_ms) + $1)) healed=0 tnow
	while :; do
		tnow=$(now_ms)
		if [ "$FENCE" = harness ] && [ "$fenced" = 0 ] &&
			since "$logs/receive-$S.log" "$rx_off" | grep -q "FAILOVER:"; then
			if [ -n "$(ip netns pids "${PREFIX}$P")" ]; then
				power_off "$P"
				fenced=1
				log "fenced $P after the failover announcement"
			fi
		fi
		if [ "$healed" = 0 ] && [ "$tnow" -ge $((t_inject + hold_ms)) ]; then
			[ -n "$heal_cmds" ] && eval "$heal_cmds"
			healed=1
		fi
		[ "$healed" = 1 ] && [ "$tnow" -ge "$until" ] && break
		sleep 0.05
	done
	$witness && wait_for 10 sh -c "! ip netns exec ${PREFIX}$S env HA_RUN_DIR=$run/$S \
		$bin/ha-ctl status web 2>/dev/null | grep -q 'state: fencing'"
}

# --- the run ----------------------------------------------------------------

declare -A tried failovers reprotects fences stooddown viols
for k in $ALL_KINDS; do tried[$k]=0 failovers[$k]=0 reprotects[$k]=0 fences[$k]=0 stooddown[$k]=0 viols[$k]=0; done
rebuilds=0
topo_up
$witness && { witness_up || { echo "faults: ha-witness did not start"; exit 1; }; }
fault=0
if ! rebuild; then
	echo "faults: the first protected pair did not come up"
	for h in a b; do ctl "$h" kvm:web; ctl "$h" web; done
	for f in "$logs"/*.log; do echo "--- $f"; tail -n 20 "$f"; done
	exit 1
fi
kinds=($KINDS)
t_run=$(now_ms)
printf '%4s %-18s %-5s %-10s %-9s %-6s %s\n' "#" kind host outcome recovery copies "violations"
for fault in $(seq 1 "$N"); do
	kind=${kinds[$((RANDOM % ${#kinds[@]}))]}
	rand 300 1500
	pre_ms=$r
	fault_viol=0 viol_note="" fenced=0 during_copies=-
	sleep "$((pre_ms / 1000)).$(printf %03d $((pre_ms % 1000)))"
	# Faults go into a protected pair only: one that lost its protection
	# on its own since the last check (a stall longer than the down timer)
	# is rebuilt, and that counts against the run.
	if ! wait_for 20 protected; then
		violations=$((violations + 1))
		echo "     VIOLATION: reprotect the pair lost its protection before fault $fault without a fault; rebuilding"
		log "VIOLATION: the pair is not protected before fault $fault"
		rebuilds=$((rebuilds + 1))
		rebuild || { echo "faults: the pair cannot be rebuilt; stopping"; break; }
		checked_lines=0 ack_shift=0
	fi
	for f in "$logs"/*.log; do echo "$(basename "$f") $(lines "$f")"; done > "$out/offsets.$fault"
	rx_off=$(lines "$logs/receive-$S.log")
	px_off=$(lines "$logs/protect-$P.log")
	declare -A pxoff=([a]=$(lines "$logs/protect-a.log") [b]=$(lines "$logs/protect-b.log"))
	acks_off=$(lines "$acks")
	log "fault $fault: $kind (primary $P, secondary $S)"
	t_inject=$(now_ms)
	inject "$kind"
	# With a witness, a failover also waits for the old primary's lease.
	watch $((hold_ms + 2 * TIMEOUT + 1500 + ${witness_wait:-0}))
	tried[$kind]=$((tried[$kind] + 1))

	# What happened.
	outcome=none
	if since "$logs/receive-$S.log" "$rx_off" | grep -q "FAILOVER complete"; then
		outcome=failover
	elif since "$logs/receive-$S.log" "$rx_off" | grep -q "FAILOVER:"; then
		outcome=failover-failed
	elif since "$logs/protect-$P.log" "$px_off" | grep -q "DEGRADED"; then
		outcome=degraded
	elif ! alive "$P" ha-protect || ! alive "$S" ha-receive; then
		outcome=process-lost
	fi
	host=$P
	# With a witness the product fences (FENCE=witness: ha-receive's fence
	# command), and a secondary stands down when it sees the primary renew
	# its lease or the witness tells it that the primary runs without it.
	if [ "$FENCE" = witness ] && since "$logs/receive-$S.log" "$rx_off" | grep -q " is fenced"; then
		fenced=1
	fi
	[ "$fenced" = 1 ] && fences[$kind]=$((fences[$kind] + 1))
	if since "$logs/receive-$S.log" "$rx_off" | grep -q "still renews its lease\|ran without this secondary"; then
		stooddown[$kind]=$((stooddown[$kind] + 1))
		[ "$outcome" = none ] || [ "$outcome" = degraded ] && outcome=stood-down
	fi
	if [ "$GUEST" = counter ]; then
		check_copies_during
		check_acks
		check_replays
	fi

	# Recovery: back to one protected pair.
	recovery=ok
	if [ "$GUEST" = disk ] && [ "$outcome" = failover ]; then
		failovers[$kind]=$((failovers[$kind] + 1))
		recovery=checked # no failback with a replicated disk: rebuilt below
	elif [ "$outcome" = failover ]; then
		failovers[$kind]=$((failovers[$kind] + 1))
		old=$P P=$S S=$old
		start_secondary "$S"
		start_primary "$P"
	else
		case $(vm_state "$P") in running | paused) ;; *) recovery=lost-guest ;; esac
		if [ "$recovery" = ok ]; then
			if ! alive "$P" ha-protect; then
				start_secondary "$S"
				start_primary "$P"
			elif ! protected; then
				# ha-protect retries by itself; the secondary is rebuilt
				# unless it is already waiting for a primary.
				ctl "$S" web | grep -q "state: waiting\|state: syncing\|state: protected" ||
					start_secondary "$S"
			fi
		fi
	fi
	if [ "$recovery" = ok ] && ! wait_for 40 protected; then
		recovery=failed
	fi
	hammer_stop
	n_prot=$(since "$logs/protect-$P.log" "${pxoff[$P]}" | grep -c "PROTECTED: checkpointing")
	if [ "$recovery" = ok ] && [ "$n_prot" -gt 0 ]; then
		reprotects[$kind]=$((reprotects[$kind] + 1))
		recovery=reprotected
	fi
	case $recovery in
	lost-guest) violation service "no copy of the guest runs any more" ;;
	failed)
		violation reprotect "the pair did not return to protected within 40 s"
		[ "$GUEST" = counter ] && check_copies_after
		;;
	*)
		if [ "$GUEST" = counter ]; then
			check_service
			check_acks
			check_replays
			check_copies_after
		else
			check_disk
		fi
		;;
	esac
	viols[$kind]=$((viols[$kind] + fault_viol))
	printf '%4d %-18s %-5s %-10s %-11s %-6s %s\n' "$fault" "$kind" "$host" "$outcome" "$recovery" \
		"$during_copies" "${fault_viol}${viol_note:+ ($viol_note )}"
	if [ "$fault_viol" -gt 0 ]; then
		# Keep what this fault logged, then start over from a clean pair.
		d=$out/fault-$fault-$kind
		mkdir -p "$d"
		while read -r f off; do since "$logs/$f" "$off" > "$d/$f"; done < "$out/offsets.$fault"
		since "$acks" "$acks_off" > "$d/acks"
		for h in a b; do ctl "$h" kvm:web; ctl "$h" web; done > "$d/status" 2>&1
		rebuilds=$((rebuilds + 1))
		log "rebuilding the pair after a violation"
		rebuild || { echo "faults: the pair cannot be rebuilt; stopping"; break; }
		checked_lines=0 ack_shift=0 need_rebuild=0
	fi
	if [ "${need_rebuild:-0}" = 1 ]; then
		need_rebuild=0
		rebuild || { echo "faults: the pair cannot be rebuilt; stopping"; break; }
	fi
	rm -f "$out/offsets.$fault"
done
t_end=$(now_ms)
[ -n "${client_pid:-}" ] && kill "$client_pid" 2>/dev/null
[ -n "${client_pid:-}" ] && wait "$client_pid" 2>/dev/null
total_acks=0
for f in "$out"/acks.*; do total_acks=$((total_acks + $(lines "$f"))); done

echo
# fenced: by ha-receive's fence command (FENCE=witness) or by the harness
# (FENCE=harness); stood-down: the secondary lost the primary
# but learnt from the witness that the primary still serves, and
# discarded its copy (witness).
printf '%-18s %6s %9s %12s %7s %10s %10s\n' kind tried failovers reprotected fenced stood-down violations
t_tried=0 t_fo=0 t_rp=0 t_fe=0 t_sd=0
for k in $ALL_KINDS; do
	case " $KINDS " in *" $k "*) ;; *) continue ;; esac
	printf '%-18s %6d %9d %12d %7d %10d %10d\n' "$k" "${tried[$k]}" "${failovers[$k]}" "${reprotects[$k]}" \
		"${fences[$k]}" "${stooddown[$k]}" "${viols[$k]}"
	t_tried=$((t_tried + tried[$k])) t_fo=$((t_fo + failovers[$k]))
	t_rp=$((t_rp + reprotects[$k])) t_fe=$((t_fe + fences[$k])) t_sd=$((t_sd + stooddown[$k]))
done
printf '%-18s %6d %9d %12d %7d %10d %10d\n' total "$t_tried" "$t_fo" "$t_rp" "$t_fe" "$t_sd" "$violations"
if [ "$GUEST" = disk ]; then
	echo "faults: $t_tried faults in $(((t_end - t_run) / 1000)) s, $disk_checks resumed guests found disk and memory in agreement, $rebuilds rebuilds after violations, invariant violations: $violations"
else
	echo "faults: $t_tried faults in $(((t_end - t_run) / 1000)) s, $total_acks increments acknowledged, $rebuilds rebuilds after violations, invariant violations: $violations"
fi
if [ "$violations" -ne 0 ]; then
	echo "faults: FAILED; logs kept in $out (fault-*/ hold each failing fault's part)"
	echo "faults: replay with: $replay"
	exit 1
fi
if [ "$KEEP" != 1 ]; then
	mountpoint -q "$disk/jfs" && umount "$disk/jfs"
	rm -rf "$out"
fi
exit 0
