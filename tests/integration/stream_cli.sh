#!/bin/sh
# ha-stream verify/dump on a real saved stream and on damaged copies of it.
set -u
bin="$HA_BUILD/bin/ha-stream"
seed="$(dirname "$0")/../fuzz/corpus/fuzz_stream/seed-two-checkpoints"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

check() { # name expected-exit expected-substring command...
	name=$1 want=$2 text=$3
	shift 3
	out=$("$@" 2>&1)
	rc=$?
	if [ "$rc" -ne "$want" ] || ! printf '%s' "$out" | grep -q -- "$text"; then
		echo "FAIL $name: exit $rc (want $want), output:"
		printf '%s\n' "$out" | sed 's/^/    /'
		fails=$((fails + 1))
	else
		echo "ok   $name"
	fi
}

check "valid stream verifies" 0 "valid: 8 records, 2 checkpoints, 5 pages" "$bin" verify "$seed"
check "stdin works" 0 "valid" sh -c "\"$bin\" verify - < \"$seed\""
check "dump shows epochs and ratio" 0 "checkpoint epoch 1: 2 pages" "$bin" dump "$seed"

head -c 600 "$seed" > "$tmp/trunc"
check "truncated stream" 1 "offset 552: HA_PAGE_DATA_Z (0x48410003): stream truncated" \
	"$bin" verify "$tmp/trunc"
head -c 696 "$seed" > "$tmp/noend"
check "missing END" 1 "offset 696: stream ends without an END record" "$bin" verify "$tmp/noend"

cp "$seed" "$tmp/flip"
printf '\377' | dd of="$tmp/flip" bs=1 seek=300 conv=notrunc 2>/dev/null
check "corrupted page data" 1 "HA_CHECKPOINT_TRAILER (0xc8410004): epoch 0: checksum mismatch" \
	"$bin" verify "$tmp/flip"

cp "$seed" "$tmp/garbage"
printf 'junk' >> "$tmp/garbage"
check "data after END" 1 "data after the END record" "$bin" verify "$tmp/garbage"

head -c 100 /dev/zero > "$tmp/zeros"
check "not a stream" 1 "bad marker" "$bin" verify "$tmp/zeros"
check "missing file" 2 "cannot open" "$bin" verify "$tmp/none"
check "bad usage" 2 "usage: ha-stream" "$bin" frobnicate x
check "help" 0 "usage: ha-stream" "$bin" --help

[ "$fails" -eq 0 ]
