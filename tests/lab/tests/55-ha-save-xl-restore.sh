#!/bin/bash
# Save on Xen for stock xl restore: a counting PVH domU is saved with
# `ha-protect -F -b --save S --max-epochs 1` (a pre-copy and one
# checkpoint; the domU runs on), `ha-receive --backend xen --restore S
# --save-file F` turns the stream into an xl save file, the domU is
# destroyed, and stock `xl restore F` brings it back: it must count on
# from the save (its first count after the restore at most a few above the
# count at the save, below the count at the destroy). Both files are mode
# 0600 and S verifies with ha-stream; an existing F is not overwritten.
# lab-timeout: 900
set -u
. "$LAB_LIB"

dom=hasave
T=$LAB_TMP
cleanup() { xl destroy "$dom" >/dev/null 2>&1; return 0; }
trap cleanup EXIT
export HA_XEN_SUSPEND_TIMEOUT_MS=60000

domu_create "$dom" >"$T/create.log" 2>&1 || lab_fail "xl create $dom failed: $(tail -n 2 "$T/create.log")"
domu_counting "$dom" 300 || lab_fail "$dom does not count"
pre=$(domu_count "$dom")
ha-protect -v -F -b --save "$T/s.stream" --max-epochs 1 "xen:$dom" >"$T/save.log" 2>&1 ||
	{ tail -n 20 "$T/save.log"; lab_fail "ha-protect --save failed"; }
saved=$(domu_count "$dom")
[ "$(stat -c %a "$T/s.stream")" = 600 ] || lab_fail "the saved stream is mode $(stat -c %a "$T/s.stream"), not 600"
ha-stream verify "$T/s.stream" | grep -q 'valid: .* 1 checkpoints' || lab_fail "the saved stream does not verify"
ha-receive -v --backend xen --restore "$T/s.stream" --save-file "$T/s.xl" >"$T/conv.log" 2>&1 ||
	{ tail -n 20 "$T/conv.log"; lab_fail "ha-receive --save-file failed"; }
grep -a 'written to' "$T/conv.log"
[ "$(stat -c %a "$T/s.xl")" = 600 ] || lab_fail "the xl save file is mode $(stat -c %a "$T/s.xl"), not 600"
if ha-receive --backend xen --restore "$T/s.stream" --save-file "$T/s.xl" >"$T/conv2.log" 2>&1; then
	lab_fail "ha-receive overwrote an existing save file"
fi
grep -q 'not overwritten' "$T/conv2.log" || lab_fail "no reason given for keeping the existing file: $(tail -n 1 "$T/conv2.log")"
xl list "$dom" >/dev/null 2>&1 || lab_fail "$dom stopped running after the save"
domu_counting "$dom" 20 || lab_fail "$dom stopped counting after the save"
sleep 5
before=$(domu_count "$dom")
xl destroy "$dom" || lab_fail "xl destroy $dom failed"
sleep 1
# The console log grows on; what the restored domU prints comes after.
lines=$(cat $(domu_logs "$dom") 2>/dev/null | wc -l)
t0=$(now_ms)
xl restore "$T/s.xl" >"$T/restore.log" 2>&1 || { cat "$T/restore.log"; lab_fail "xl restore of the saved file failed"; }
t1=$(now_ms)
xl list "$dom" >/dev/null 2>&1 || lab_fail "no domain $dom after xl restore"
# The counts the restored domU prints (the log's earlier lines are the
# first run's).
newc() {
	# shellcheck disable=SC2046
	cat $(domu_logs "$dom") 2>/dev/null | tail -n +$((lines + 1)) | tr -d '\r' |
		grep -a -o 'count [0-9]*' | awk '{print $2}'
}
for _ in $(seq 1 120); do
	[ "$(newc | wc -l)" -ge 3 ] && break
	domu_crashed "$dom" && lab_fail "the restored $dom crashed ($(domu_crash_kind "$dom"))"
	sleep 1
done
first=$(newc | head -n 1)
last=$(newc | tail -n 1)
echo "count before the save: $pre, after it: $saved, at the destroy: $before; after xl restore: ${first:-?} .. ${last:-?}"
[ -n "$first" ] || lab_fail "no count from the restored domU"
[ "$last" -gt "$first" ] || lab_fail "the restored domU does not count on ($first .. $last)"
[ "$first" -ge "$pre" ] && [ "$first" -le $((saved + 2)) ] && [ "$first" -lt "$before" ] ||
	lab_fail "the restored domU counts from $first: not from the save ($pre..$saved; $before at the destroy)"
lab_figure save_stream_bytes="$(stat -c %s "$T/s.stream")" xl_file_bytes="$(stat -c %s "$T/s.xl")" \
	xl_restore_ms=$((t1 - t0)) count_saved="$saved" count_first_after="$first"
exit 0
