#!/bin/bash
# Our plug netbuf backend on a kernel that has sch_plug: the integration
# test netbuf_plug.sh (tests/integration/netbuf_body.sh: output of an epoch
# held until its commit, then released once and in order; two closed
# epochs held at once, as the pipelined epoch loop has them, and commit(N)
# releasing N's output only; teardown and the cleanup command leave
# nothing behind) run as it is, inside dom0. On the build host it skips
# when the kernel lacks sch_plug; here it must run. Then the delay the plug
# adds with in-order and pipelined epochs (netbuf_delay.sh), as figures.
# lab-timeout: 420
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
# On failure, show what the backend installed and what the qdiscs counted,
# on a plain veth pair: the evidence for whoever fixes it.
diagnose() {
	ip netns add labnb1 && ip netns add labnb2 || return
	ip -n labnb1 link add v0 type veth peer name v1 netns labnb2
	ip -n labnb1 addr add 10.89.0.1/24 dev v0
	ip -n labnb2 addr add 10.89.0.2/24 dev v1
	ip -n labnb1 link set v0 up
	ip -n labnb2 link set v1 up
	mkfifo "$LAB_TMP/ctl"
	ip netns exec labnb1 "$LAB_BIN/ha-netbuf" hold --backend plug v0 <"$LAB_TMP/ctl" >"$LAB_TMP/hold.out" 2>&1 &
	exec 5>"$LAB_TMP/ctl"
	wait_for 10 grep -q 'ok setup' "$LAB_TMP/hold.out"
	echo "--- diagnosis: ha-netbuf hold on v0 (labnb1), peer v1 (labnb2); before traffic"
	cat "$LAB_TMP/hold.out"
	ip netns exec labnb1 tc -s qdisc show
	ip netns exec labnb1 tc -s filter show dev v0 ingress
	echo "--- 3 pings labnb2 -> 10.89.0.1, no commit: all should be held"
	ip netns exec labnb2 ping -c 3 -i 0.2 -W 1 10.89.0.1 | tail -n 2
	ip netns exec labnb1 tc -s qdisc show
	ip netns exec labnb1 tc -s filter show dev v0 ingress
	exec 5>&-
	sleep 2
	echo "--- after teardown"
	cat "$LAB_TMP/hold.out"
	ip netns exec labnb1 tc qdisc show
	ip netns pids labnb1 | xargs -r kill -9
	ip netns del labnb1
	ip netns del labnb2
}

case $rc in
0) [ "$oks" -gt 0 ] || lab_fail "netbuf_plug.sh passed without running a check" ;;
77) lab_fail "netbuf_plug.sh skipped where it must run: $(grep '^SKIP' "$LAB_TMP/out" | tail -n 1)" ;;
*) diagnose; lab_fail "netbuf_plug.sh: $fails check(s) failed, first: $(grep -m 1 '^FAIL' "$LAB_TMP/out")" ;;
esac
grep -q '^ok   pipelined: commit 3 releases epoch 3 only' "$LAB_TMP/out" ||
	lab_fail "netbuf_plug.sh passed without its pipelined checks"
# The delay: 20 ms epochs, ACK after 10 ms (in order) and 30 ms (pipelined).
HA_BUILD=/lab BACKEND=plug IDLE_MS=8000 bash "$LAB_INTEG/netbuf_delay.sh" >"$LAB_TMP/delay" 2>&1 ||
	lab_fail "netbuf_delay.sh failed: $(tail -n 3 "$LAB_TMP/delay")"
cat "$LAB_TMP/delay"
while read -r _ _ interval ack delivered p50 p99 mean max; do
	lab_figure "$interval" "$ack" "$delivered" "$p50" "$p99" "$mean" "$max"
done < <(grep '^delay ' "$LAB_TMP/delay")
# Nothing of the test's is left in dom0.
ip netns list | grep -q '^hanbp-' && lab_fail "network namespaces hanbp-* left behind"
ip netns list | grep -q '^hanbd-' && lab_fail "network namespaces hanbd-* left behind"
ip -o link show | grep -q ': hanb[0-9]' && lab_fail "an IFB device hanb* left in dom0"
exit 0
