#!/bin/sh
# ha-sla end to end, briefly: unprotected + two intervals of 3 s each and a
# short load step under --interval auto. Checks the report's structure and
# that every figure is present and sane (consistent with the others and
# with the run's parameters), not how fast anything was.
# needs: kvm (ha-vm guests; tests/run.sh runs it in the KVM lab where /dev/kvm is missing)
PREFIX=hsla-
. "$(dirname "$0")/lib.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
tmp=$(mktemp -d)
trap 'ns_cleanup; rm -rf "$tmp"' EXIT
need_root
[ -w /dev/kvm ] || skip "/dev/kvm is missing: ha-vm cannot run here"
[ -x "$bin/ha-sla" ] || skip "ha-sla is not built"

out=$tmp/report
# The offered load is divided, and the load step's phases stretched, by
# HA_TIME_SCALE: an emulated guest answers fewer requests per second.
rate=$((200 / TS))
phases=$((2 * TS)),$((4 * TS)),$((2 * TS))
HA_SLA_PREFIX=$PREFIX "$bin/ha-sla" --out "$out" --intervals 10,50 --duration 3 --rate "$rate" --write 0.5 \
	--keys 2000 --sla p99=60,tput=$((rate / 2)) --step --step-target 40 --step-phases "$phases" \
	>"$tmp/sla.log" 2>&1
rc=$?
check "ha-sla exits 0" test "$rc" -eq 0
csv=$out/results.csv
check "results.csv: header and 3 rows" test "$(wc -l <"$csv")" -eq 4
check "results.csv: 26 columns in every line" \
	awk -F, 'NF != 26 { print "     line " NR ": " NF " columns"; bad = 1 } END { exit bad }' "$csv"

# The client's figures, for every run.
check "client figures present and ordered (p50 <= p95 <= p99 <= p99.9)" awk -F, '
	NR > 1 { for (i = 4; i <= 11; i++) if ($i == "" || $i == "-") { print "     " $1 ": column " i " missing"; bad = 1 }
		if (!($8 > 0 && $8 <= $9 && $9 <= $10 && $10 <= $11)) { print "     " $1 ": " $8 " " $9 " " $10 " " $11; bad = 1 } }
	END { exit bad }' "$csv"
check "requests answered: >= 95% and throughput near the $rate/s asked" awk -F, -v r="$rate" '
	NR > 1 { if ($5 < 0.95 * $4 || $7 < 0.75 * r || $7 > 1.25 * r || $4 < 2.5 * r) { print "     " $0; bad = 1 } }
	END { exit bad }' "$csv"
# The checkpoint figures, for the protected runs.
check "checkpoint figures present for the protected runs" awk -F, '
	NR > 1 && $2 == "protected" { for (i = 12; i <= 24; i++) if ($i == "" || $i == "-") { print "     " $1 ": column " i " missing"; bad = 1 } }
	END { exit bad }' "$csv"
# Epochs: never more than the window allows at the interval (ha-protect
# never pauses sooner than one interval after the last pause); not far
# fewer either, allowing for a host HA_TIME_SCALE times slower.
check "checkpoint figures sane" awk -F, -v ts="$TS" '
	NR > 1 && $2 == "protected" {
		iv = $1; secs = $24
		if ($12 < 0.3 / ts * secs * 1000 / iv || $12 > 1.1 * secs * 1000 / iv + 2) { print "     " iv ": " $12 " epochs in " secs " s"; bad = 1 }
		if (!($13 > 0 && $13 <= $14)) { print "     " iv ": pause p50 " $13 " p99 " $14; bad = 1 }
		if (!($18 > 0 && $18 <= $19)) { print "     " iv ": ACK p50 " $18 " p99 " $19; bad = 1 }
		if ($15 < 1 || $16 < 64) { print "     " iv ": " $15 " pages, " $16 " bytes per epoch"; bad = 1 }
		if (!($17 > 0 && $17 <= 1.1)) { print "     " iv ": wire ratio " $17; bad = 1 }
		if ($16 > $15 * 4096 * 1.1 + 65536) { print "     " iv ": more octets than pages"; bad = 1 }
		if (!($20 > 0 && $20 < 200 && $21 >= 0 && $21 < 200)) { print "     " iv ": CPU " $20 " " $21; bad = 1 }
		if ($23 != iv) { print "     " iv ": ran at " $23 " ms"; bad = 1 }
		if (!($25 > 0 && $25 <= 100)) { print "     " iv ": machine busy " $25 "%"; bad = 1 } }
	END { exit bad }' "$csv"
check "the unprotected run has no checkpoint figures" awk -F, '
	$2 == "unprotected" { for (i = 12; i <= 23; i++) if ($i != "-") bad = 1; found = 1; if (!($24 > 0 && $25 >= 0 && $25 <= 100)) bad = 1 }
	END { exit bad || !found }' "$csv"

md=$out/report.md
check "report: results table with a row per run" sh -c "
	grep -q '^## Results' '$md' &&
	grep -q '^| unprotected |' '$md' && grep -q '^| 10 |' '$md' && grep -q '^| 50 |' '$md'"
check "report: a recommendation with its evidence" sh -c "
	grep -q '^## Recommendation for p99 <= 60 ms and throughput >= $((rate / 2)) rps' '$md' &&
	{ grep -q '^\*\*Use an epoch interval of [0-9]* ms\*\*' '$md' && grep -q '^Evidence: at' '$md' ||
	  grep -q '^\*\*No measured interval met the target' '$md'; }"
if command -v gnuplot >/dev/null; then
	for p in latency overhead traffic step; do
		check "report: $p.svg drawn and linked" sh -c "
			grep -q '<svg' '$out/$p.svg' && grep -q '($p.svg)' '$md'"
	done
else
	echo "     (gnuplot is not installed: plots not checked)"
fi

# The load step under --interval auto.
step=$out/step.csv
check "step: samples in all three phases" sh -c "
	grep -q ',idle,' '$step' && grep -q ',heavy,' '$step' && test \$(wc -l <'$step') -gt 10"
check "step: interval within --interval-min/max and the estimates present" awk -F, '
	NR > 1 { if (!($3 >= 2 && $3 <= 1000 && $4 >= 2 && $5 != "" && $6 > 0)) { print "     " $0; bad = 1 } }
	END { exit bad }' "$step"
check "step: report section with a row per phase" sh -c "
	grep -q '^## Adaptive interval under a load step' '$md' &&
	grep -q '^| idle |' '$md' && grep -q '^| heavy |' '$md' && grep -q '^| idle again |' '$md'"
check "no namespace of ha-sla left behind" sh -c "! ip netns list | grep -q '^$PREFIX'"
if [ "$fails" -ne 0 ]; then
	tail -n 30 "$tmp/sla.log"
	cat "$csv"
fi
[ "$fails" -eq 0 ]
