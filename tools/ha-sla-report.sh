#!/bin/sh
# ha-sla-report DIR: writes DIR/report.md and its plots (DIR/*.svg, with
# gnuplot) from what ha-sla left in DIR: results.csv, session.txt (the
# target and the parameters) and, when present, step.csv and the raw
# latencies of the load step. ha-sla calls it at the end of a run; it can be
# rerun on the same directory at will.
set -u
dir=${1:?usage: ha-sla-report DIR}
sla_p99="" sla_tput=0 title="" params="" started="" interrupted=0
if [ -r "$dir/session.txt" ]; then
	sla_p99=$(sed -n 's/^sla_p99=//p' "$dir/session.txt")
	sla_tput=$(sed -n 's/^sla_tput=//p' "$dir/session.txt")
	title=$(sed -n 's/^title=//p' "$dir/session.txt")
	params=$(sed -n 's/^params=//p' "$dir/session.txt")
	started=$(sed -n 's/^started=//p' "$dir/session.txt")
	interrupted=$(sed -n 's/^interrupted=//p' "$dir/session.txt")
fi
[ -n "$sla_tput" ] || sla_tput=0
csv=$dir/results.csv
step=$dir/step.csv
md=$dir/report.md
[ -r "$csv" ] || { echo "ha-sla-report: no $csv" >&2; exit 1; }
[ -n "$title" ] || title="Epoch interval vs client latency and overhead"
plots=1
command -v gnuplot >/dev/null || plots=0

# Rows measured (not failed), protected ones sorted by interval.
good=$(mktemp)
trap 'rm -f "$good"' EXIT
awk -F, 'NR > 1 && $26 != "failed" && $2 == "protected"' "$csv" | sort -t, -k1,1n >"$good"
base=$(awk -F, 'NR > 1 && $2 == "unprotected" && $26 != "failed"' "$csv" | head -n 1)
b_p99=$(echo "$base" | cut -d, -f10)
b_tput=$(echo "$base" | cut -d, -f7)
b_p50=$(echo "$base" | cut -d, -f8)
b_p999=$(echo "$base" | cut -d, -f11)
# Client latency measured at all (not with the dirty guest)?
has_lat=$(awk -F, '$10 != "-" && $10 != ""' "$good" | wc -l)

ratio() { # value base
	awk -v v="$1" -v b="$2" 'BEGIN { if (v == "-" || b == "-" || v == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2fx", v / b }'
}

