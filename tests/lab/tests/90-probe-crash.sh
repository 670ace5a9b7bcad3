#!/bin/bash
# Probe (not in the default set; run it by name): how often do PVH domUs
# die under checkpoints in this lab? Boots one domU per mode (and per
# copy), all at once, and drives each for a window:
#   remus    stock `xl remus -F -n -d -i 100` to a receiver on dom0 itself,
#            as 30-xl-remus does (with -b, to /dev/null, its pre-copy never
#            ended in this lab: no checkpoint in a 420 s window)
#   protect  ha-protect -F -b -n -u -i 100 (checkpoints to /dev/null)
#   savec    `xl save -c` in a loop (a full checkpoint to a file, the
#            domain runs on): the suspend/resume cycle without log-dirty
#   pause    `xl pause`/`xl unpause` every 100 ms
#   idle     nothing (the unprotected baseline)
# then prints, per mode, checkpoints and deaths (boot deaths apart):
#   LAB: FIGURE 90-probe-crash mode=M doms=N secs=S protected_checkpoints=C
#        domu_crashes=D triple_faults=T panics=P boot_deaths=B per_1000=R
# Any death fails the test (init.sh), figures and all. Parameters on dom0's
# command line (run.sh: LAB_DOM0_ARGS): lab.probe.modes=remus+protect+...
# (default remus+protect+savec+idle), lab.probe.copies=N (domUs per mode,
# default 1), lab.probe.secs=S (window, default 300), lab.probe.extra=A,B
# (domU kernel options, commas for spaces), lab.probe.tsc_mode=M (xl's
# tsc_mode for the domUs, e.g. native: Xen does not trap their RDTSC).
# lab-default: no
# lab-tool: probe
# lab-timeout: 1500
set -u
. "$LAB_LIB"
# Deaths are counted here, not turned into an early failure.
LAB_WATCH=0

modes="remus protect savec idle"
copies=1
secs=300
extra=""
tsc_mode=""
for a in $(cat /proc/cmdline); do
	case $a in
	lab.probe.modes=*) modes=$(tr '+' ' ' <<<"${a#lab.probe.modes=}") ;;
	lab.probe.copies=*) copies=${a#lab.probe.copies=} ;;
	lab.probe.secs=*) secs=${a#lab.probe.secs=} ;;
	lab.probe.extra=*) extra=$(tr ',' ' ' <<<"${a#lab.probe.extra=}") ;;
	lab.probe.tsc_mode=*) tsc_mode=${a#lab.probe.tsc_mode=} ;;
	esac
done
T=$LAB_TMP
export HA_XEN_SUSPEND_TIMEOUT_MS=60000
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	return 0
}
trap cleanup EXIT
echo "probe: modes '$modes' x $copies, window ${secs}s, domU extra '$extra'${tsc_mode:+, tsc_mode $tsc_mode}"
cfg=()
[ -n "$extra" ] && cfg+=("extra = \"console=hvc0 loglevel=3 pci=noearly rdinit=/init $extra\"")
[ -n "$tsc_mode" ] && cfg+=("tsc_mode = \"$tsc_mode\"")

doms=()
declare -A mode_of id_of boot_dead
for m in $modes; do
	for c in $(seq 1 "$copies"); do
		d=p$m$c
		domu_create "$d" "${cfg[@]}" >"$T/$d.create" 2>&1 ||
			lab_fail "xl create $d: $(tail -n 1 "$T/$d.create")"
		doms+=("$d")
		mode_of[$d]=$m
		id_of[$d]=$(domu_id "$d")
		echo "probe: created $d (domain ${id_of[$d]})"
	done
done
# Boot: each domU counts, or died booting.
up() {
	local d dead
	dead=$(lab_dead_domus)
	for d in "${doms[@]}"; do
		[ "$(domu_count "$d")" -ge 0 ] || grep -q "^$d " <<<"$dead" || return 1
	done
}
tb=$(now_ms)
wait_for 600 up || echo "probe: not every domU counts after 600 s"
echo "probe: domUs up after $((($(now_ms) - tb) / 1000)) s"
for d in "${doms[@]}"; do
	boot_dead[$d]=0
	if domu_crashed "$d" || [ "$(domu_count "$d")" -lt 0 ]; then
		boot_dead[$d]=1
		echo "probe: $d (domain ${id_of[$d]}) did not boot: $(domu_crash_kind "$d")"
	fi
done

# The drivers.
savec_loop() { # NAME: xl save -c until told to stop
	local n=0
	while [ ! -e "$T/stop" ]; do
		xl save -c "$1" "$T/$1.save" >>"$T/$1.savec.log" 2>&1 || { echo "save failed" >>"$T/$1.savec.log"; break; }
		n=$((n + 1))
		echo "$n" >"$T/$1.n"
		rm -f "$T/$1.save"
	done
}
pause_loop() {
	local n=0
	while [ ! -e "$T/stop" ]; do
		xl pause "$1" && sleep 0.05 && xl unpause "$1" || break
		n=$((n + 1))
		echo "$n" >"$T/$1.n"
		sleep 0.1
	done
}
declare -A drv
t0=$(now_ms)
for d in "${doms[@]}"; do
	[ "${boot_dead[$d]}" = 0 ] || continue
	case ${mode_of[$d]} in
	remus) xl -vvv remus -F -n -d -i 100 -s "" "$d" \
		"exec xl -vvv migrate-receive -r -e 2>$T/$d.recv.log" >"$T/$d.out" 2>"$T/$d.log" & ;;
	protect) ha-protect -F -b -n -u -i 100 --ctl "$T/$d.sock" "xen:$d" >"$T/$d.log" 2>&1 & ;;
	savec) savec_loop "$d" & ;;
	pause) pause_loop "$d" & ;;
	idle) continue ;;
	*) lab_fail "unknown probe mode ${mode_of[$d]}" ;;
	esac
	drv[$d]=$!
	pids+=("$!")
