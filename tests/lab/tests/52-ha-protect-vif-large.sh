#!/bin/bash
# 50-ha-protect-vif again with a domU of 4x its memory (384 MiB) and two
# vCPUs, under the plug backend, then stock xl remus on it: the copy must
# keep every acknowledged increment (acked_lost=0) with both vCPUs'
# state carried over, and with the hot standby its failover should not
# grow with the guest's memory. Prints failover_ms for both sizes and
# their ratio (large_vs_small_failover: the aim is at most 1.2), beside
# xl remus's on the same large domU.
# lab-timeout: 1500
set -u
. "$LAB_LIB"

LAB_VIF_MEMORY=384 LAB_VIF_VCPUS=2 LAB_VIF_BACKENDS=plug \
	bash "$(dirname "$0")/50-ha-protect-vif.sh" || exit $?
grep -a -q 'state of its 2 vCPUs loaded' "$LAB_TMP/plug.receive.log" ||
	lab_fail "the failover did not load the state of both vCPUs: $(grep -a 'standby runs' "$LAB_TMP/plug.receive.log")"
small=$(sed -n 's/^plug_failover_ms=//p' "$LAB_OUT/vif-96.figures" 2>/dev/null)
large=$(sed -n 's/^plug_failover_ms=//p' "$LAB_OUT/vif-384.figures")
if [ -n "$small" ]; then
	lab_figure failover_ms_96="$small" failover_ms_384="$large" \
		large_vs_small_failover="$(awk -v a="$large" -v b="$small" 'BEGIN {if (b + 0 > 0) printf "%.2f", a / b; else print "?"}')"
else
	echo "no $LAB_OUT/vif-96.figures (50-ha-protect-vif did not run): no ratio"
fi
exit 0
