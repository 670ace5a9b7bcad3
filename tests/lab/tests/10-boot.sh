#!/bin/bash
# The toolstack is up and a PVH domU boots and counts on its console.
# lab-timeout: 480
. "$LAB_LIB"

xl list >"$LAB_TMP/xl-list" 2>&1 || lab_fail "xl list failed: $(tail -n 1 "$LAB_TMP/xl-list")"
grep -q '^Domain-0 ' "$LAB_TMP/xl-list" || lab_fail "xl list does not show Domain-0"
xl info | grep -q 'hvm' || lab_fail "Xen reports no HVM capability: PVH guests cannot run (is +svm,+npt given to QEMU?)"

t0=$(now_ms)
domu_create domu >"$LAB_TMP/create.log" 2>&1 || lab_fail "xl create failed: $(tail -n 2 "$LAB_TMP/create.log" | tr '\n' ' ')"
if ! wait_for 300 sh -c "[ \"\$(. '$LAB_LIB'; domu_count domu)\" -ge 0 ]"; then
	tail -n 20 "$(domu_logs domu | head -n 1)" 2>/dev/null
	xl list
	xl dmesg | tail -n 5
	domu_crashed domu && lab_fail "domU crashed while booting: $(domu_crash_kind domu) (state $(domu_state domu))"
	lab_fail "domU did not start counting within 300 s (state $(domu_state domu))"
fi
t1=$(now_ms)
rate=$(domu_rate domu 5)
c=$(domu_count domu)
lab_figure "domu_boot_ms=$((t1 - t0))" "count_rate=$rate"
domu_crashed domu && lab_fail "domU crashed after booting: $(domu_crash_kind domu)"
awk -v r="$rate" 'BEGIN {exit !(r > 0)}' || lab_fail "domU stopped counting (at $c, state $(domu_state domu))"
xl destroy domu || lab_fail "xl destroy domu failed"
wait_for 10 sh -c '! xl domid domu' || lab_fail "domu still exists after xl destroy"
echo "domU booted in $((t1 - t0)) ms, counts $rate/s"
