#!/bin/bash
# Probe (not in the default set; run it by name): the lab's domU ballooned
# to 64 MiB with nothing protecting it. Its root file system lives in its
# RAM; 40-ha-protect-xen balloons it to 88 MiB only, because at 64 MiB a
# protected domU died of an out-of-memory panic: this shows whether the
# unprotected one does too. Prints whether it died and its free memory.
# lab-default: no
# lab-timeout: 300
set -u
. "$LAB_LIB"

dom=haballoon
cleanup() { xl destroy "$dom" >/dev/null 2>&1; return 0; }
trap cleanup EXIT

domu_create "$dom" || lab_fail "xl create $dom failed"
domu_counting "$dom" 120 || lab_fail "$dom does not count"
xl mem-set "$dom" 64 || lab_fail "xl mem-set failed"
sleep 45
if domu_crashed "$dom"; then
	lab_figure target_mib=64 died=yes kind="$(domu_crash_kind "$dom")"
	# The death is the finding this probe looks for, not a failure of it.
	trap - EXIT
	xl destroy "$dom" >/dev/null 2>&1
	exit 0
fi
domu_counting "$dom" 20 && alive=counting || alive=stalled
lab_figure target_mib=64 died=no state="$alive" mem_mib="$(xl list "$dom" | awk 'NR == 2 {print $3}')"
exit 0
