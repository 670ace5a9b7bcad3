#!/bin/sh
# An external device for ha-protect (docs/devices.md): a floating IP
# address that belongs to the host where the domain runs. Called as
#   floating-ip.sh PHASE OPERATION DOMAIN PEER EPOCH
# (the same values in HA_DEVICE_PHASE, HA_DEVICE_OP, HA_DOMAIN, HA_PEER,
# HA_EPOCH). Exit 0: done; anything else (or the timeout) calls the
# operation off, and every device that passed a phase gets rollback.
#
# Set FLOATING_IP and FLOATING_DEV (e.g. in the unit's environment), and
# let this host reach the peer's root over ssh (the key in PEER_SSH_KEY).
set -u
phase=$1 op=$2 domain=$3 peer=$4 epoch=$5
ip=${FLOATING_IP:-192.0.2.100/24}
dev=${FLOATING_DEV:-eth0}
peer_host=${peer%:*}
ssh_peer() { ssh -o BatchMode=yes -o ConnectTimeout=3 ${PEER_SSH_KEY:+-i "$PEER_SSH_KEY"} \
	"root@$peer_host" "$@"; }
has_ip() { ip -o addr show dev "$dev" | grep -q " ${ip%/*}/"; }

echo "floating-ip: $phase of the $op of $domain (peer $peer, epoch $epoch)"
case "$op:$phase" in
protect:check | protect:prepare | protect:release)
	# Nothing to do while the domain is protected here; no per-epoch calls
	# (a device that wanted them would print "per-epoch" in its check).
	exit 0 ;;
switchover:check | migrate:check)
	# The peer must be able to take the address.
	ssh_peer "ip link show dev $dev" >/dev/null ;;
switchover:prepare | migrate:prepare)
	# Nothing to take yet: the domain still runs here.
	exit 0 ;;
switchover:transfer | migrate:transfer)
	# The domain is suspended here: the address leaves this host.
	if has_ip; then ip addr del "$ip" dev "$dev"; fi ;;
switchover:commit | migrate:commit)
	# The peer holds the domain's last state: it takes the address, and
	# tells its neighbours.
	ssh_peer "ip addr replace $ip dev $dev && arping -c 2 -U -I $dev ${ip%/*} >/dev/null 2>&1; true" ;;
switchover:rollback | migrate:rollback)
	# Called off: the address comes back here, and leaves the peer if the
	# commit got that far (HA_DEVICE_PASSED says which phase this device
	# passed last).
	if [ "${HA_DEVICE_PASSED:-none}" = commit ]; then
		ssh_peer "ip addr del $ip dev $dev" 2>/dev/null
	fi
	has_ip || ip addr add "$ip" dev "$dev" ;;
failover:check | failover:prepare)
	# On the secondary, before its copy runs: the primary is fenced.
	ip link show dev "$dev" >/dev/null ;;
failover:transfer)
	exit 0 ;;
failover:commit)
	ip addr replace "$ip" dev "$dev" && { arping -c 2 -U -I "$dev" "${ip%/*}" >/dev/null 2>&1; true; } ;;
failover:rollback)
	ip addr del "$ip" dev "$dev" 2>/dev/null; exit 0 ;;
*)
	echo "floating-ip: unknown call $op $phase" >&2
	exit 1 ;;
esac
