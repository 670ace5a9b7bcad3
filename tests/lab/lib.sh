# Helpers for lab tests (bash, inside the lab's dom0): . "$LAB_LIB"
# docs/lab.md describes the environment and the result protocol.

lab_figure() { # KEY=VALUE ...
	echo "LAB: FIGURE $LAB_NAME $*"
}

lab_skip() {
	echo "$*" >>"$LAB_TMP/.reason"
	echo "SKIP: $*"
	exit 77
}

lab_fail() {
	echo "$*" >>"$LAB_TMP/.reason"
	echo "FAIL: $*"
	exit 1
}

# wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds.
wait_for() {
	local t=$1 i=0
	shift
	while [ "$i" -lt $((t * 10)) ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# Monotonic time in milliseconds.
now_ms() {
	local u
	read -r u _ </proc/uptime
	echo $((${u%.*} * 1000 + 10#${u#*.} * 10))
}

# domu_create NAME [CONFIG-LINE...]: start a PVH domU NAME from the sample
# config, extra lines appended (later settings win in xl configs).
domu_create() {
	local name=$1 cfg=$LAB_TMP/$1.cfg
	shift
	sed "s/^name = .*/name = \"$name\"/" "$LAB_DOMU_CFG" >"$cfg"
	for l in "$@"; do echo "$l" >>"$cfg"; done
	xl create -q "$cfg"
}

# The console logs of NAME (after a migration or remus the receiving side
# is logged as NAME--incoming).
domu_logs() {
	local f
	for f in "$LAB_CONSOLE_DIR/guest-$1.log" "$LAB_CONSOLE_DIR/guest-$1--incoming.log"; do
		[ -f "$f" ] && echo "$f"
	done
}

# domu_count NAME: the last counter value NAME printed (-1: none yet).
domu_count() {
	local logs
	logs=$(domu_logs "$1")
	[ -n "$logs" ] || { echo -1; return; }
	# shellcheck disable=SC2086
	cat $logs | tr -d '\r' | grep -a -o 'count [0-9]*' | awk 'BEGIN {m = -1} $2 > m {m = $2} END {print m}'
}

# domu_counting NAME SECONDS: true when NAME's counter advances within SECONDS.
domu_counting() {
	local c0
	c0=$(domu_count "$1")
	wait_for "$2" sh -c "[ \"\$(. '$LAB_LIB'; LAB_CONSOLE_DIR='$LAB_CONSOLE_DIR' domu_count '$1')\" -gt '$c0' ]"
}

# domu_rate NAME SECONDS: counts per second over SECONDS of wall time.
domu_rate() {
	local c0 c1 t0 t1
	c0=$(domu_count "$1")
	t0=$(now_ms)
	sleep "$2"
	c1=$(domu_count "$1")
	t1=$(now_ms)
	awk -v c="$((c1 - c0))" -v t="$((t1 - t0))" 'BEGIN {printf "%.2f", (t > 0 ? c * 1000 / t : 0)}'
}

# domu_id NAME: its domain id, empty if it does not exist.
domu_id() {
	xl domid "$1" 2>/dev/null
}

# domu_state NAME: xl list's state column (r, b, p, s, c, d, -).
domu_state() {
	xl list "$1" 2>/dev/null | awk 'NR == 2 {print $5}'
}

# domu_crashed NAME: true when NAME is in the crashed state (on_crash =
# "preserve" keeps it). Xen logs triple faults only at guest_loglvl=info,
# which the lab leaves off (it would print ~20 lines per checkpoint), so a
# crash is told apart by the console: a guest panic prints "Kernel panic",
# a triple fault prints nothing.
domu_crashed() {
	xl list "$1" 2>/dev/null | awk 'NR == 2 {exit !($5 ~ /c/)}'
}

# domu_crash_kind NAME: "guest panic" or "triple fault" for a crashed NAME.
domu_crash_kind() {
	local logs
	logs=$(domu_logs "$1")
	# shellcheck disable=SC2086
	if [ -n "$logs" ] && cat $logs | grep -a -q 'Kernel panic'; then
		echo "guest panic"
	else
		echo "triple fault"
	fi
}

# Every crashed domU now, one "NAME KIND" per line.
lab_crashes() {
	local n
	for n in $(xl list 2>/dev/null | awk 'NR > 2 && $5 ~ /c/ {print $1}'); do
		echo "$n $(domu_crash_kind "$n")"
	done
}

# exited PID: true when PID is gone, or a zombie of ours.
exited() {
	[ ! -e "/proc/$1" ] || [ "$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null)" = Z ]
}

# status_field FILE KEY: the value after "KEY: " in an `ha-ctl status` output.
status_field() {
	sed -n "s/^$2: //p" "$1" | head -n 1
}
