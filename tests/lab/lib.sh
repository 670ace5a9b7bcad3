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

# wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds or
# SECONDS of dom0 time have passed (time, not polls: under load a poll
# takes long). Every second it also looks for a dead domU
# (lab_dead_domus): a domU that died fails the test at once, with its
# console (lab_domu_died), rather than the wait running into its timeout.
# A test that counts deaths itself (a probe) sets LAB_WATCH=0; its crashes
# still fail it (init.sh counts them from Xen's log).
wait_for() {
	local end=$(($(now_ms) + $1 * 1000)) next dead
	shift
	next=$(($(now_ms) + 1000))
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ "$(now_ms)" -lt "$end" ] || return 1
		if [ "${LAB_WATCH:-1}" = 1 ] && [ "$(now_ms)" -ge "$next" ]; then
			dead=$(lab_dead_domus | awk -v e=" $(cat "$LAB_TMP/.expected-panics" 2>/dev/null | tr '\n' ' ')" \
				'!($3 == "guest-panic" && index(e, " " $1 " "))')
			[ -z "$dead" ] || lab_domu_died "$dead" "while waiting for: $*"
			next=$(($(now_ms) + 1000))
		fi
		sleep 0.1
	done
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

# domu_extra WORDS: the base config's kernel command line (extra) with
# WORDS appended, as a line for domu_create.
domu_extra() {
	local base
	base=$(sed -n 's/^extra = "\(.*\)"$/\1/p' "$LAB_DOMU_CFG")
	echo "extra = \"$base $*\""
}

# domu_type NAME LINE: types LINE on NAME's console, through the console's
# pty in dom0 as `xl console` would (a domU given lab.crash acts on "crash").
domu_type() {
	local id tty
	id=$(domu_id "$1") || return 1
	tty=$(xenstore-read "/local/domain/$id/console/tty" 2>/dev/null) || return 1
	[ -c "$tty" ] || return 1
	printf '%s\n' "$2" >"$tty"
}

# lab_expect_panic NAME: the test panics NAME's kernel on purpose; its panic
# is not counted as a domU death (init.sh). Any other death still is.
lab_expect_panic() {
	echo "$1" >>"$LAB_TMP/.expected-panics"
}

# The console logs of NAME (after a migration or remus the receiving side
# is logged as NAME--incoming).
domu_logs() {
	local f
	# xenconsoled names a log after the domain's name when it connects:
	# xl migrate's receiver builds NAME--incoming, ha-receive's hot standby
	# NAME--standby, and both are renamed NAME later.
	for f in "$LAB_CONSOLE_DIR/guest-$1.log" "$LAB_CONSOLE_DIR/guest-$1--incoming.log" \
		"$LAB_CONSOLE_DIR/guest-$1--standby.log"; do
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

# How a domU dies in the lab. A guest panic is a crash (state c, kept by
# on_crash = "preserve"). A triple fault makes Xen invoke the HVM shutdown
# action, which is SHUTDOWN_reboot: xl would recreate the domain under a
# new id; the lab's config says on_reboot = "preserve", so it stays, shut
# down with reason code 1. A suspended domain (a checkpoint) is shut down
# too, with reason code 2: alive.
#
# lab_dead_domus: every dead domU now, "NAME ID KIND" per line, KIND one
# of triple-fault (reason 1), guest-panic (3), poweroff (0), watchdog (4),
# soft-reset (5).
lab_dead_domus() {
	xl list -v 2>/dev/null | awk 'NR > 2 && $2 != 0 {
		st = $5; r = $8
		if (st ~ /c/) r = 3
		else if (st !~ /s/ || r == "-" || r == 2) next
		k = (r == 1 ? "triple-fault" : r == 3 ? "guest-panic" : r == 0 ? "poweroff" : \
		     r == 4 ? "watchdog" : r == 5 ? "soft-reset" : "reason-" r)
		print $1, $2, k
	}'
}

# domu_crashed NAME: true when NAME is dead (see lab_dead_domus).
domu_crashed() {
	lab_dead_domus | awk -v n="$1" '$1 == n {f = 1} END {exit !f}'
}

# domu_crash_kind NAME: "triple fault" or "guest panic" (or how else it
# died) for a dead NAME.
domu_crash_kind() {
	local k
	k=$(lab_dead_domus | awk -v n="$1" '$1 == n {print $3; exit}')
	case $k in
	triple-fault) echo "triple fault" ;;
	guest-panic) echo "guest panic" ;;
	"") echo "not dead" ;;
	*) echo "$k" ;;
	esac
}

# Every dead domU now, one "NAME KIND" per line.
lab_crashes() {
	lab_dead_domus | awk '{print $1, $3}'
}

# domu_console NAME [LINES]: the last LINES (40) of NAME's console logs.
domu_console() {
	local f
	for f in $(domu_logs "$1"); do
		echo "--- console of $1: $f (last ${2:-40} lines)"
		tail -n "${2:-40}" "$f" | tr -d '\r' | awk '{print "  | " $0}'
	done
}

# lab_domu_died "NAME ID KIND"... WHY: a domU died: show it (state, its
# console, Xen's last lines) and fail the test.
lab_domu_died() {
	local dead=$1 why=$2 n
	xl list -v
	for n in $(awk '{print $1}' <<<"$dead"); do domu_console "$n"; done
	echo "--- Xen's console (last 30 lines)"
	xl dmesg 2>/dev/null | tail -n 30 | awk '{print "  | " $0}'
	lab_fail "domU died: $(tr '\n' ';' <<<"$dead" | sed 's/;$//; s/;/; /g') ($why)"
}

