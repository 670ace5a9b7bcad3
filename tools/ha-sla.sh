#!/bin/sh
# ha-sla: measures what each epoch interval costs and buys, so that the
# interval is chosen from figures instead of guessed.
#
# For every interval of a list (and once unprotected, the baseline) it
# builds a fresh primary / secondary / client topology of network
# namespaces on this machine, starts the test guest on the primary, protects
# it, runs the workload for a fixed time and collects:
#   client latency p50/p95/p99/p99.9 and throughput (ha-client load),
#   pause p50/p99, pages and bytes per epoch, wire ratio, ACK latency p50/p99
#   (ha-ctl status, differenced between the start and the end of the run),
#   CPU of the primary (ha-protect) and the secondary (everything in its
#   namespace) from /proc/PID/stat.
# It writes results.csv, report.md with gnuplot plots (SVG) and prints a
# table. --sla p99=MS[,tput=RPS] recommends the largest interval meeting it.
# --step adds a run of ha-protect --interval auto under a load step (idle,
# heavy writes, idle), and the same step unprotected, and plots what the
# controller did.
# Interrupting (Ctrl-C) finishes the run in progress early and still writes
# everything measured so far.
set -u

usage() {
	cat <<EOF
usage: ha-sla [options]
  --out DIR            report directory (default ./sla-report)
  --guest kv|dirty     workload: the kv store under a client load (default), or
                       the dirty guest (raw dirty rate, no client)
  --intervals LIST     epoch intervals in ms, comma-separated
                       (default 5,10,25,50,100,200); 'auto' adds a run of
                       --interval auto --sla-p99 (the --step-target)
  --duration S         seconds measured per interval (default 20)
  --rate N             kv: client requests per second (default 500)
  --write F            kv: share of PUTs, 0..1 (default 0.5)
  --keys N             kv: distinct keys (default 20000)
  --value-size B       kv: octets per value, 1..256 (default 200)
  --dirty-rate N       dirty: pages written per ms (default 100)
  --dirty-ws N         dirty: working set in pages (default 20000)
  --mem SIZE           guest memory (default 128M)
  --sla p99=MS[,tput=RPS]
                       recommend the largest interval whose client p99 is at
                       most MS (and throughput at least RPS)
  --step               also run --interval auto under a load step, and the
                       same step unprotected
  --step-target MS     its --sla-p99 (default: the --sla p99, else 50)
  --step-phases S,S,S  idle, heavy, idle seconds (default 15,20,15)
  --step-heavy-rate N  PUTs per second of the heavy writer (default 2000)
  --no-baseline        skip the unprotected run
  --insecure           replicate over plain TCP (default: TLS 1.3 with a
                       pre-shared key made for the run, as in production)
  --title TEXT         report title
  --build DIR          build directory holding bin/ (default \$HA_BUILD or the
                       directory of this script's parent)
  -h, --help           this text
Needs root (network namespaces) and /dev/kvm. Each run takes about
DURATION + 5 s.
EOF
}

die() {
	echo "ha-sla: $*" >&2
	exit 1
}

# ------------------------------------------------------------------ options
out=./sla-report guest=kv intervals=5,10,25,50,100,200 duration=20
rate=500 write=0.5 keys=20000 vsize=200 dirty_rate=100 dirty_ws=20000 mem=128M
sla="" step=0 step_target="" step_phases=15,20,15 heavy_rate=2000 baseline=1 title=""
insecure=0
build=${HA_BUILD:-}
while [ $# -gt 0 ]; do
	case $1 in
	--out) out=$2; shift ;;
	--guest) guest=$2; shift ;;
	--intervals) intervals=$2; shift ;;
	--duration) duration=$2; shift ;;
	--rate) rate=$2; shift ;;
	--write) write=$2; shift ;;
	--keys) keys=$2; shift ;;
	--value-size) vsize=$2; shift ;;
	--dirty-rate) dirty_rate=$2; shift ;;
	--dirty-ws) dirty_ws=$2; shift ;;
	--mem) mem=$2; shift ;;
	--sla) sla=$2; shift ;;
	--step) step=1 ;;
	--step-target) step_target=$2; shift ;;
	--step-phases) step_phases=$2; shift ;;
	--step-heavy-rate) heavy_rate=$2; shift ;;
	--no-baseline) baseline=0 ;;
	--insecure) insecure=1 ;;
	--title) title=$2; shift ;;
	--build) build=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	[ $# -gt 0 ] || { usage >&2; exit 2; }
	shift
done
case $guest in kv | dirty) ;; *) die "--guest is kv or dirty" ;; esac
for v in $(echo "$intervals" | tr ',' ' ' | sed 's/\<auto\>//g') $duration $heavy_rate $rate $keys $vsize $dirty_rate $dirty_ws; do
	case $v in '' | *[!0-9]*) die "'$v' is not a whole number (intervals, durations, rates)" ;; esac
