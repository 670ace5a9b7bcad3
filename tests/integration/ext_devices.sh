#!/bin/sh
# End to end: external devices (ha-protect --ext-device, docs/devices.md)
# in a live migration (ha-protect --migrate) of the counter guest from A to
# B. Three script devices each append "NAME PHASE OPERATION" to a log.
# One guest runs on A throughout; per attempt only ha-receive is started
# anew on B:
#   - each device in turn fails at each phase (check, prepare, transfer,
#     commit): the devices that had passed a phase are rolled back, last
#     first, nothing else runs; ha-protect exits non-zero; the guest still
#     answers on A; no ha-vm runs on B;
#   - a device that hangs is killed at --ext-device-timeout (its sleep is
#     gone) and that is a failure like the others;
#   - then a migration with all three passing: every phase in order, the
#     guest answers from B, A's VM is gone;
#   - B protects it back to A with a device that asks for per-epoch calls
#     (one per acknowledged epoch), and B is lost (ha-protect killed): with
#     device b refusing at prepare, A does not activate, the others are
#     rolled back and the guest runs on at B; with all passing, A runs the
#     four phases and fails over, and the guest answers from A.
# needs: kvm (ha-vm guests; tests/run.sh runs it in the KVM lab where /dev/kvm is missing)
PREFIX=hxd-
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/topology.sh"
bin=$(cd "$HA_BUILD/bin" && pwd)
tmp=$(mktemp -d)
trap 'ns_cleanup; rm -rf "$tmp"' EXIT
need_root
[ -w /dev/kvm ] || skip "/dev/kvm is missing: ha-vm cannot run here"
gen="$(dirname "$0")/../../scripts/tls-gen.sh"
sh "$gen" psk "$tmp/psk" pair || { echo "FAIL cannot make a pre-shared key"; exit 1; }

dir=$tmp/run
mkdir -p "$dir"
for d in a b c; do
	cat > "$tmp/dev-$d" <<EOF
#!/bin/sh
echo "$d \$1 \$2" >> "$dir/devlog"
echo "$d \$1 \$2 \$3 \$4 \$5 \$HA_DEVICE_PHASE \$HA_EPOCH" >> "$dir/devlog.full"
case "\$(cat "$dir/fail" 2>/dev/null)" in
"$d \$1") echo "$d refuses \$1"; exit 1 ;;
"$d \$1 hang") exec sleep 1001 ;;
esac
exit 0
EOF
	chmod +x "$tmp/dev-$d"
done

ns_cleanup
topo_up
ns a env HA_RUN_DIR="$dir/a" "$bin/ha-vm" run --name web --mem 32M --guest counter \
	--tap tapa --ip "$GUEST_IP/24" --mac "$GUEST_MAC" > "$dir/vm.log" 2>&1 &
vmpid=$!
wait_for 10 test -S "$dir/a/ha-vm/web.sock" || { cat "$dir/vm.log"; exit 1; }

nreq=0
# The guest answers 3 requests of a new client (wherever it runs).
answers() {
	nreq=$((nreq + 1))
	ns c "$bin/ha-client" counter "$GUEST_IP:7000" --name "c$nreq" --count 3 --interval 5 \
		--timeout $(ms 1000) > "$dir/acks.$nreq" 2> /dev/null
	[ "$(wc -l < "$dir/acks.$nreq")" -ge 3 ]
}
check "the guest answers on A" answers

# One migration attempt with the three devices: ha-protect's status in $rc.
attempt() { # fail spec ("none": all pass), name
	printf '%s\n' "$1" > "$dir/fail"
	: > "$dir/devlog"
	ns b env HA_RUN_DIR="$dir/b" HA_VM_ARGS="--tap tapb" \
		"$bin/ha-receive" --tls-psk "$tmp/psk" --listen 10.66.0.2:7788 --once \
		--timeout $(ms 300) > "$dir/rx-$2.log" 2>&1 &
	rxpid=$!
	wait_for 20 grep -q 'listening on' "$dir/rx-$2.log" || { cat "$dir/rx-$2.log"; return 1; }
	ns a env HA_RUN_DIR="$dir/a" "$bin/ha-protect" --tls-psk "$tmp/psk" --migrate -i 50 \
		--timeout $(ms 300) --ext-device "$tmp/dev-a" --ext-device "$tmp/dev-b" \
		--ext-device "$tmp/dev-c" --ext-device-timeout $(ms 1000) \
		kvm:web 10.66.0.2:7788 > "$dir/px-$2.log" 2>&1
	rc=$?
	# A refused migration ends the session with END: ha-receive --once
	# discards its copy and exits; one that was never reached is stopped.
	[ "$1" = none ] && return 0
	grep -q 'link to ' "$dir/px-$2.log" && wait_for 20 sh -c "! kill -0 $rxpid 2>/dev/null"
	# $rxpid runs ns: ha-receive is it, or its child.
	rxs="$rxpid $(pgrep -P "$rxpid" | tr '\n' ' ')"
	kill $rxs 2>/dev/null
	wait_for 20 sh -c "for p in $rxs; do kill -0 \$p 2>/dev/null && exit 1; done; exit 0"
	wait "$rxpid" 2>/dev/null
	return 0
}

