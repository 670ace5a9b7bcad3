#!/bin/sh
# End to end: failover, failback and a switchover back, with a replicated
# disk. A counter guest with a disk (it writes sequence-numbered blocks
# there and checks disk against memory after every move) runs on host A
# through ha-diskrepl, protected to host B, whose replica is served after
# activation (ha-receive --disk IMAGE,serve=d0). A client increments the
# counter throughout. Host A dies: B fails over, the guest finds disk and
# memory in agreement. Host A comes back: its old image becomes the
# replica (ha-receive --disk A.img,serve=d0), and B protects the guest to
# it (ha-protect --disk d0). A's image is no complete copy of what B runs:
# it may hold writes B never committed, which A's bitmap file (kept by its
# ha-diskrepl, --bitmap) marks; A's ha-receive (bitmap=) asks for those
# chunks, and B resends them with what it wrote since the failover: an
# incremental copy. `ha-ctl switchover` on B brings the guest back to A,
# where the guest again finds disk and memory in agreement. No
# acknowledged increment is lost, and A's image agrees with B's, the disk
# B stopped with, except in blocks the guest wrote on A after the
# switchover (newer sequence numbers).
# needs: kvm (ha-vm guests; tests/run.sh runs it in the KVM lab where /dev/kvm is missing)
PREFIX=hafb-
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/topology.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
tmp=$(mktemp -d)
trap 'ns_cleanup; [ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
need_root
[ -w /dev/kvm ] || skip "/dev/kvm is missing: ha-vm cannot run here"
gen="$(dirname "$0")/../../scripts/tls-gen.sh"
sh "$gen" psk "$tmp/psk" pair || { echo "FAIL cannot make a pre-shared key"; exit 1; }

dir=$tmp/run
mkdir -p "$dir"
ns_cleanup
topo_up
truncate -s 8M "$dir/a.img"

t0=$(date +%s)
phase() { echo "     [$(($(date +%s) - t0)) s] $*"; }
dump_logs() {
	for f in drl vm px rx px2 rx2; do echo "--- $f.log"; tail -n 20 "$dir/$f.log" 2>/dev/null; done
}
# The guest's disk checks, on the console of the VM the named log's
# ha-receive ran.
agree() { grep -a -o 'disk and memory agree at sequence [0-9]*' "$1" | awk '{print $NF}' | tail -n 1; }

# --- A protects the guest to B -----------------------------------------
ns b env HA_RUN_DIR="$dir/b" HA_VM_ARGS="--tap tapb" \
	"$bin/ha-receive" --tls-psk "$tmp/psk" --listen 10.66.0.2:7788 --timeout $(ms 150) \
	--disk "$dir/b.img,serve=d0,bitmap=$dir/b.bitmap" > "$dir/rx.log" 2>&1 &
rxpid=$!
wait_for 20 grep -q 'listening on' "$dir/rx.log" || { cat "$dir/rx.log"; exit 1; }
ns a env HA_RUN_DIR="$dir/a" "$bin/ha-diskrepl" --name d0 --image "$dir/a.img" \
	--bitmap "$dir/a.bitmap" > "$dir/drl.log" 2>&1 &
wait_for 10 test -S "$dir/a/ha-diskrepl/d0.nbd" || { cat "$dir/drl.log"; exit 1; }
ns a env HA_RUN_DIR="$dir/a" "$bin/ha-vm" run --name web --mem 32M --guest counter \
	--disk "nbd:unix:$dir/a/ha-diskrepl/d0.nbd" --tap tapa --ip "$GUEST_IP/24" \
	--mac "$GUEST_MAC" > "$dir/vm.log" 2>&1 &
wait_for 10 test -S "$dir/a/ha-vm/web.sock" || { cat "$dir/vm.log"; exit 1; }
ns a env HA_RUN_DIR="$dir/a" "$bin/ha-protect" --tls-psk "$tmp/psk" -i 50 --timeout $(ms 150) \
	--disk d0 kvm:web 10.66.0.2:7788 > "$dir/px.log" 2>&1 &
wait_for 30 grep -q "PROTECTED:" "$dir/px.log" || { dump_logs; exit 1; }
ns c "$bin/ha-client" counter "$GUEST_IP:7000" --name c1 --interval 2 --timeout 100 \
	--duration 600 > "$dir/acks" 2> "$dir/client.log" &
wait_for 20 sh -c "[ \$(wc -l < '$dir/acks') -gt 10 ]"
sleep 2
phase "protected; the client counts"

# --- host A dies; B fails over ------------------------------------------
kill_host_a
t_kill=$(wc -l < "$dir/acks")
wait_for 20 grep -q -e 'FAILOVER complete' -e 'cannot be resumed' "$dir/rx.log"
check "B failed over" grep -q 'FAILOVER complete' "$dir/rx.log"
check "... serving its replica as d0" grep -q 'is served as d0 by ha-diskrepl' "$dir/rx.log"
wait_for 10 grep -q 'disk and memory agree' "$dir/rx.log"
s1=$(agree "$dir/rx.log")
check "the guest on B finds disk and memory in agreement (sequence ${s1:-?})" test -n "$s1"
wait_for 20 sh -c "! kill -0 $rxpid 2>/dev/null"
wait $rxpid
rc=$?
check "ha-receive exits 3: the domain runs on B ($rc)" test "$rc" -eq 3
wait_for 20 sh -c "[ \$(wc -l < '$dir/acks') -gt $((t_kill + 10)) ]"

