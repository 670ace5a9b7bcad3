#!/bin/sh
# Machine-readable status and metrics (docs/monitoring.md) from the daemons
# that run without a guest: two ha-diskrepl disks, one written through NBD
# (qemu-io) and kept with --bitmap, an ha-witness holding two leases, one
# of them marked stale, and an ha-receive started for its domain, waiting
# for a primary. Every JSON status must follow the documented
# schema (jq), every metrics output must pass `promtool check metrics`, alone
# and merged by `ha-ctl metrics --all`, which also writes a file for
# node_exporter's textfile collector atomically. ha-protect and ha-receive
# are checked the same way, during protection and after a failover, in
# failover_counter.sh.
PREFIX=hamon$$-
. "$(dirname "$0")/lib.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
tmp=$(mktemp -d)
trap 'ns_cleanup; rm -rf "$tmp"' EXIT
need_root
for t in jq promtool qemu-io bash; do
	command -v $t >/dev/null || skip "$t is not installed (scripts/install-deps.sh)"
done
export HA_RUN_DIR="$tmp/run"
ip netns add "${PREFIX}w"
ns w ip link set lo up

truncate -s 8M "$tmp/d0.img" "$tmp/d1.img"
"$bin/ha-diskrepl" --name d0 --image "$tmp/d0.img" --bitmap "$tmp/d0.bitmap" 2> "$tmp/d0.log" &
"$bin/ha-diskrepl" --name d1 --image "$tmp/d1.img" 2> "$tmp/d1.log" &
ip netns exec "${PREFIX}w" env HA_RUN_DIR="$tmp/run" "$bin/ha-witness" --insecure \
	--listen 127.0.0.1:7821 --max-ttl 1000 --state "$tmp/w.state" 2> "$tmp/w.log" &
# A secondary named for its domain has its socket before any primary.
ip netns exec "${PREFIX}w" env HA_RUN_DIR="$tmp/run" "$bin/ha-receive" --insecure \
	--listen 127.0.0.1:7822 --domain web 2> "$tmp/rx.log" &