done
[ "$duration" -ge 1 ] || die "--duration must be at least 1 s"
sla_p99="" sla_tput=0
if [ -n "$sla" ]; then
	for kv in $(echo "$sla" | tr ',' ' '); do
		case $kv in
		p99=*) sla_p99=${kv#p99=} ;;
		tput=*) sla_tput=${kv#tput=} ;;
		*) die "--sla takes p99=MS and/or tput=RPS, comma-separated" ;;
		esac
	done
fi
[ -z "$step_target" ] && step_target=${sla_p99:-50}
[ "$step" = 1 ] && [ "$guest" != kv ] && die "--step needs the kv guest (its client sees the latency)"
[ "$guest" = dirty ] && baseline=0 # no client: nothing to compare
if [ -z "$build" ]; then
	# The build directory it sits in, or the installed layout: the link
	# /usr/bin/ha-sla leads to /usr/lib/ha-protect/bin/ha-sla.
	build=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
fi
bin=$(cd "$build/bin" 2>/dev/null && pwd) || die "no $build/bin: build first (make), or give --build"
for p in ha-vm ha-protect ha-receive ha-ctl ha-client; do
	[ -x "$bin/$p" ] || die "$bin/$p is missing: run make"
done
[ "$(id -u)" -eq 0 ] || die "needs root to create network namespaces"
[ -w /dev/kvm ] || die "/dev/kvm is missing or not writable: ha-vm cannot run here"
command -v gnuplot >/dev/null || echo "ha-sla: gnuplot is missing: the report will have no plots (apt-get install gnuplot-nox)" >&2

mkdir -p "$out/raw" || die "cannot create $out"
out=$(cd "$out" && pwd)
csv=$out/results.csv
# The replication link's security, the same on both sides.
if [ "$insecure" = 1 ]; then
	link_opts="--insecure"
else
	command -v openssl >/dev/null || die "openssl is missing (for the run's TLS key); or give --insecure"
	(umask 077 && printf 'ha-sla:%s\n' "$(openssl rand -hex 32)" >"$out/raw/psk")
	link_opts="--tls-psk $out/raw/psk"
fi
PREFIX=${HA_SLA_PREFIX:-sla$$-}
GUEST_IP=10.66.0.100
GUEST_MAC=52:54:00:aa:00:01
HZ=$(getconf CLK_TCK)
interrupted=0
tty=0
[ -t 2 ] && tty=1

# ----------------------------------------------------------------- topology
# The same topology as tests/integration/topology.sh, kept here because
# ha-sla is installed on its own (make install), without the tests.
# namespace a (primary: ha-vm, ha-protect), b (secondary: ha-receive and its
# incoming ha-vm), c (client), joined by a bridge in namespace sw.
ns() {
	n=$1
	shift
	ip netns exec "${PREFIX}$n" "$@"
}

ns_cleanup() {
	for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${PREFIX}"); do
		ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$n" 2>/dev/null
	done
}

topo_up() {
	for n in sw a b c; do ip netns add "${PREFIX}$n" || return 1; done
	ns sw ip link add br0 type bridge
	ns sw ip link set br0 up
	for h in a b c; do
		ns sw ip link add "sw-$h" type veth peer name "${h}0" netns "${PREFIX}$h"
		ns sw ip link set "sw-$h" master br0 up
		ns "$h" ip link set lo up
		ns "$h" ip link set "${h}0" up
	done
	for h in a b; do
		ns "$h" ip link add "br$h" type bridge
		ns "$h" ip tuntap add "tap$h" mode tap
		ns "$h" ip link set "${h}0" master "br$h"
		ns "$h" ip link set "tap$h" master "br$h" up
		ns "$h" ip link set "br$h" up
	done
	ns a ip addr add 10.66.0.1/24 dev bra
	ns b ip addr add 10.66.0.2/24 dev brb
	ns c ip addr add 10.66.0.3/24 dev c0
}