# --- A comes back as the secondary; B protects the guest to it ---------
phase "failed over to B"
ns sw ip link set sw-a up
ns a env HA_RUN_DIR="$dir/a" HA_VM_ARGS="--tap tapa" \
	"$bin/ha-receive" --tls-psk "$tmp/psk" --listen 10.66.0.1:7788 --timeout $(ms 150) \
	--disk "$dir/a.img,serve=d0,bitmap=$dir/a.bitmap" > "$dir/rx2.log" 2>&1 &
rxpid=$!
wait_for 20 grep -q 'listening on' "$dir/rx2.log" || { dump_logs; exit 1; }
ns b env HA_RUN_DIR="$dir/b" "$bin/ha-protect" --tls-psk "$tmp/psk" -i 50 --timeout $(ms 150) \
	--disk d0 kvm:web 10.66.0.1:7788 > "$dir/px2.log" 2>&1 &
pxpid=$!
wait_for 60 grep -q "PROTECTED:" "$dir/px2.log" || { echo "FAIL B does not protect the guest to A"; dump_logs; exit 1; }
check "B protects the guest to A" grep -q "PROTECTED:" "$dir/px2.log"
check "... A's old image asked for the chunks it may hold that B never had" \
	sh -c "grep -q 'old primary image' '$dir/rx2.log' && grep -q 'resending [0-9]* chunks' '$dir/px2.log'"
synced=$(grep -a 'disk 0: attached' "$dir/px2.log" | tail -n 1 | sed -n 's/.*incremental resynchronisation of \([0-9]*\) KiB.*/\1/p')
check "... then resynchronised incrementally (${synced:-?} KiB of 8192)" \
	test -n "$synced" -a "${synced:-8192}" -lt 8192
phase "B protects the guest to A"
sleep 2
back=$(wc -l < "$dir/acks")
ns b env HA_RUN_DIR="$dir/b" "$bin/ha-ctl" switchover kvm:web > "$dir/sw.out" 2>&1
check "ha-ctl switchover is taken on B" grep -q '^ok:' "$dir/sw.out"
wait_for 60 grep -q -e 'SWITCHOVER complete' -e 'SWITCHOVER FAILED' -e 'SWITCHOVER UNCONFIRMED' \
	-e 'switchover of web aborted' "$dir/px2.log"
check "B handed the guest back to A" grep -q 'SWITCHOVER complete' "$dir/px2.log"
check "A runs it again, its image served as d0" sh -c "grep -q 'SWITCHOVER complete' '$dir/rx2.log' &&
	grep -q 'is served as d0 by ha-diskrepl' '$dir/rx2.log'"
wait_for 20 sh -c "! kill -0 $pxpid 2>/dev/null"
wait $pxpid
rc=$?
check "B's ha-protect exits 0 ($rc)" test "$rc" -eq 0
wait_for 20 sh -c "! kill -0 $rxpid 2>/dev/null"
wait $rxpid
rc=$?
check "A's ha-receive exits 3 ($rc)" test "$rc" -eq 3
phase "switched back over to A"
# B's image stopped at the switchover's checkpoint; A's is that disk plus
# what the guest wrote since, all of it newer than anything on B.
top=$(od -An -v -t u8 -w4096 -N 4194304 "$dir/b.img" | awk '$2 > m { m = $2 } END { print m + 0 }')
cmp -l "$dir/a.img" "$dir/b.img" | awk '{print int(($1 - 1) / 4096)}' | uniq > "$dir/differ"
od -An -v -t u8 -w4096 -N 4194304 "$dir/a.img" | awk '{print NR - 1, $2}' > "$dir/a.seq"
bad=$(awk -v top="$top" 'NR == FNR { s[$1] = $2; next }
	s[$1] <= top { print "     block " $1 " differs: A holds sequence " s[$1] ", B newest " top > "/dev/stderr"; n++ }
	END { print n + 0 }' "$dir/a.seq" "$dir/differ")
same=$((1024 - $(wc -l < "$dir/differ")))
echo "     B's disk stopped at sequence $top; since, the guest on A rewrote $(wc -l < "$dir/differ") of its 1024 blocks ($bad with an older sequence), $same are as on B"
check "A's image holds B's disk, plus only newer writes" test "$bad" -eq 0 -a "$same" -gt 0
wait_for 10 grep -q 'disk and memory agree' "$dir/rx2.log"
s2=$(agree "$dir/rx2.log")
check "the guest on A finds disk and memory in agreement (sequence ${s2:-?})" test -n "$s2"
check "no MISMATCH reported on either host" sh -c "! grep -q MISMATCH '$dir/rx.log' '$dir/rx2.log'"
sleep $((3 + 2 * TS))
ip netns pids "${PREFIX}c" | xargs -r kill
after=$(wc -l < "$dir/acks")


echo "     acks: $t_kill before the failover, $((back - t_kill)) on B, $((after - back)) back on A"
check "the guest answered from A after the switchover back" test "$after" -gt "$((back + 10))"
check "no acknowledged increment lost (value == request id)" \
	awk '$2 != $3 { print "     lost: " $0; bad = 1 } END { exit bad }' "$dir/acks"
grep -a -o 'downtime [0-9]* ms' "$dir/px2.log" | sed 's/^/     switchover back: /'
grep -a -o -e 'resending .*' -e 'disk 0: attached.*' "$dir/px2.log" | sed 's/^/     failback: /'
gap=$(awk 'NR > 1 && $5 - t > m { m = $5 - t } { t = $5 } END { print m + 0 }' "$dir/acks")
echo "     longest silence the client saw (failover, failback, switchover): ${gap} ms"
[ "$fails" -eq 0 ] || dump_logs
[ "$fails" -eq 0 ]
