#!/bin/sh
# The replica is exactly the primary's disk as of the last acknowledged
# epoch. A real NBD client (qemu-io) writes a logged sequence of patterns
# through ha-diskrepl on host A while the domain is protected to host B over
# TCP; host A dies mid-epoch. After the failover B's replica must equal,
# byte for byte, the initial image with a prefix of the log applied (epochs
# are all or nothing), and that prefix must hold every write that completed
# well before the kill (those epochs were acknowledged).
# needs: kvm (ha-vm guests; tests/run.sh runs it in the KVM lab where /dev/kvm is missing)
PREFIX=hadr-
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/topology.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
tmp=$(mktemp -d)
trap 'ns_cleanup; [ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
need_root
[ -w /dev/kvm ] || skip "/dev/kvm is missing: ha-vm cannot run here"
command -v qemu-io >/dev/null || skip "qemu-io (qemu-utils) is not installed"
command -v stdbuf >/dev/null || skip "stdbuf (coreutils) is missing"
command -v openssl >/dev/null || skip "openssl (to make the link's key) is not installed"
# The disk records travel inside the TLS link, like the memory.
sh "$(dirname "$0")/../../scripts/tls-gen.sh" psk "$tmp/psk" pair || { echo "FAIL no PSK"; exit 1; }

MiB=1048576
HALF=$((4 * MiB)) # the disk guest writes below HALF; qemu-io above it
NW=400

# The log: offset, length, pattern (0 = write zeroes), all 512-aligned.
awk -v n=$NW -v half=$HALF 'BEGIN {
	srand(7)
	for (i = 1; i <= n; i++) {
		len = 512 * (1 + int(rand() * 128))
		off = half + 512 * int(rand() * ((half - len) / 512))
		pat = (i % 10 == 0) ? 0 : 1 + i % 50
		print off, len, pat
	}
}' > "$tmp/log"

# The image after the first k writes of the log, built step by step.
apply_write() { # image, line of the log
	set -- "$1" $2
	if [ "$4" -eq 0 ]; then
		dd if=/dev/zero of="$1" bs=512 seek=$(($2 / 512)) count=$(($3 / 512)) \
			conv=notrunc status=none
	else
		dd if="$tmp/pat-$4" of="$1" bs=512 seek=$(($2 / 512)) count=$(($3 / 512)) \
			conv=notrunc status=none
	fi
}
for p in $(seq 1 50); do
	head -c 65536 /dev/zero | tr '\0' "\\$(printf %o "$p")" > "$tmp/pat-$p"
done

ns_cleanup
topo_up
truncate -s 8M "$tmp/primary.img"
head -c $HALF /dev/urandom | dd of="$tmp/primary.img" bs=1M seek=4 conv=notrunc status=none
cp "$tmp/primary.img" "$tmp/initial.img"

ns b env HA_RUN_DIR="$tmp/b" HA_VM_ARGS="--tap tapb" "$bin/ha-receive" --tls-psk "$tmp/psk" \
	--listen 10.66.0.2:7788 --timeout $(ms 1000) --disk "$tmp/replica.img" > "$tmp/rx.log" 2>&1 &
ns a env HA_RUN_DIR="$tmp/a" "$bin/ha-diskrepl" --name d0 --image "$tmp/primary.img" \
	> "$tmp/drl.log" 2>&1 &
wait_for 10 test -S "$tmp/a/ha-diskrepl/d0.nbd" || { cat "$tmp/drl.log"; exit 1; }
ns a env HA_RUN_DIR="$tmp/a" "$bin/ha-vm" run --name st --mem 16M --guest disk \
	--disk "nbd:unix:$tmp/a/ha-diskrepl/d0.nbd" --tap tapa --ip "$GUEST_IP/24" \
	--mac "$GUEST_MAC" > "$tmp/vm.log" 2>&1 &
wait_for 10 test -S "$tmp/a/ha-vm/st.sock" || { cat "$tmp/vm.log"; exit 1; }
ns a env HA_RUN_DIR="$tmp/a" "$bin/ha-protect" --tls-psk "$tmp/psk" -i 20 --timeout $(ms 1000) --disk d0 \
	kvm:st 10.66.0.2:7788 > "$tmp/px.log" 2>&1 &
wait_for 30 grep -q "PROTECTED:" "$tmp/px.log" || { tail -n 20 "$tmp/px.log" "$tmp/rx.log"; exit 1; }

# qemu-io on host A: the log's writes, 10 ms apart (4 s in all, beyond the
# kill); each completion is
# stamped with the time it was reported.
awk '{ if ($3 == 0) printf "-c\nwrite -z %s %s\n", $1, $2;
       else printf "-c\nwrite -P %s %s %s\n", $3, $1, $2;
       printf "-c\nsleep 10\n" }' "$tmp/log" > "$tmp/args"
(
	IFS='
'
	# shellcheck disable=SC2046
	ns a stdbuf -oL qemu-io -f raw $(cat "$tmp/args") \
		"nbd+unix:///d0?socket=$tmp/a/ha-diskrepl/d0.nbd" 2>&1 |
		while read -r l; do
			case "$l" in wrote*) echo "$(date +%s%N) $l" ;; esac
		done > "$tmp/done"
) &
writer=$!
# The kill comes once 25 writes are done and then the bound below (1.5 s,
# scaled under emulation) has passed, so that more than 20 writes lie
# before it.
hold=$(ms 1500)
wait_for 10 sh -c "[ \$(wc -l < '$tmp/done') -ge 25 ]"
sleep "$((hold / 1000)).$(printf %03d $((hold % 1000)))"
t_kill=$(date +%s%N)
kill_host_a
wait_for 15 grep -q "FAILOVER complete" "$tmp/rx.log"
wait "$writer"
check "the secondary failed over" grep -q "FAILOVER complete" "$tmp/rx.log"

# Bounds on the committed prefix: writes reported complete at least 1.5 s
# (scaled)
# before the kill were acknowledged (a stamp is taken when the line is read,
# so it can only be late: the bound stays safe under load); nothing beyond
# what qemu-io reported, plus one in flight, can be there.
lo=$(awk -v t=$((t_kill - hold * 1000000)) '$1 <= t' "$tmp/done" | wc -l)
hi=$(($(wc -l < "$tmp/done") + 1))
echo "     $(wc -l < "$tmp/done") writes reported complete; the committed prefix must lie in [$lo, $hi]"
check "qemu-io wrote through the epochs before the kill" test "$lo" -gt 20

cp "$tmp/initial.img" "$tmp/expect.img"
k=0 found=""
while read -r line; do
	if [ "$k" -ge "$lo" ] && cmp -s -i $HALF:$HALF "$tmp/replica.img" "$tmp/expect.img"; then
		found=$k
		break
	fi
	[ "$k" -gt "$hi" ] && break
	apply_write "$tmp/expect.img" "$line"
	k=$((k + 1))
done < "$tmp/log"
[ -z "$found" ] && [ "$k" -ge "$lo" ] && [ "$k" -le "$hi" ] &&
	cmp -s -i $HALF:$HALF "$tmp/replica.img" "$tmp/expect.img" && found=$k
echo "     the replica equals the primary's image after the first ${found:-(none)} writes"
check "the replica is exactly a committed prefix of the writes, byte for byte" test -n "$found"
check "that prefix holds every acknowledged write" test "${found:-0}" -ge "$lo"
if [ "$fails" -ne 0 ]; then
	for f in px rx vm drl; do echo "--- $f.log"; tail -n 15 "$tmp/$f.log"; done
fi
[ "$fails" -eq 0 ]