wait_for() { # seconds, command
	t=$1
	shift
	i=0
	while [ "$i" -lt $((t * 10)) ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# CPU seconds x HZ used so far by the given pids (utime + stime).
cpu_ticks() {
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] && sed 's/^.*) //' "/proc/$p/stat"
	done | awk '{ t += $12 + $13 } END { print t + 0 }'
}

# The kv guest answers (a few requests from the client namespace).
warm() {
	ns c "$bin/ha-client" load "$GUEST_IP:7001" --rate 50 --write 0 --duration 0.2 \
		--timeout 300 | grep -q ' ok [1-9]'
}

pid_in() { # namespace, command name: the pid of that program there
	for p in $(ip netns pids "${PREFIX}$1" 2>/dev/null); do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$2" ] && echo "$p" && return 0
	done
	return 1
}

# "busy total" jiffies of all CPUs, for the machine's load during a run.
host_cpu() {
	awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

status() { # run dir
	ns a env HA_RUN_DIR="$(rundir "$1")/a" "$bin/ha-ctl" status kvm:sla 2>/dev/null
}

on_int() {
	interrupted=1
	echo >&2
	echo "ha-sla: interrupted: finishing the current run early and writing what was measured" >&2
	# The load generators stop early and still print their summary.
	ip netns pids "${PREFIX}c" 2>/dev/null | xargs -r kill -TERM 2>/dev/null
	[ -n "${load_pid:-}" ] && kill "$load_pid" 2>/dev/null
}
trap on_int INT TERM
# The runs' sockets live in a temporary directory, not under --out (which
# may be on a file system where Unix sockets cannot be bound, as the KVM
# lab's virtio-9p).
runroot=$(mktemp -d /tmp/ha-sla.XXXXXX)
rundir() { echo "$runroot/${1##*/}"; }
trap 'ns_cleanup; rm -rf "$runroot"' EXIT

progress() { # label, seconds total; polls while the load runs
	label=$1 total=$2 t0=$(date +%s) last=-1
	shift 2
	while :; do
		alive=0
		for p in "$@"; do
			case $p in *[!0-9]*) continue ;; esac
			kill -0 "$p" 2>/dev/null && alive=1
		done
		[ "$alive" = 1 ] || break
		[ "$interrupted" = 1 ] && break
		sleep 0.2
		el=$(($(date +%s) - t0))
		[ "$el" = "${shown:-}" ] && continue
		shown=$el
		if [ "$tty" = 1 ]; then
			ep=$(status "$dir" | awk '$1 == "epoch:" { print $2 }')
			iv=$(status "$dir" | awk '$1 == "interval_ms:" { print $2 }')
			printf '\r  %s: %d/%d s%s   ' "$label" "$el" "$total" \
				"${ep:+, epoch $ep, interval $iv ms}" >&2
		elif [ $((el / 10)) != "$last" ]; then
			last=$((el / 10))
			echo "  $label: $el/$total s" >&2
		fi
	done
	[ "$tty" = 1 ] && printf '\r%60s\r' '' >&2
}

# Quantile of the difference of two "MID:COUNT ..." histogram lines.
hist_q() { # before after q
	printf '%s\n%s\n' "$1" "$2" | awk -v q="$3" '
		NR == 1 { for (i = 1; i <= NF; i++) { split($i, a, ":"); b[a[1]] = a[2] } }
		NR == 2 { for (i = 1; i <= NF; i++) { split($i, a, ":"); d = a[2] - b[a[1]]
			if (d > 0) { c[a[1]] = d; n += d } } }
		END { if (!n) { print "-"; exit }
			m = 0; for (k in c) v[++m] = k + 0
			for (i = 2; i <= m; i++) { x = v[i]; j = i - 1
				while (j > 0 && v[j] > x) { v[j + 1] = v[j]; j-- } v[j + 1] = x }
			need = int(q * n); if (need >= n) need = n - 1
			s = 0; for (i = 1; i <= m; i++) { s += c[v[i]]; if (s > need) { print v[i]; exit } } }'
}

field() { # status text, key, word index after the key
	printf '%s\n' "$1" | awk -v k="$2" -v i="$3" '$1 == k { print $(i + 1) }'
}

totals() { # status text, name
	printf '%s\n' "$1" | awk -v k="$2" '$1 == "totals:" { for (i = 2; i < NF; i += 2) if ($i == k) print $(i + 1) }'
}

guest_args() {
	if [ "$guest" = kv ]; then
		echo "--guest kv --arg 0=$((keys * 2 > 16384 ? keys * 2 : 16384))"
	else
		echo "--guest dirty --arg 0=$dirty_rate --arg 1=$dirty_ws"
	fi
}

# run_one LABEL INTERVAL|none|auto: one topology, one measurement, one CSV row.
run_one() {
	label=$1 iv=$2
	dir=$out/raw/$label
	rm -rf "$dir"
	mkdir -p "$dir"
	ns_cleanup
	topo_up || { echo "ha-sla: cannot build the namespaces" >&2; return 1; }
	if [ "$iv" != none ]; then
		ns b env HA_RUN_DIR="$(rundir "$dir")/b" HA_VM_ARGS="--tap tapb" \
			"$bin/ha-receive" $link_opts --listen 10.66.0.2:7788 --timeout 2000 >"$dir/rx.log" 2>&1 &
	fi
	# shellcheck disable=SC2046
	ns a env HA_RUN_DIR="$(rundir "$dir")/a" "$bin/ha-vm" run --name sla --mem "$mem" $(guest_args) \
		--tap tapa --ip "$GUEST_IP/24" --mac "$GUEST_MAC" >"$dir/vm.log" 2>&1 &
	wait_for 10 test -S "$(rundir "$dir")/a/ha-vm/sla.sock" || { echo "ha-sla: ha-vm did not start:" >&2; tail -5 "$dir/vm.log" >&2; return 1; }
	px=""
	if [ "$iv" != none ]; then
		if [ "$iv" = auto ]; then
			iopt="-i auto --sla-p99 $step_target"
		else
			iopt="-i $iv"
		fi
		# shellcheck disable=SC2086
		ns a env HA_RUN_DIR="$(rundir "$dir")/a" "$bin/ha-protect" $link_opts $iopt --timeout 2000 \
			kvm:sla 10.66.0.2:7788 >"$dir/px.log" 2>&1 &
		wait_for 60 grep -q "PROTECTED:" "$dir/px.log" || {
			echo "ha-sla: protection did not start:" >&2
			tail -5 "$dir/px.log" "$dir/rx.log" >&2
			return 1
		}
		px=$(pid_in a ha-protect)
	fi
	if [ "$guest" = kv ]; then
		wait_for 15 warm || echo "ha-sla: the guest does not answer yet; measuring anyway" >&2
	fi
	# The window spans both snapshots (status, CPU), so that what they
	# difference happened inside it: on a slow host a snapshot takes long.
	t0=$(date +%s.%N)
	s0=$( [ -n "$px" ] && status "$dir")
	p0=$( [ -n "$px" ] && cpu_ticks "$px" || echo 0)
	spids=$(ip netns pids "${PREFIX}b" 2>/dev/null | tr '\n' ' ')
	# shellcheck disable=SC2086
	q0=$(cpu_ticks $spids)
	m0=$(host_cpu)
	load_pid=""
	if [ "$guest" = kv ]; then
		ns c "$bin/ha-client" load "$GUEST_IP:7001" --rate "$rate" --write "$write" \
			--keys "$keys" --value-size "$vsize" --duration "$duration" \
			--out "$dir/latency.txt" >"$dir/load.out" 2>"$dir/load.err" &
		load_pid=$!
	else
		sleep "$duration" &
		load_pid=$!
	fi
	progress "$label" "$duration" "$load_pid"
	wait "$load_pid" 2>/dev/null
	load_pid=""
	s1=$( [ -n "$px" ] && status "$dir")
	p1=$( [ -n "$px" ] && cpu_ticks "$px" || echo 0)
	# shellcheck disable=SC2086
	q1=$(cpu_ticks $spids)
	m1=$(host_cpu)
	t1=$(date +%s.%N)
	printf '%s\n' "$s0" >"$dir/status.start"
	printf '%s\n' "$s1" >"$dir/status.end"
	ns_cleanup

	# The window between the two snapshots (CPU, epochs); the load's own
	# duration (throughput) is what it reports.
	win=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	secs=$win
	# Client side.
	sent=- ok=- lost=- tput=- l50=- l95=- l99=- l999=-
	if [ "$guest" = kv ]; then
		set -- $(sed -n 's/^load: sent \([0-9]*\) ok \([0-9]*\) lost \([0-9]*\) errors \([0-9]*\) skipped \([0-9]*\) duration_s \([0-9.]*\).*/\1 \2 \3 \4 \5 \6/p' "$dir/load.out")
		if [ $# -eq 6 ]; then
			sent=$1 ok=$2 lost=$(($3 + $4 + $5))
			secs=$6
			tput=$(awk -v n="$ok" -v s="$secs" 'BEGIN { printf "%.1f", (s > 0 ? n / s : 0) }')
		fi
		set -- $(awk '{ print $2 }' "$dir/latency.txt" 2>/dev/null | sort -n | awk '
			{ v[NR] = $1 }
			function q(p,  i) { i = int(p * NR + 0.999999); if (i < 1) i = 1; return v[i] / 1000 }
			END { if (NR) printf "%.2f %.2f %.2f %.2f\n", q(.5), q(.95), q(.99), q(.999) }')
		[ $# -eq 4 ] && l50=$1 l95=$2 l99=$3 l999=$4
	fi
	# Checkpoint side, differenced between the two snapshots.
	epochs=- pause50=- pause99=- ppe=- bpe=- wratio=- ack50=- ack99=- cpup=- cpus=- stretched=- ivend=-
	if [ -n "$px" ] && [ -n "$s1" ]; then
		e0=$(totals "$s0" epochs) e1=$(totals "$s1" epochs)
		epochs=$((e1 - e0))
		if [ "$epochs" -gt 0 ]; then
			ppe=$(( ($(totals "$s1" pages) - $(totals "$s0" pages)) / epochs ))
			wire=$(( $(totals "$s1" wire_bytes) - $(totals "$s0" wire_bytes) ))
			raw=$(( $(totals "$s1" raw_bytes) - $(totals "$s0" raw_bytes) ))
			bpe=$((wire / epochs))
			wratio=$(awk -v w="$wire" -v r="$raw" 'BEGIN { printf "%.3f", r ? w / r : 0 }')
		fi
		stretched=$(( $(totals "$s1" stretched) - $(totals "$s0" stretched) ))
		h0=$(printf '%s\n' "$s0" | sed -n 's/^pause_hist_us: *//p')
		h1=$(printf '%s\n' "$s1" | sed -n 's/^pause_hist_us: *//p')
		pause50=$(hist_q "$h0" "$h1" 0.5) pause99=$(hist_q "$h0" "$h1" 0.99)
		h0=$(printf '%s\n' "$s0" | sed -n 's/^ack_hist_us: *//p')
		h1=$(printf '%s\n' "$s1" | sed -n 's/^ack_hist_us: *//p')
		ack50=$(hist_q "$h0" "$h1" 0.5) ack99=$(hist_q "$h0" "$h1" 0.99)
		cpup=$(awk -v a="$p0" -v b="$p1" -v hz="$HZ" -v s="$win" 'BEGIN { printf "%.1f", (b - a) / hz / s * 100 }')
		cpus=$(awk -v a="$q0" -v b="$q1" -v hz="$HZ" -v s="$win" 'BEGIN { printf "%.1f", (b - a) / hz / s * 100 }')
		ivend=$(field "$s1" interval_ms: 1)
	fi
	mode=protected
	[ "$iv" = none ] && mode=unprotected
	[ "$iv" = auto ] && mode="auto-p99-$step_target"
	busy=$(printf '%s %s\n' "$m0" "$m1" | awk '{ d = $4 - $2; printf "%.0f", (d > 0 ? ($3 - $1) / d * 100 : 0) }')
	row="$label,$mode,$secs,$sent,$ok,$lost,$tput,$l50,$l95,$l99,$l999,$epochs,$pause50,$pause99,$ppe,$bpe,$wratio,$ack50,$ack99,$cpup,$cpus,$stretched,$ivend,$win,$busy"
	[ "$interrupted" = 1 ] && row="$row,interrupted" || row="$row,"
	echo "$row" >>"$csv"
	print_row "$row"
}

header="interval_ms,mode,seconds,requests,ok,lost,throughput_rps,lat_p50_ms,lat_p95_ms,lat_p99_ms,lat_p999_ms,epochs,pause_p50_us,pause_p99_us,pages_per_epoch,bytes_per_epoch,wire_ratio,ack_p50_us,ack_p99_us,cpu_primary_pct,cpu_secondary_pct,stretched_epochs,interval_end_ms,window_s,host_busy_pct,note"

print_head() {
	printf '%-9s %8s %7s %7s %7s %8s %6s %7s %7s %7s %9s %6s %7s %7s %6s %6s\n' \
		interval rps p50ms p95ms p99ms p99.9ms epochs pause50 pause99 pages/ep bytes/ep wire ack50us ack99us cpuP% cpuS% >&2
}

print_row() {
	echo "$1" | awk -F, '{ printf "%-9s %8s %7s %7s %7s %8s %6s %7s %7s %7s %9s %6s %7s %7s %6s %6s%s\n",
		$1, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, ($26 != "" ? "  (" $26 ")" : "") }' >&2
}

# ------------------------------------------------------------------ the runs
ns_cleanup
started_at=$(date -u '+%Y-%m-%d %H:%M UTC')
echo "$header" >"$csv"
n_runs=$(echo "$intervals" | tr ',' '\n' | grep -c .)
[ "$baseline" = 1 ] && n_runs=$((n_runs + 1))
echo "ha-sla: $n_runs runs of ${duration} s, guest $guest$([ "$guest" = kv ] && echo ", $rate req/s, write fraction $write"); report in $out" >&2
print_head
if [ "$baseline" = 1 ] && [ "$interrupted" = 0 ]; then
	run_one unprotected none || echo "unprotected,unprotected,0,,,,,,,,,,,,,,,,,,,,,,,failed" >>"$csv"
fi
for iv in $(echo "$intervals" | tr ',' ' '); do
	[ "$interrupted" = 1 ] && break
	run_one "$iv" "$iv" || echo "$iv,protected,0,,,,,,,,,,,,,,,,,,,,,,,failed" >>"$csv"
done

# --------------------------------------------------------- the load step
# run_step auto|none: the kv guest under a light client throughout and a
# heavy writer in the middle phase, protected with --interval auto (status
# sampled every 250 ms into step.csv) or unprotected (the baseline).
run_step() {
	smode=$1
	dir=$out/raw/step
	[ "$smode" = none ] && dir=$out/raw/step-unprotected
	rm -rf "$dir"
	mkdir -p "$dir"
	ns_cleanup
	topo_up || { echo "ha-sla: cannot build the namespaces" >&2; return 1; }
	if [ "$smode" = auto ]; then
		ns b env HA_RUN_DIR="$(rundir "$dir")/b" HA_VM_ARGS="--tap tapb" \
			"$bin/ha-receive" $link_opts --listen 10.66.0.2:7788 --timeout 2000 >"$dir/rx.log" 2>&1 &
	fi
	ns a env HA_RUN_DIR="$(rundir "$dir")/a" "$bin/ha-vm" run --name sla --mem "$mem" --guest kv \
		--arg 0=262144 --tap tapa --ip "$GUEST_IP/24" --mac "$GUEST_MAC" >"$dir/vm.log" 2>&1 &
	wait_for 10 test -S "$(rundir "$dir")/a/ha-vm/sla.sock" || { echo "ha-sla: ha-vm did not start" >&2; return 1; }
	if [ "$smode" = auto ]; then
		# -v: px.log keeps every epoch's observation (a trace to replay).
		ns a env HA_RUN_DIR="$(rundir "$dir")/a" "$bin/ha-protect" $link_opts -v -i auto --sla-p99 "$step_target" \
			--timeout 2000 kvm:sla 10.66.0.2:7788 >"$dir/px.log" 2>&1 &
		wait_for 60 grep -q "PROTECTED:" "$dir/px.log" || {
			echo "ha-sla: the step run did not start protecting:" >&2
			tail -5 "$dir/px.log" >&2
			return 1
		}
		echo "t_s,phase,interval_ms,aim_ms,dirty_pages_per_ms,predicted_p99_ms,ack_p99_us" >"$step_csv"
	fi
	wait_for 15 warm || echo "ha-sla: the guest does not answer yet; measuring anyway" >&2
	# The light client runs throughout and sees the latency.
	ns c "$bin/ha-client" load "$GUEST_IP:7001" --rate 100 --write 0.1 \
		--keys "$keys" --duration "$total" --seed 2 \
		--out "$dir/latency.txt" >"$dir/load.out" 2>&1 &
	load_pid=$!
	t0=$(date +%s.%N) started=0
	while kill -0 "$load_pid" 2>/dev/null && [ "$interrupted" = 0 ]; do
		t=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
		phase=idle
		if awk -v t="$t" -v a="$ph1" -v b="$((ph1 + ph2))" 'BEGIN { exit !(t >= a && t < b) }'; then
			phase=heavy
			if [ "$started" = 0 ]; then
				started=1
				ns c "$bin/ha-client" load "$GUEST_IP:7001" --rate "$heavy_rate" --write 1 \
					--keys 200000 --value-size 256 --duration "$ph2" --seed 3 \
					--out "$dir/heavy.txt" >"$dir/heavy.out" 2>&1 &
			fi
		fi
		if [ "$smode" = auto ]; then
			status "$dir" | awk -v t="$t" -v ph="$phase" '
				$1 == "interval_ms:" { iv = $2 }
				$1 == "interval_auto:" { aim = $3; pred = $6; dirty = $9 }
				$1 == "ack_latency_us:" { ack = $3 }
				END { gsub(",", "", pred); gsub(",", "", dirty); printf "%s,%s,%s,%s,%s,%s,%s\n", t, ph, iv, aim, dirty, pred, ack }' >>"$step_csv"
			[ "$tty" = 1 ] && printf '\r  step: %s s (%s), interval %s ms   ' "$t" "$phase" \
				"$(tail -n 1 "$step_csv" | cut -d, -f3)" >&2
		else
			[ "$tty" = 1 ] && printf '\r  step, unprotected: %s s (%s)   ' "$t" "$phase" >&2
		fi
		sleep 0.25
	done
	[ "$tty" = 1 ] && printf '\r%60s\r' '' >&2
	wait "$load_pid" 2>/dev/null
	load_pid=""
	sleep 0.5
	if [ "$smode" = auto ]; then
		status "$dir" >"$dir/status.end"
		grep "interval .* ms (auto)" "$dir/px.log" >"$dir/changes.log"
	fi
	ns_cleanup
}

step_csv=$out/step.csv
if [ "$step" = 1 ] && [ "$interrupted" = 0 ]; then
	set -- $(echo "$step_phases" | tr ',' ' ')
	ph1=$1 ph2=$2 ph3=$3
	total=$((ph1 + ph2 + ph3))
	echo "ha-sla: load step under --interval auto --sla-p99 $step_target: idle ${ph1} s, heavy writes ${ph2} s, idle ${ph3} s; then the same unprotected" >&2
	rm -f "$step_csv"
	run_step auto || echo "ha-sla: the load step under --interval auto failed" >&2
	[ "$interrupted" = 0 ] && { run_step none || echo "ha-sla: the unprotected load step failed" >&2; }
fi

# ------------------------------------------------------------------ report
# What the report needs besides the CSVs, so that ha-sla-report DIR can
# rewrite it later.
{
	echo "started=$started_at"
	echo "interrupted=$interrupted"
	echo "sla_p99=$sla_p99"
	echo "sla_tput=$sla_tput"
	echo "title=$title"
	echo "params=guest=$guest duration=$duration rate=$rate write=$write keys=$keys value_size=$vsize dirty_rate=$dirty_rate dirty_ws=$dirty_ws mem=$mem step_target=$step_target step_phases=$step_phases step_heavy_rate=$heavy_rate"
} >"$out/session.txt"
"$bin/ha-sla-report" "$out" || die "writing the report failed"
[ "$interrupted" = 1 ] && echo "ha-sla: interrupted; the report holds the runs measured so far" >&2
echo "ha-sla: wrote $out/report.md and $csv" >&2
exit 0