wait_for 10 test -S "$tmp/run/ha-diskrepl/d0.sock" -a -S "$tmp/run/ha-diskrepl/d1.sock" -a \
	-S "$tmp/run/ha-witness/witness.sock" -a -S "$tmp/run/ha-receive/web.sock" || { echo "FAIL: the daemons did not start"; cat "$tmp"/*.log; exit 1; }
qemu-io -f raw -c "write -P 7 0 192k" "nbd+unix:///d0?socket=$tmp/run/ha-diskrepl/d0.nbd" > /dev/null

# lease PAIR HOLDER [CLAIM]: one request to the witness; prints the answer.
lease() {
	ns w bash -c 'exec 3<>/dev/tcp/127.0.0.1/7821 && printf "%s\n" "$1" >&3 && head -n 1 <&3' \
		_ "LEASE $1 $2 1000${3:+ $3 00000000000000aa 1}"
}
sleep $((1 * TS)) # the witness grants nothing for --max-ttl after its start
g1=$(lease web primary)
g2=$(lease db primary alone)
check "the witness grants the leases" sh -c "case '$g1$g2' in GRANTED*GRANTED*) true ;; *) false ;; esac"

ctl() { "$bin/ha-ctl" "$@"; }
js() { jq -e "$@" > /dev/null; }

# The documented schema (docs/monitoring.md), as jq expressions.
disk_schema='(.role == "disk") and (.disk|type == "string") and (.image|type == "string")
	and (.state|IN("detached","resynchronising","mirroring"))
	and (.base_known|type == "boolean")
	and (.bitmap_file|type == "string" or . == null)
	and ([.size_bytes, .resync_pending_bytes, .resync.total_bytes, .resync.done_bytes,
	      .unacknowledged_writes, .writes, .write_bytes, .mirrored_bytes, .attaches,
	      .barriers, .commits]|all(type == "number"))'
witness_schema='(.role == "witness") and (.state|IN("quiet","serving"))
	and (.quiet_seconds|type == "number")
	and (.leases|type == "number") and (.lease|type == "object")
	and (.lease|to_entries|all(.value|(.lease_holder|IN("none","primary","secondary"))
	     and (.lease_remaining_seconds|type == "number")
	     and (.lease_generation|type == "number") and (.lease_stale|type == "boolean")))'

ctl status --json disk:d0 > "$tmp/d0.json"
check "disk d0's JSON status follows the schema" js "$disk_schema" "$tmp/d0.json"
check "it counts the guest's write" js '.writes == 1 and .write_bytes == 196608' "$tmp/d0.json"
check "and names its bitmap file" js ".bitmap_file == \"$tmp/d0.bitmap\"" "$tmp/d0.json"
ctl status --json disk:d1 > "$tmp/d1.json"
check "disk d1's too (no bitmap file: null)" js "($disk_schema) and .bitmap_file == null" "$tmp/d1.json"
ctl status --json witness > "$tmp/w.json"
check "the witness's JSON status follows the schema" js "$witness_schema" "$tmp/w.json"
check "it shows both leases, db stale" \
	js '.leases == 2 and .lease.web.lease_holder == "primary" and .lease.db.lease_stale and (.lease.web.lease_stale|not)' "$tmp/w.json"
ctl status --json web > "$tmp/rx.json"
check "ha-receive --domain: its JSON status, waiting, before any primary" \
	js "($SCHEMA_RECEIVE) and .state == \"waiting\" and .domain == \"web\" and .committed_epoch == null" "$tmp/rx.json"
ctl status --json --all > "$tmp/all.json"
check "status --json --all: an array of the four" js 'length == 4 and all(.role|IN("disk","witness","secondary"))' "$tmp/all.json"

for d in web disk:d0 disk:d1 witness; do
	ctl metrics $d > "$tmp/m.prom"
	check "promtool accepts the metrics of $d" promtool check metrics < "$tmp/m.prom"
done
check "ha_witness_lease_stale is 1 for db" grep -qx 'ha_witness_lease_stale{pair="db"} 1' "$tmp/m.prom"
ctl metrics --all --output "$tmp/ha.prom"
check "metrics --all merged: promtool accepts it" promtool check metrics < "$tmp/ha.prom"
check "one HELP per family, both disks' samples under it" \
	sh -c "[ \$(grep -c '^# HELP ha_diskrepl_writes_total ' '$tmp/ha.prom') = 1 ] &&
		grep -q '^ha_diskrepl_writes_total{disk=\"d0\"} 1\$' '$tmp/ha.prom' &&
		grep -q '^ha_diskrepl_writes_total{disk=\"d1\"} 0\$' '$tmp/ha.prom'"
check "--output leaves no temporary file" sh -c "! ls '$tmp'/ha.prom.tmp.* 2>/dev/null"
check "promtool accepts the example alert rules" sh -c \
	"promtool check rules '$(dirname "$0")/../../docs/examples/ha-protect-alerts.yml' > /dev/null"
ctl list > "$tmp/list"
check "list: one line per daemon with its state" \
	sh -c "grep -q '^ha-diskrepl *d0 *detached\$' '$tmp/list' && grep -q '^ha-diskrepl *d1 *detached\$' '$tmp/list' && grep -q '^ha-witness *witness *serving\$' '$tmp/list'"
check "status without a domain is a usage error" sh -c "'$bin/ha-ctl' status --json 2>/dev/null; [ \$? = 2 ]"
check "metrics of a daemon that does not run: exit 1" sh -c "'$bin/ha-ctl' metrics disk:nope 2>/dev/null; [ \$? = 1 ]"

for d in web disk:d0 disk:d1 witness; do ctl stop $d > /dev/null; done
wait
check "no sanitizer report" sh -c "! grep -q Sanitizer '$tmp'/*.log"
[ "$fails" -eq 0 ] || tail -n 20 "$tmp"/*.log
[ "$fails" -eq 0 ]
