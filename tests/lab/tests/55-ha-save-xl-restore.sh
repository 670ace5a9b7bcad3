#!/bin/bash
# ha-save on Xen, for stock xl restore: a counting PVH domU is saved with
# `ha-save xen:NAME F` (a pre-copy and one checkpoint, written as an xl
# save file; the domU runs on), destroyed, and stock `xl restore F` brings
# it back: it must count on from the save (its first count after the
# restore at most a few above the count at the save, below the count at
# the destroy). Then the restored domU is saved with `ha-save --stop`,
# which stops it, and `ha-restore` runs that file: it counts on from the
# stop. Each file is mode 0600 and verifies with ha-stream (as an xl save
# file); no temporary stream is left beside it; an existing file is not
# replaced.
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
t0=$(now_ms)
ha-save "xen:$dom" "$T/s.xl" >"$T/save.log" 2>&1 || { tail -n 20 "$T/save.log"; lab_fail "ha-save failed"; }
t_save=$(($(now_ms) - t0))
saved=$(domu_count "$dom")
grep -a 'valid xl save file' "$T/save.log" || lab_fail "ha-save did not check its file: $(tail -n 1 "$T/save.log")"
[ "$(stat -c %a "$T/s.xl")" = 600 ] || lab_fail "the xl save file is mode $(stat -c %a "$T/s.xl"), not 600"
ha-stream verify "$T/s.xl" | grep -q 'valid xl save file' || lab_fail "ha-stream does not verify the xl save file"
# shellcheck disable=SC2012
[ -z "$(ls -A "$T" | grep '^\.ha-save\.')" ] || lab_fail "ha-save left its temporary stream behind"
if ha-save "xen:$dom" "$T/s.xl" >"$T/save2.log" 2>&1; then
	lab_fail "ha-save replaced an existing file"
fi
grep -q 'never replaces a file' "$T/save2.log" || lab_fail "no reason given for keeping the existing file: $(tail -n 1 "$T/save2.log")"
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

# ha-save --stop on the restored domU, then ha-restore.
ha-save --stop "xen:$dom" "$T/s2.xl" >"$T/save3.log" 2>&1 || { tail -n 20 "$T/save3.log"; lab_fail "ha-save --stop failed"; }
grep -q 'SAVED and stopped' "$T/save3.log" || lab_fail "ha-save --stop did not say it stopped the domain"
stopped=$(newc | tail -n 1)
! xl list "$dom" >/dev/null 2>&1 || lab_fail "$dom still runs after ha-save --stop"
lines=$(cat $(domu_logs "$dom") 2>/dev/null | wc -l)
t0=$(now_ms)
ha-restore "$T/s2.xl" >"$T/restore2.log" 2>&1 || { cat "$T/restore2.log"; lab_fail "ha-restore of the --stop save failed"; }
t1=$(now_ms)
grep -q 'valid xl save file' "$T/restore2.log" || lab_fail "ha-restore did not verify the file first"
for _ in $(seq 1 120); do
	[ "$(newc | wc -l)" -ge 3 ] && break
	domu_crashed "$dom" && lab_fail "the domU ha-restore ran crashed ($(domu_crash_kind "$dom"))"
	sleep 1
done
first2=$(newc | head -n 1)
last2=$(newc | tail -n 1)
echo "count at ha-save --stop: $stopped; after ha-restore: ${first2:-?} .. ${last2:-?}"
[ -n "$first2" ] && [ "$last2" -gt "$first2" ] || lab_fail "the domU ha-restore ran does not count ($first2 .. $last2)"
[ "$first2" -ge $((stopped - 2)) ] && [ "$first2" -le $((stopped + 2)) ] ||
	lab_fail "the domU ha-restore ran counts from $first2, not from the stop ($stopped)"
lab_figure xl_file_bytes="$(stat -c %s "$T/s.xl")" ha_save_ms="$t_save" ha_restore_ms=$((t1 - t0)) \
	count_saved="$saved" count_first_after="$first" count_stopped="$stopped" count_first_after_stop="$first2"
exit 0
