# The HA test topology, sourced after lib.sh (PREFIX set):
#
#   namespace a (primary)      namespace b (secondary)     namespace c (client)
#   ha-vm web on tapa           ha-receive, incoming ha-vm   ha-client
#   bra: tapa + a0 10.66.0.1    brb: tapb + b0 10.66.0.2     c0 10.66.0.3
#            \__________________ namespace sw: br0 ______________/
#
# The guest (counter) is 10.66.0.100 with a fixed MAC on whichever host runs it.
GUEST_IP=10.66.0.100
GUEST_MAC=52:54:00:aa:00:01

topo_up() {
	for n in sw a b c; do ip netns add "${PREFIX}$n"; done
	ns sw ip link add br0 type bridge
	ns sw ip link set br0 up
	for h in a b c; do
		ns sw ip link add "sw-$h" type veth peer name "${h}0" netns "${PREFIX}$h"
		ns sw ip link set "sw-$h" master br0 up
		ns "$h" ip link set lo up
		ns "$h" ip link set "${h}0" up
	done
	for h in a b; do
		ns "$h" ip link add "br$h" type bridge
		ns "$h" ip tuntap add "tap$h" mode tap
		ns "$h" ip link set "${h}0" master "br$h"
		ns "$h" ip link set "tap$h" master "br$h" up
		ns "$h" ip link set "br$h" up
	done
	ns a ip addr add 10.66.0.1/24 dev bra
	ns b ip addr add 10.66.0.2/24 dev brb
	ns c ip addr add 10.66.0.3/24 dev c0
}

# Host w (10.66.0.4) on the switch, for a witness: a partition of a or b
# (or of the path between them) leaves it reachable from the other side.
WITNESS_IP=10.66.0.4
topo_witness_host() {
	ip netns add "${PREFIX}w"
	ns sw ip link add sw-w type veth peer name w0 netns "${PREFIX}w"
	ns sw ip link set sw-w master br0 up
	ns w ip link set lo up
	ns w ip link set w0 up
	ns w ip addr add "$WITNESS_IP/24" dev w0
}

# Host A dies: its link first (a dead host sends no FIN or RST), then
# every process in it.
kill_host_a() {
	ns sw ip link set sw-a down
	ip netns pids "${PREFIX}a" | xargs -r kill -9
}