# exited PID: true when PID is gone, or a zombie of ours.
exited() {
	[ ! -e "/proc/$1" ] || [ "$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null)" = Z ]
}

# status_field FILE KEY: the value after "KEY: " in an `ha-ctl status` output.
status_field() {
	sed -n "s/^$2: //p" "$1" | head -n 1
}

# --- output commit on a real vif (50-ha-protect-vif) -------------------

# lab_mono_ns: dom0's CLOCK_MONOTONIC now, in ns, to the 10 ms of
# /proc/uptime (CLOCK_BOOTTIME: the same clock in dom0, never suspended).
lab_mono_ns() {
	local u
	read -r u _ </proc/uptime
	echo "$((${u%.*} * 1000000000 + 10#${u#*.} * 10000000))"
}

# output_commit_check EVENTS CAPTURE END_NS: counts replies released before
# their epoch's ACK, from ha-protect's --event-log (EVENTS) and an
# `ha-client capture` taken after the buffer (CAPTURE), for replies that
# left before END_NS (the primary's death). The j-th reply to a (client
# port, request id) answers at the earliest the j-th copy of that request
# the capture saw leave the client, so its epoch is at least E, the first
# epoch whose barrier was set ("closed E") after that request left: the
# guest handled it after it left, and a barrier stamp is taken after the
# barrier. The reply is early when it left before "ack E" (stamped before
# any of E's output is released), or with no ACK of E at all. Only requests
# that left after "setup" (the buffer holds from then on) are checked, and
# only replies before any "teardown"/"discard". Prints
#   early=N checked=N unmatched=N epochs=N closed=N pipelined=N margin_min_ms=X first_early=...
# (pipelined: epochs N whose successor closed before ACK(N)).
output_commit_check() {
	awk -v end="$3" '
	FNR == 1 { file++ }
	file == 1 && $2 == "setup" && !setup { setup = $1 }
	file == 1 && ($2 == "teardown" || $2 == "discard") && setup && $1 < end { end = $1 }
	file == 1 && $2 == "closed" { closed[$3 + 0] = $1; if ($3 + 0 > maxc) maxc = $3 + 0; nclosed++ }
	file == 1 && $2 == "ack" { ack[$3 + 0] = $1 }
	file == 2 && $2 == "req" { k = $3 " " $4; nreq[k]++; reqt[k, nreq[k]] = $1 }
	file == 2 && $2 == "rep" {
		k = $3 " " $4; j = ++nrep[k]
		if (j > nreq[k]) { unmatched++; next }
		tq = reqt[k, j]
		if (!setup || tq <= setup || $1 >= end) next
		# E: the first epoch whose barrier came after the request left.
		lo = 0; hi = maxc + 1
		while (lo < hi) { mid = int((lo + hi) / 2); if ((mid in closed) && closed[mid] > tq) hi = mid; else lo = mid + 1 }
		e = lo; checked++; seen[e] = 1
		if (!(e in ack) || $1 < ack[e]) {
			early++
			if (!first) first = sprintf("reply(port %s id %s value %s) left at %.3f s, request at %.3f s, epoch>=%d acked %s", $3, $4, $5, $1 / 1e9, tq / 1e9, e, (e in ack) ? sprintf("at %.3f s", ack[e] / 1e9) : "never")
		} else {
			m = ($1 - ack[e]) / 1e6
			if (!havem || m < mmin) { mmin = m; havem = 1 }
		}
	}
	END {
		for (e in seen) ne++
		# Pipelined: epoch N+1 closed before ACK(N) came (what a buffer
		# keeping one closed epoch only would get wrong).
		for (e in closed) if ((e + 1) in closed && (!(e in ack) || closed[e + 1] < ack[e])) pip++
		printf "early=%d checked=%d unmatched=%d epochs=%d closed=%d pipelined=%d margin_min_ms=%s first_early=%s\n", early, checked, unmatched, ne, nclosed, pip, havem ? sprintf("%.1f", mmin) : "none", first ? "\"" first "\"" : "none"
	}' "$1" "$2"
}

# acked_continuity CLIENT_LOG DEATH_WALL_MS: from `ha-client counter`'s
# "ack ID VALUE US WALL_MS" lines, the first acknowledgement after the
# primary's death (DEATH_WALL_MS, CLOCK_REALTIME ms) against the last one
# before it. Prints
#   last_before=V first_after=V first_after_ms=MS acked_lost=N acks_after=N nonmonotonic=N
# acked_lost: acknowledged increments the copy lacks (last_before -
# first_after + 1 when positive); nonmonotonic: acks over the whole log
# whose value is not above the previous one's.
acked_continuity() {
	awk -v death="$2" '
	$1 != "ack" { next }
	{ if (n && $3 <= prev) nonmono++; prev = $3; n++ }
	$5 < death { last = $3; havelast = 1; next }
	!after { first = $3; firstms = $5 - death }
	{ after++ }
	END {
		lost = (havelast && after && last - first + 1 > 0) ? last - first + 1 : 0
		printf "last_before=%s first_after=%s first_after_ms=%s acked_lost=%d acks_after=%d nonmonotonic=%d\n", havelast ? last : "none", after ? first : "none", after ? firstms : "none", lost, after + 0, nonmono + 0
	}' "$1"
}
