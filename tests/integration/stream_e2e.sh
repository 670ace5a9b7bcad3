#!/bin/sh
# Streams from a real ha-protect: saved with --save they verify with
# ha-stream, compressed and raw; and a stream cut in the middle of a
# checkpoint makes ha-receive fail over to the last complete checkpoint,
# whose guest then runs on.
# needs: kvm (ha-vm guests; tests/run.sh runs it in the KVM lab where /dev/kvm is missing)
PREFIX=hast-
. "$(dirname "$0")/lib.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
tmp=$(mktemp -d)
export HA_RUN_DIR="$tmp/run"
trap 'pkill -f "ha-vm run --name hast" 2>/dev/null; rm -rf "$tmp"' EXIT
[ -w /dev/kvm ] || skip "/dev/kvm is missing: ha-vm cannot run here"
command -v bash >/dev/null || skip "bash is needed for /dev/tcp"

"$bin/ha-vm" run --name hastvm --mem 16M --guest dirty --arg 0=20 --arg 1=600 \
	> "$tmp/vm.log" 2>&1 &
wait_for 10 test -S "$HA_RUN_DIR/ha-vm/hastvm.sock"

"$bin/ha-protect" -F -b --save "$tmp/z.stream" -i 10 --max-epochs 30 kvm:hastvm > "$tmp/p1.log" 2>&1
check "a compressed stream saved by ha-protect verifies" \
	sh -c "'$bin/ha-stream' verify '$tmp/z.stream' | grep -q 'valid: .* 30 checkpoints'"
check "the saved stream is its owner's alone (0600)" test "$(stat -c %a "$tmp/z.stream")" = 600
# A file that exists with a wider mode is narrowed too.
: > "$tmp/raw.stream"
chmod 644 "$tmp/raw.stream"
"$bin/ha-protect" -F -b -u --save "$tmp/raw.stream" -i 10 --max-epochs 10 kvm:hastvm \
	> "$tmp/p2.log" 2>&1
check "an existing 0644 file is saved 0600" test "$(stat -c %a "$tmp/raw.stream")" = 600
check "an uncompressed stream verifies" \
	sh -c "'$bin/ha-stream' verify '$tmp/raw.stream' | grep -q 'valid: .* 10 checkpoints'"
check "-u sends Xen PAGE_DATA records, no compressed ones" sh -c \
	"'$bin/ha-stream' dump '$tmp/raw.stream' | grep -q ' PAGE_DATA ' && ! '$bin/ha-stream' dump '$tmp/raw.stream' | grep -q HA_PAGE_DATA_Z"
check "compression pays: compressed stream smaller" \
	test "$(stat -c %s "$tmp/z.stream")" -lt "$(stat -c %s "$tmp/raw.stream")"

# Cut the stream in the middle of checkpoint 20's page data.
off=$("$bin/ha-stream" dump "$tmp/z.stream" | awk '$4 == "epoch" && $5 == 19 && $2 == "CHECKPOINT" { print $1 + 8 }')
end20=$("$bin/ha-stream" dump "$tmp/z.stream" | awk '$2 == "CHECKPOINT" && $5 == 20 { print $1 }')
cut=$(( (off + end20) / 2 ))
head -c "$cut" "$tmp/z.stream" > "$tmp/cut.stream"
HA_RUN_DIR="$tmp/rx" "$bin/ha-receive" --insecure --listen 127.0.0.1:7931 --timeout $(ms 300) --once \
	> "$tmp/rx.log" 2>&1 &
rx=$!
wait_for 5 grep -q listening "$tmp/rx.log"
bash -c "exec 3<>/dev/tcp/127.0.0.1/7931; cat '$tmp/cut.stream' >&3; sleep 1; exec 3>&-"
wait_for 10 grep -q "FAILOVER complete" "$tmp/rx.log"
check "a stream cut mid-checkpoint fails over to the last complete one (19)" \
	grep -q "runs here from epoch 19" "$tmp/rx.log"
sleep 1
check "and that guest runs on" sh -c "grep -c 'dirty:' '$tmp/rx/'*.log 2>/dev/null; HA_RUN_DIR='$tmp/rx' '$bin/ha-vm' list | grep -q 'hastvm .* running'"
HA_RUN_DIR="$tmp/rx" "$bin/ha-vm" stop hastvm
wait $rx

# The primary dies during pre-copy (before the first checkpoint): nothing is
# committed, so nothing is resumed; the secondary waits for a new primary.
first=$("$bin/ha-stream" dump "$tmp/z.stream" | awk '$2 == "CHECKPOINT" { print $1; exit }')
head -c $((first / 2)) "$tmp/z.stream" > "$tmp/pre.stream"
HA_RUN_DIR="$tmp/rx3" "$bin/ha-receive" --insecure --listen 127.0.0.1:7933 --timeout $(ms 300) --once \
	> "$tmp/rx3.log" 2>&1 &
rx=$!
wait_for 5 grep -q listening "$tmp/rx3.log"
bash -c "exec 3<>/dev/tcp/127.0.0.1/7933; cat '$tmp/pre.stream' >&3; sleep 1; exec 3>&-"
wait $rx
check "a primary lost during pre-copy: no failover, the copy is discarded" sh -c \
	"grep -q 'before the first checkpoint' '$tmp/rx3.log' && ! grep -q FAILOVER '$tmp/rx3.log' && ! HA_RUN_DIR='$tmp/rx3' '$bin/ha-vm' list | grep -q hastvm"

# A corrupted checkpoint (bit flip in page data) is never applied, and a
# primary that sends one is alive (it still talks): the secondary tells it
# and discards its copy instead of failing over beside it.
flipat=$(( (off + end20) / 2 ))
cp "$tmp/z.stream" "$tmp/flip.stream"
printf '\377' | dd of="$tmp/flip.stream" bs=1 seek="$flipat" conv=notrunc 2>/dev/null
HA_RUN_DIR="$tmp/rx2" "$bin/ha-receive" --insecure --listen 127.0.0.1:7932 --timeout $(ms 300) --once \
	> "$tmp/rx2.log" 2>&1 &
rx=$!
wait_for 5 grep -q listening "$tmp/rx2.log"
bash -c "exec 3<>/dev/tcp/127.0.0.1/7932; cat '$tmp/flip.stream' >&3; sleep 1; exec 3>&-"
wait $rx
check "a corrupted checkpoint is refused: checksum mismatch" grep -q 'checksum mismatch' "$tmp/rx2.log"
check "the checkpoints before it were committed" grep -q 'first checkpoint committed' "$tmp/rx2.log"
check "the primary is told, no failover beside it" sh -c \
	"grep -q \"the primary's stream is broken\" '$tmp/rx2.log' && ! grep -q FAILOVER '$tmp/rx2.log'"
check "the copy is discarded" sh -c "! HA_RUN_DIR='$tmp/rx2' '$bin/ha-vm' list | grep -q hastvm"
HA_RUN_DIR="$tmp/rx2" "$bin/ha-vm" stop hastvm 2>/dev/null
"$bin/ha-vm" stop hastvm
[ "$fails" -eq 0 ]