done

# The window: note deaths as they come.
declare -A died_at
end=$((t0 + secs * 1000))
while [ "$(now_ms)" -lt "$end" ]; do
	sleep 5
	while read -r n id kind; do
		[ -n "$n" ] && [ -z "${died_at[$n]:-}" ] || continue
		died_at[$n]=$((($(now_ms) - t0) / 1000))
		echo "probe: $n (domain $id, ${mode_of[$n]:-?}) died after ${died_at[$n]} s: $kind"
	done < <(lab_dead_domus)
done

# Checkpoints per domU, then stop the drivers.
ckpts() { # NAME
	local d=$1 n
	case ${mode_of[$d]} in
	remus) grep -a -c 'Checkpointed save' "$T/$d.log" ;;
	protect)
		n=$(sed -n 's/.*stopped after \([0-9]*\) epochs.*/\1/p' "$T/$d.log" | tail -n 1)
		[ -n "$n" ] || n=$(sed -n 's/^epoch: \([0-9]*\).*/\1/p' "$T/$d.status" 2>/dev/null | head -n 1)
		echo "${n:-0}"
		;;
	savec | pause) cat "$T/$d.n" 2>/dev/null || echo 0 ;;
	*) echo 0 ;;
	esac
}
for d in "${doms[@]}"; do
	[ "${mode_of[$d]}" = protect ] && [ -S "$T/$d.sock" ] &&
		ha-ctl --ctl "$T/$d.sock" status "xen:$d" >"$T/$d.status" 2>&1
done
touch "$T/stop"
for d in "${doms[@]}"; do
	p=${drv[$d]:-}
	[ -n "$p" ] || continue
	case ${mode_of[$d]} in
	protect) kill -TERM "$p" 2>/dev/null ;;
	remus) xl destroy "$d--incoming" >/dev/null 2>&1 ;; # its backup; the primary below
	esac
done
for d in "${doms[@]}"; do
	p=${drv[$d]:-}
	[ -n "$p" ] && [ "${mode_of[$d]}" != remus ] && { wait_for 120 exited "$p" || kill -9 "$p" 2>/dev/null; }
done
# Late deaths (while stopping).
while read -r n id kind; do
	[ -n "$n" ] && [ -z "${died_at[$n]:-}" ] || continue
	died_at[$n]=$((($(now_ms) - t0) / 1000))
	echo "probe: $n (domain $id, ${mode_of[$n]:-?}) died after ${died_at[$n]} s: $kind"
done < <(lab_dead_domus)
xl dmesg >"$T/xen.log" 2>&1
xl list -v

# Figures per mode.
for m in $modes; do
	n=0 ck=0 tf=0 pa=0 bd=0 cr=0
	for d in "${doms[@]}"; do
		[ "${mode_of[$d]}" = "$m" ] || continue
		n=$((n + 1))
		id=${id_of[$d]}
		t=$(grep -a -c "d${id}v[0-9]* Triple fault" "$T/xen.log")
		p=0
		grep -a -q 'Kernel panic' $(domu_logs "$d") 2>/dev/null && p=1
		if [ "${boot_dead[$d]}" = 1 ]; then
			bd=$((bd + 1))
			continue
		fi
		c=$(ckpts "$d")
		ck=$((ck + c))
		tf=$((tf + t))
		pa=$((pa + p))
		# Dead: seen dead, or Xen logged its triple fault (xl remus may
		# resume a domain that faulted), or it panicked.
		[ -n "${died_at[$d]:-}" ] || [ "$t" -gt 0 ] || [ "$p" = 1 ] && cr=$((cr + 1))
		echo "probe: $d ($m, domain $id): $c checkpoints; ${died_at[$d]:+died after ${died_at[$d]} s}"
		if [ -n "${died_at[$d]:-}" ]; then
			domu_console "$d" 15
			[ -f "$T/$d.log" ] && { echo "--- $d's driver log (last lines)"; grep -a -v ': debug: ' "$T/$d.log" | tail -n 8; }
		fi
	done
	rate=$(awk -v c="$cr" -v k="$ck" 'BEGIN {if (k > 0) printf "%.2f", c * 1000 / k; else print "-"}')
	lab_figure mode="$m" doms="$n" secs="$secs" protected_checkpoints="$ck" domu_crashes="$cr" \
		triple_faults="$tf" panics="$pa" boot_deaths="$bd" per_1000="$rate"
done
for d in "${doms[@]}"; do xl destroy "$d" >/dev/null 2>&1; done
exit 0
