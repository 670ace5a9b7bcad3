#!/bin/bash
# Our plug netbuf backend on a kernel that has sch_plug: the integration
# test netbuf_plug.sh (tests/integration/netbuf_body.sh: output of an epoch
# held until its commit, then released once and in order; teardown and the
# cleanup command leave nothing behind) run as it is, inside dom0. On the
# build host it skips when the kernel lacks sch_plug; here it must run.
# lab-timeout: 300
. "$LAB_LIB"

modprobe sch_plug || lab_fail "modprobe sch_plug failed: the lab kernel should have it"
"$LAB_BIN/ha-netbuf" probe-plug ||
	lab_fail "ha-netbuf probe-plug finds no sch_plug although the module is loaded"
ip netns add lab-probe >"$LAB_TMP/netns.err" 2>&1 ||
	lab_fail "ip netns add fails in dom0: $(tail -n 1 "$LAB_TMP/netns.err")"
ip netns del lab-probe
HA_BUILD=/lab sh "$LAB_INTEG/netbuf_plug.sh" >"$LAB_TMP/out" 2>&1
rc=$?
cat "$LAB_TMP/out"
oks=$(grep -c '^ok ' "$LAB_TMP/out")
fails=$(grep -c '^FAIL' "$LAB_TMP/out")
lab_figure "checks_ok=$oks" "checks_failed=$fails"
case $rc in
0) [ "$oks" -gt 0 ] || lab_fail "netbuf_plug.sh passed without running a check" ;;
77) lab_fail "netbuf_plug.sh skipped where it must run: $(grep '^SKIP' "$LAB_TMP/out" | tail -n 1)" ;;
*) lab_fail "netbuf_plug.sh: $fails check(s) failed, first: $(grep -m 1 '^FAIL' "$LAB_TMP/out")" ;;
esac
# Nothing of the test's is left in dom0.
ip netns list | grep -q '^hanbp-' && lab_fail "network namespaces hanbp-* left behind"
ip -o link show | grep -q ': hanb[0-9]' && lab_fail "an IFB device hanb* left in dom0"
exit 0