{
	echo "# $title"
	echo
	echo "Measured by \`ha-sla\` from ${started:-$(date -u '+%Y-%m-%d %H:%M UTC')}: $(nproc) CPUs, Linux $(uname -r)."
	[ -n "$params" ] && echo "Parameters: \`$params\`."
	echo "Regenerate with \`make sla-report\` (root and /dev/kvm; about six minutes)."
	echo
	echo "Each row is a fresh topology (primary, secondary and client network"
	echo "namespaces on this one machine), the guest protected at that interval"
	echo "(or not at all: the baseline) and measured for the same time. Client"
	echo "latency counts from each request's scheduled send time (open loop);"
	echo "checkpoint figures are differenced between the start and the end of the"
	echo "measurement. CPU is percent of one core: the primary is ha-protect, the"
	echo "secondary everything in its namespace (ha-receive and the incoming ha-vm)."
	echo "All processes share the machine's cores with whatever else runs (\"machine"
	echo "busy\": all CPUs, everything, during the run), so the figures are noisy;"
	echo "the ratios against the unprotected run of the same session are the point."
	grep -q ',interrupted$' "$csv" && { echo; echo "**The session was interrupted: the last row covers part of its run.**"; }
	echo
	echo "## Results"
	echo
	echo "| interval ms | throughput rps | p50 ms | p95 ms | p99 ms | p99.9 ms | p99 vs unprotected | pause p50 us | pause p99 us | pages/epoch | bytes/epoch | wire ratio | ACK p50 us | ACK p99 us | CPU primary % | CPU secondary % | stretched | machine busy % |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	awk -F, 'NR > 1' "$csv" | while IFS=, read -r iv mode secs req ok lost tput l50 l95 l99 l999 ep p50 p99 ppe bpe wr a50 a99 cp cs st ive win busy note; do
		r=$( [ "$mode" = unprotected ] && echo "1.00x" || ratio "$l99" "$b_p99")
		label=$iv
		case $mode in auto-p99-*) label="auto (target ${mode#auto-p99-} ms; ${ive} ms at the end)" ;; esac
		[ -n "$note" ] && label="$label ($note)"
		echo "| $label | $tput | $l50 | $l95 | $l99 | $l999 | $r | $p50 | $p99 | $ppe | $bpe | $wr | $a50 | $a99 | $cp | $cs | $st | $busy |"
	done
	echo
	echo "Lost requests (no answer within 1 s, or the client had no socket free):"
	awk -F, 'NR > 1 && $26 != "failed" { printf "%s %s of %s; ", $1, $6, $4 }' "$csv"
	echo
	echo
	echo "The raw data: \`results.csv\`; per run, under \`raw/\` of the run directory"
	echo "(\`build/default/sla-report\` for \`make sla-report\`, which copies only the"
	echo "report, its plots and CSVs into docs/sla/), the daemons' logs, \`ha-ctl status\`"
	echo "at the start and end, and every request's latency."

	if [ "$plots" = 1 ] && [ -s "$good" ]; then
		echo
		echo "## Plots"
		echo
		[ "$has_lat" -gt 0 ] && echo "![client latency](latency.svg)" && echo
		echo "![overhead](overhead.svg)"
		echo
		echo "![replication traffic](traffic.svg)"
	fi

	if [ -n "$sla_p99" ]; then
		echo
		echo "## Recommendation for p99 <= $sla_p99 ms$( [ "$sla_tput" -gt 0 ] 2>/dev/null && echo " and throughput >= $sla_tput rps")"
		echo
		best=$(awk -F, -v p="$sla_p99" -v t="$sla_tput" '$10 != "-" && $10 + 0 <= p + 0 && $7 + 0 >= t + 0 { b = $0 } END { print b }' "$good")
		if [ -n "$best" ]; then
			biv=$(echo "$best" | cut -d, -f1)
			echo "**Use an epoch interval of $biv ms**: the largest measured interval that met the target."
			echo
			echo "$best" | awk -F, -v b99="$b_p99" -v bt="$b_tput" '{
				printf "Evidence: at %s ms the client p99 was %s ms (unprotected: %s ms), p99.9 %s ms, throughput %s rps (unprotected: %s), pauses p99 %s us, %s bytes per epoch, primary CPU %s%%, secondary CPU %s%%.\n", $1, $10, b99, $11, $7, bt, $14, $16, $20, $21 }'
			awk -F, -v p="$sla_p99" -v t="$sla_tput" -v iv="$biv" '$1 + 0 > iv + 0 { printf "\nAt %s ms: p99 %s ms, throughput %s rps: %s.\n", $1, $10, $7, ($10 + 0 > p + 0 ? "misses the latency target" : ($7 + 0 < t + 0 ? "misses the throughput floor" : "meets it too, but a shorter interval was taken because a longer one between them failed")); exit }' "$good"
		else
			echo "**No measured interval met the target.**"
			first=$(head -n 1 "$good")
			[ -n "$first" ] && echo "$first" | awk -F, '{ printf "\nThe shortest measured, %s ms, gave p99 %s ms and %s rps; the unprotected guest: see the table. Try shorter intervals, a faster link, or a looser target.\n", $1, $10, $7 }'
		fi
		auto=$(awk -F, 'NR > 1 && $2 ~ /^auto-p99-/ && $26 != "failed"' "$csv" | head -n 1)
		[ -n "$auto" ] && echo "$auto" | awk -F, '{ t = $2; sub(/^auto-p99-/, "", t)
			printf "\nWith `--interval auto --sla-p99 %s` on the same load the client p99 was %s ms (p99.9 %s ms), at %s rps; the interval was %s ms at the end of the run.\n", t, $10, $11, $7, $23 }'
		echo
		echo "Longer intervals cost less (fewer pauses, fewer pages and octets per"
		echo "second of guest time, less CPU), so the largest interval that meets"
		echo "the target is the one to choose. \`ha-protect --interval auto --sla-p99"
		echo "$sla_p99\` tracks that choice as the load changes."
	fi

	if [ -s "$step" ]; then
		echo
		echo "## Adaptive interval under a load step"
		echo
		target=$(echo "$params" | tr ' ' '\n' | sed -n 's/^step_target=//p')
		echo "\`ha-protect --interval auto --sla-p99 ${target:-?}\` protecting the kv guest while a light"
		echo "client (100 requests/s, 10% writes) measures latency throughout, and a"
		echo "heavy writer ($(echo "$params" | tr ' ' '\n' | sed -n 's/^step_heavy_rate=//p') PUTs/s of 256-octet values over 200,000 keys) runs in the"
		echo "middle phase; then the same load on the guest unprotected, for the"
		echo "latency the guest and the machine add by themselves. The interval,"
		echo "the controller's aim and the client's latency, sampled every 250 ms:"
		echo
		[ "$interrupted" = 1 ] && echo "**The session was interrupted: the step below may be cut short, its unprotected run missing.**" && echo
		[ "$plots" = 1 ] && echo "![load step](step.svg)" && echo
		echo "| phase | seconds | interval ms (median) | interval range ms | dirty pages/ms (median) | client requests | client p50 ms | client p99 ms | unprotected p50 ms | unprotected p99 ms |"
		echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
		lat=$dir/raw/step/latency.txt
		ulat=$dir/raw/step-unprotected/latency.txt
		awk -F, 'NR > 1 { print }' "$step" | awk -F, '
			{ if ($2 != cur) { n++; cur = $2; name[n] = $2 (n > 1 && $2 == "idle" ? " again" : ""); start[n] = $1 }
			  stop[n] = $1; iv[n, ++c[n]] = $3; d[n, c[n]] = $5 }
			function med(arr, k, m,  i, j, x, v) { for (i = 1; i <= m; i++) v[i] = arr[k, i] + 0
				for (i = 2; i <= m; i++) { x = v[i]; j = i - 1; while (j > 0 && v[j] > x) { v[j + 1] = v[j]; j-- } v[j + 1] = x }
				return v[int((m + 1) / 2)] }
			function lo(arr, k, m,  i, r) { r = arr[k, 1] + 0; for (i = 2; i <= m; i++) if (arr[k, i] + 0 < r) r = arr[k, i] + 0; return r }
			function hi(arr, k, m,  i, r) { r = arr[k, 1] + 0; for (i = 2; i <= m; i++) if (arr[k, i] + 0 > r) r = arr[k, i] + 0; return r }
			END { for (k = 1; k <= n; k++) printf "%s|%s|%s|%s|%s|%s|%s\n", name[k], start[k], stop[k], med(iv, k, c[k]), lo(iv, k, c[k]), hi(iv, k, c[k]), med(d, k, c[k]) }' |
			while IFS='|' read -r name from to med lo hi dmed; do
				set -- $( [ -r "$lat" ] && awk -v a="$from" -v b="$to" '$1 / 1000 >= a && $1 / 1000 < b { print $2 }' "$lat" | sort -n | awk '
					{ v[NR] = $1 } function q(p,  i) { i = int(p * NR + 0.999999); if (i < 1) i = 1; return v[i] / 1000 }
					END { if (NR) printf "%d %.2f %.2f\n", NR, q(.5), q(.99); else print "0 - -" }')
				u=$( [ -r "$ulat" ] && awk -v a="$from" -v b="$to" '$1 / 1000 >= a && $1 / 1000 < b { print $2 }' "$ulat" | sort -n | awk '
					{ v[NR] = $1 } function q(p,  i) { i = int(p * NR + 0.999999); if (i < 1) i = 1; return v[i] / 1000 }
					END { if (NR) printf "%.2f | %.2f\n", q(.5), q(.99); else print "- | -" }')
				echo "| ${name} | ${from}-${to} | $med | $lo-$hi | $dmed | ${1:--} | ${2:--} | ${3:--} | ${u:-- | -} |"
			done
		echo
		n=$(wc -l <"$dir/raw/step/changes.log" 2>/dev/null || echo 0)
		echo "The controller changed the interval $n times (\`raw/step/changes.log\`):"
		echo
		echo '```'
		sed 's/^[0-9-]*T\([^ ]*\)Z [^ ]* info: /\1 /' "$dir/raw/step/changes.log" 2>/dev/null | head -n 40
		echo '```'
	fi
} >"$md"

[ "$plots" = 1 ] || { echo "ha-sla-report: gnuplot is missing; $md has no plots" >&2; exit 0; }

# --------------------------------------------------------------- the plots
if [ -s "$good" ]; then
	dat=$dir/plot.dat
	awk -F, '{ bps = ($24 > 0 && $12 != "-") ? $16 * $12 / $24 : 0; print $1, $8, $10, $11, $13, $14, $18, $19, $20, $21, bps / 1e6, $15, $7 }' "$good" | sed 's/ - / NaN /g; s/ - / NaN /g; s/ -$/ NaN/' >"$dat"
	common=$(cat <<EOF
set terminal svg size 900,450 dynamic font "sans,11"
set datafile missing "NaN"
set logscale x
set xlabel "epoch interval (ms)"
set grid
set key outside right top
set xrange [$(awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%g:%g", lo / 1.4, hi * 1.4 }' "$dat")]
set xtics ($(awk '{ printf "%s\"%s\" %s", (NR > 1 ? ", " : ""), $1, $1 }' "$dat"))
EOF
)
	rm -f "$dir/latency.svg"
	[ "$has_lat" -gt 0 ] && { gnuplot <<EOF || echo "ha-sla-report: gnuplot failed (latency)" >&2; }
$common
set output "$dir/latency.svg"
set title "Client latency vs epoch interval"
set ylabel "latency (ms)"
set logscale y
$( [ -n "$b_p99" ] && [ "$b_p99" != "-" ] && echo "u99 = $b_p99; u50 = $b_p50; u999 = $b_p999" || echo "u99 = NaN; u50 = NaN; u999 = NaN")
plot "$dat" using 1:2 with linespoints title "p50", \
     "" using 1:3 with linespoints title "p99", \
     "" using 1:4 with linespoints title "p99.9", \
     u50 with lines dashtype 2 title "p50 unprotected", \
     u99 with lines dashtype 2 title "p99 unprotected", \
     u999 with lines dashtype 2 title "p99.9 unprotected"$( [ -n "$sla_p99" ] && echo ", \\
     $sla_p99 with lines lw 2 title \"target p99\"")
EOF
	gnuplot <<EOF || echo "ha-sla-report: gnuplot failed (overhead)" >&2
$common
set output "$dir/overhead.svg"
set title "Checkpoint overhead vs epoch interval"
set ylabel "time (us)"
set y2label "CPU (% of a core)"
set y2tics
set logscale y
plot "$dat" using 1:6 with linespoints title "pause p99 (us)", \
     "" using 1:5 with linespoints title "pause p50 (us)", \
     "" using 1:8 with linespoints title "ACK p99 (us)", \
     "" using 1:9 axes x1y2 with linespoints dashtype 2 title "CPU primary (%)", \
     "" using 1:10 axes x1y2 with linespoints dashtype 2 title "CPU secondary (%)"
EOF
	gnuplot <<EOF || echo "ha-sla-report: gnuplot failed (traffic)" >&2
$common
set output "$dir/traffic.svg"
set title "Replication traffic vs epoch interval"
set ylabel "MB/s on the wire"
set y2label "pages per epoch"
set y2tics
plot "$dat" using 1:11 with linespoints title "MB/s sent", \
     "" using 1:12 axes x1y2 with linespoints dashtype 2 title "pages per epoch"
EOF
fi

if [ -s "$step" ]; then
	# The light client's p99 per second, protected and unprotected.
	per_second_p99() {
		if [ -r "$1" ]; then
			awk '{ s = int($1 / 1000); print s, $2 / 1000 }' "$1" | sort -k1,1n -k2,2n | awk '
				$1 != cur { if (n) print cur + 0.5, v[int(0.99 * n + 0.999999)]; cur = $1; n = 0 }
				{ v[++n] = $2 } END { if (n) print cur + 0.5, v[int(0.99 * n + 0.999999)] }'
		else
			echo "NaN NaN"
		fi
	}
	per_second_p99 "$dir/raw/step/latency.txt" >"$dir/step-lat.dat"
	per_second_p99 "$dir/raw/step-unprotected/latency.txt" >"$dir/step-lat-u.dat"
	awk -F, 'NR > 1 { print $1, $3, $4, ($5 == "" ? "NaN" : $5), ($2 == "heavy" ? 1 : 0) }' "$step" >"$dir/step.dat"
	target=$(echo "$params" | tr ' ' '\n' | sed -n 's/^step_target=//p')
	gnuplot <<EOF || echo "ha-sla-report: gnuplot failed" >&2
set terminal svg size 900,500 dynamic font "sans,11"
set output "$dir/step.svg"
set title "--interval auto --sla-p99 ${target:-?}: idle, heavy writes, idle"
set xlabel "time (s)"
set ylabel "ms"
set y2label "dirty pages per ms"
set y2tics
set grid
set key outside right top
set logscale y
$(awk -F, 'NR > 1 && $2 != p { if (p != "") printf "set arrow from %s, graph 0 to %s, graph 1 nohead dashtype 3\n", $1, $1; p = $2 }' "$step")
plot "$dir/step.dat" using 1:2 with steps lw 2 title "interval (ms)", \
     "" using 1:3 with steps dashtype 2 title "aim (ms)", \
     "$dir/step-lat.dat" using 1:2 with linespoints title "client p99 per second (ms)", \
     "$dir/step-lat-u.dat" using 1:2 with lines dashtype 2 title "... unprotected (ms)", \
     ${target:-NaN} with lines lw 1 title "target p99", \
     "$dir/step.dat" using 1:4 axes x1y2 with lines title "dirty rate (pages/ms)"
EOF
fi
echo "ha-sla-report: wrote $md" >&2