# What the devices log when device K (a|b|c) fails at phase P (lib.sh's
# check uses $d: these loops use names of their own).
expected() { # K P
	phases="check prepare transfer commit"
	for xp in $phases; do
		[ "$xp" = "$2" ] && break
		for xd in a b c; do echo "$xd $xp migrate"; done
	done
	for xd in a b c; do
		echo "$xd $2 migrate"
		[ "$xd" = "$1" ] && break
	done
	# Rollback, last first: those that passed $2, and those that passed
	# the phase before it (none before check).
	for xd in c b a; do
		case "$2:$1$xd" in
		check:ba | check:ca | check:cb | prepare:* | transfer:* | commit:*) echo "$xd rollback migrate" ;;
		esac
	done
}

for k in a b c; do
	for p in check prepare transfer commit; do
		attempt "$k $p" "$k-$p" || { echo "FAIL attempt $k $p did not start"; fails=$((fails + 1)); continue; }
		check "$k failing at $p: the migration fails ($rc)" test "$rc" -ne 0
		expected "$k" "$p" > "$dir/want"
		check "$k failing at $p: the others are rolled back in reverse order" \
			diff "$dir/want" "$dir/devlog"
		check "$k failing at $p: ha-protect names it" grep -q "external device dev-$k failed at $p" "$dir/px-$k-$p.log"
		check "$k failing at $p: the guest runs on A" sh -c "kill -0 $vmpid"
		check "$k failing at $p: it answers" answers
		check "$k failing at $p: nothing runs on B" sh -c "! for p in \$(ip netns pids ${PREFIX}b); do cat /proc/\$p/comm; done 2>/dev/null | grep -qx ha-vm"
		check "$k failing at $p: B did not activate" sh -c "! grep -q -e 'SWITCHOVER complete' -e 'FAILOVER' '$dir/rx-$k-$p.log'"
		if [ "$fails" -ne 0 ]; then
			for f in px-$k-$p rx-$k-$p; do echo "--- $f.log"; tail -n 25 "$dir/$f.log"; done
			cat "$dir/devlog"
			exit 1
		fi
	done
done

# A device that hangs: killed at its timeout, a failure.
attempt "b prepare hang" hang
check "a hanging device: the migration fails ($rc)" test "$rc" -ne 0
printf 'a check migrate\nb check migrate\nc check migrate\na prepare migrate\nb prepare migrate\nc rollback migrate\nb rollback migrate\na rollback migrate\n' > "$dir/want"
check "a hanging device: the others are rolled back in reverse order" diff "$dir/want" "$dir/devlog"
check "a hanging device: killed at its timeout" grep -q "did not finish within $(ms 1000) ms (killed)" "$dir/px-hang.log"
check "a hanging device: its process is gone" sh -c "! pgrep -f 'sleep 100[1]' >/dev/null"
check "a hanging device: the guest answers on A" answers

# All pass: the migration completes, every phase in order.
attempt none ok
check "all devices pass: the migration completes ($rc)" test "$rc" -eq 0
printf 'a check migrate\nb check migrate\nc check migrate\na prepare migrate\nb prepare migrate\nc prepare migrate\na transfer migrate\nb transfer migrate\nc transfer migrate\na commit migrate\nb commit migrate\nc commit migrate\n' > "$dir/want"
check "all devices pass: every phase ran in order, nothing rolled back" diff "$dir/want" "$dir/devlog"
check "all devices pass: transfer and commit name the last checkpoint" \
	sh -c "[ \$(awk '\$2 == \"transfer\" || \$2 == \"commit\" { print \$6 }' '$dir/devlog.full' | tail -n 6 | sort -u | grep -c '^[0-9][0-9]*\$') -eq 1 ]"
check "all devices pass: B runs the guest" grep -q 'SWITCHOVER complete' "$dir/rx-ok.log"
wait_for 20 sh -c "! kill -0 $vmpid 2>/dev/null"
check "all devices pass: A's VM stopped" sh -c "! kill -0 $vmpid 2>/dev/null"
check "all devices pass: the guest answers from B" answers
if [ "$fails" -ne 0 ]; then
	for f in px-ok rx-ok px-hang; do echo "--- $f.log"; tail -n 25 "$dir/$f.log"; done
	cat "$dir/devlog"
	exit 1
fi

# Protection and failover. B protects the guest to A with device p, which
# asks for per-epoch calls; A's ha-receive runs a, b and c when it fails
# over. Each round ends with ha-protect killed (-9), as if B were lost.
printf '#!/bin/sh\necho "p $1 $2" >> "%s/plog"\n[ "$1" = check ] && echo per-epoch\nexit 0\n' "$dir" > "$tmp/dev-p"
chmod +x "$tmp/dev-p"
# B's ha-vm: the copy the migration left running there.
vm_b() {
	for q in $(ip netns pids "${PREFIX}b"); do
		[ "$(cat "/proc/$q/comm" 2>/dev/null)" = ha-vm ] && echo "$q"
	done
}
protect_to_a() { # fail spec, name
	printf '%s\n' "$1" > "$dir/fail"
	: > "$dir/devlog"
	: > "$dir/plog"
	ns a env HA_RUN_DIR="$dir/a2" HA_VM_ARGS="--tap tapa" \
		"$bin/ha-receive" --tls-psk "$tmp/psk" --listen 10.66.0.1:7788 --once \
		--timeout $(ms 300) --ext-device "$tmp/dev-a" --ext-device "$tmp/dev-b" \
		--ext-device "$tmp/dev-c" --ext-device-timeout $(ms 1000) > "$dir/rxa-$2.log" 2>&1 &
	rxa=$!
	wait_for 20 grep -q 'listening on' "$dir/rxa-$2.log" || { cat "$dir/rxa-$2.log"; return 1; }
	# Output is not held (-F -n): B's ha-protect is killed, and a plug it
	# left would hold the guest's answers; output commit has tests of its own.
	ns b env HA_RUN_DIR="$dir/b" "$bin/ha-protect" --tls-psk "$tmp/psk" -i 50 -F -n \
		--timeout $(ms 300) --ext-device "$tmp/dev-p" kvm:web 10.66.0.1:7788 \
		> "$dir/pxb-$2.log" 2>&1 &
	wait_for 60 grep -q 'PROTECTED:' "$dir/pxb-$2.log" || { tail "$dir/pxb-$2.log"; return 1; }
	wait_for 30 sh -c "[ \$(grep -c '^p commit protect' '$dir/plog') -ge 3 ]"
	printf 'p check protect\np prepare protect\n' > "$dir/want"
	check "$2: the per-epoch device set up, then commits each acknowledged epoch" \
		sh -c "head -n 2 '$dir/plog' | diff '$dir/want' - && [ \$(grep -c '^p commit protect' '$dir/plog') -ge 3 ]"
	pkill -9 -f "ha-protect --tls-psk $tmp/psk -i 50 -F"
}

# A device refuses at failover: A does not activate, the others go back,
# and the guest runs on where it ran (B).
protect_to_a "b prepare" refused || { echo "FAIL the protection to A did not start"; exit 1; }
wait_for 30 grep -q 'FAILOVER REFUSED' "$dir/rxa-refused.log"
check "a device refusing the failover: A says so and does not activate" \
	sh -c "grep -q 'FAILOVER REFUSED' '$dir/rxa-refused.log' && ! grep -q 'FAILOVER complete' '$dir/rxa-refused.log'"
printf 'a check failover\nb check failover\nc check failover\na prepare failover\nb prepare failover\nc rollback failover\nb rollback failover\na rollback failover\n' > "$dir/want"
check "a device refusing the failover: the others are rolled back in reverse order" diff "$dir/want" "$dir/devlog"
wait_for 20 sh -c "! kill -0 $rxa 2>/dev/null"
check "a device refusing the failover: the guest answers (from B)" answers
check "a device refusing the failover: it runs on B" test -n "$(vm_b)"

# All pass: A fails over once B is lost (its guest killed too).
protect_to_a none failover || { echo "FAIL the second protection to A did not start"; exit 1; }
kill -9 $(vm_b) 2>/dev/null
wait_for 60 grep -q 'FAILOVER complete' "$dir/rxa-failover.log"
check "all devices pass: A fails over" grep -q 'FAILOVER complete' "$dir/rxa-failover.log"
printf 'a check failover\nb check failover\nc check failover\na prepare failover\nb prepare failover\nc prepare failover\na transfer failover\nb transfer failover\nc transfer failover\na commit failover\nb commit failover\nc commit failover\n' > "$dir/want"
check "all devices pass: every failover phase ran in order" diff "$dir/want" "$dir/devlog"
check "all devices pass: the guest answers from A" answers
ns a sh -c 'kill $(pidof ha-vm) 2>/dev/null'
if [ "$fails" -ne 0 ]; then
	for f in pxb-refused rxa-refused pxb-failover rxa-failover; do echo "--- $f.log"; tail -n 25 "$dir/$f.log"; done
	cat "$dir/devlog" "$dir/plog"
fi
[ "$fails" -eq 0 ]
