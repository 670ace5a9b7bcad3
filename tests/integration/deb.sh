#!/bin/sh
# The Debian package, as an operator gets it: dpkg-buildpackage builds
# ha-protect and ha-protect-tests from a copy of this tree; a fresh Debian
# root (mmdebstrap, from this machine's apt sources, with the packages'
# dependencies and systemd, kept as a tarball in build/debroot) takes both
# with dpkg -i; there, every unit
# verifies clean with its man pages, and the daemons run from the package:
# ha-witness with the command line its unit gives it, ha-receive with a
# pair file in /etc/ha-protect, each answering ha-ctl, reloading on SIGHUP
# and stopping on SIGTERM. Then the root boots systemd (systemd-nspawn)
# and the units run under it: start, reload, stop, the restart policy, and
# the role following its record after a handover (ha-role-follow).
. "$(dirname "$0")/lib.sh"
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
root=$tmp/root
cleanup() {
	for p in $(pids_in_root); do kill -9 "$p" 2>/dev/null; done
	mountpoint -q "$root/proc" && umount "$root/proc"
	rm -rf "$tmp"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] || skip "needs root (a chroot)"
for t in dpkg-buildpackage mmdebstrap; do
	command -v $t > /dev/null || { echo "FAIL $t is missing: run scripts/install-deps.sh"; exit 1; }
done
pids_in_root() { # the processes whose root is the fresh root
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && echo "${p#/proc/}"
	done
}

# The package, from the files git tracks (the tree's build/ stays out).
mkdir "$tmp/src"
if git -C "$src" rev-parse --git-dir > /dev/null 2>&1; then
	(cd "$src" && git ls-files -z | tar --null -T - -cf -) | tar -xf - -C "$tmp/src"
else
	(cd "$src" && tar --exclude=./build -cf - .) | tar -xf - -C "$tmp/src"
fi
(cd "$tmp/src" && dpkg-buildpackage -us -uc -b) > "$tmp/build.log" 2>&1
rc=$?
[ $rc -eq 0 ] || tail -n 20 "$tmp/build.log"
check "dpkg-buildpackage -us -uc -b builds" test $rc -eq 0
deb=$(ls "$tmp"/ha-protect_*_amd64.deb 2>/dev/null)
tdeb=$(ls "$tmp"/ha-protect-tests_*_amd64.deb 2>/dev/null)
[ -n "$deb" ] && [ -n "$tdeb" ] || { echo "FAIL no packages built"; exit 1; }
check "the package's version is the release's" \
	sh -c "dpkg-deb -f '$deb' Version | grep -q \"^\$('$HA_BUILD/bin/ha-protect' --version |
		awk 'NR == 1 { print \$2 }')-\""

# A fresh root with what the packages depend on, and systemd to verify.
deps=$(for d in "$deb" "$tdeb"; do dpkg-deb -f "$d" Depends; done | tr ',' '\n' |
	sed 's/(.*)//; s/|.*//; s/ //g' | grep -v '^ha-protect$' | grep -v '^$' | sort -u | paste -sd,)
. /etc/os-release
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
# The root's tarball is kept in build/debroot under a hash of what it is
# made of (as the labs keep their images): make check runs this test twice
# in CI. Each run unpacks a fresh root from it.
cache=$src/build/debroot
key=$( (echo "$VERSION_CODENAME systemd,man-db,$deps"; cat "$sources") | sha256sum | cut -c1-16)
rc=0
if ! [ -f "$cache/$key.tar" ]; then
	mkdir -p "$cache"
	mmdebstrap --variant=apt --include="systemd,man-db,$deps" "$VERSION_CODENAME" \
		"$cache/$key.tmp$$.tar" "$sources" > "$tmp/root.log" 2>&1 &&
		mv "$cache/$key.tmp$$.tar" "$cache/$key.tar"
	rc=$?
	[ $rc -eq 0 ] || { tail -n 20 "$tmp/root.log"; rm -f "$cache/$key.tmp$$.tar"; }
fi
[ $rc -eq 0 ] && mkdir "$root" && tar -xf "$cache/$key.tar" -C "$root"
rc=$?
check "a fresh $VERSION_CODENAME root (mmdebstrap, unpacked from build/debroot/$key.tar)" test $rc -eq 0
[ $rc -eq 0 ] || exit 1
cp "$deb" "$tdeb" "$root/tmp/"
chroot "$root" dpkg -i "/tmp/${deb##*/}" "/tmp/${tdeb##*/}" > "$tmp/dpkg.log" 2>&1
rc=$?
[ $rc -eq 0 ] || tail -n 20 "$tmp/dpkg.log"
check "dpkg -i installs both packages" test $rc -eq 0
in_root() { chroot "$root" "$@"; }
check "daemons in /usr/sbin, tools in /usr/bin, test tools apart" sh -c "
	for f in usr/sbin/ha-protect usr/sbin/ha-receive usr/sbin/ha-witness usr/sbin/ha-diskrepl \
		usr/sbin/ha-vm usr/bin/ha-ctl usr/bin/ha-stream usr/bin/ha-tls-gen \
		usr/lib/ha-protect/bin/ha-client; do test -x '$root/'\$f || exit 1; done"
in_root mandb -q > /dev/null 2>&1
for u in ha-protect@web ha-receive@web ha-diskrepl@d0 ha-witness; do
	in_root systemd-analyze verify "/lib/systemd/system/$u.service" >> "$tmp/verify" 2>&1 ||
		echo "$u: exit $?" >> "$tmp/verify"
done
sed 's/^/     /' "$tmp/verify"
check "systemd-analyze verify: every unit clean, its man pages found" test ! -s "$tmp/verify"
check "nothing enabled or started by the installation" \
	sh -c "! ls '$root'/etc/systemd/system/multi-user.target.wants/ha-* 2>/dev/null | grep -q ."

# The daemons from the package. The witness as its unit starts it.
mount -t proc proc "$root/proc"
cat > "$root/etc/default/ha-witness" << EOF
HA_WITNESS_ARGS="--listen 127.0.0.1:17790 --insecure --max-ttl 1000"
EOF
mkdir -p "$root/var/lib/ha-witness" "$root/run/ha-witness"
exec_start=$(sed -n 's/^ExecStart=//p' "$root/lib/systemd/system/ha-witness.service")
in_root sh -c ". /etc/default/ha-witness; exec $exec_start" > "$tmp/witness.log" 2>&1 &
wait_for 10 grep -q "witness on 127.0.0.1:17790" "$tmp/witness.log"
check "ha-witness runs from the package, as its unit's ExecStart says" \
	grep -q "witness on 127.0.0.1:17790" "$tmp/witness.log"
check "ha-ctl of the package reaches it" sh -c "chroot '$root' ha-ctl status witness | grep -q ."
# A pair file in /etc/ha-protect, read by the packaged ha-receive.
cat > "$root/etc/ha-protect/web.conf" << EOF
[pair]
domain = kvm:web
port = 17788
[host alpha]
address = 127.0.0.1
[host beta]
address = 127.0.0.1
[common]
insecure = yes
witness = 127.0.0.1:17790
EOF
mkdir -p "$root/run/ha-receive"
in_root ha-receive --pair web --host beta > "$tmp/rx.log" 2>&1 &
wait_for 10 grep -q "listening on 127.0.0.1:17788" "$tmp/rx.log"
check "ha-receive runs from the package with /etc/ha-protect/web.conf" \
	grep -q "listening on 127.0.0.1:17788" "$tmp/rx.log"
check "and ha-ctl status web answers: waiting for a primary" \
	sh -c "chroot '$root' ha-ctl status web | grep -q 'state: waiting'"
alive() { [ "$(pids_in_root | wc -l)" -ge 2 ]; }
gone() { [ -z "$(pids_in_root)" ]; }
reloaded() {
	grep -q 'SIGHUP: reloading' "$tmp/rx.log" && grep -q 'SIGHUP: reloading' "$tmp/witness.log"
}
for p in $(pids_in_root); do kill -HUP "$p"; done
wait_for 5 reloaded
sleep 0.5
check "SIGHUP: both reload" reloaded
check "and run on" alive
for p in $(pids_in_root); do kill -TERM "$p"; done
wait_for 10 gone
check "SIGTERM stops both" gone
umount "$root/proc"

# The units under a real systemd: the root boots in a container
# (systemd-nspawn, on this host's network), where a oneshot unit runs the
# steps below and powers the container off; their results come back in a
# file. ha-protect@web has no domain to protect here (kvm:web needs
# ha-vm), so its unit shows the restart policy instead: restarted after an
# error, not after the role record's refusal (5).
cat > "$root/root/units.sh" << 'EOF2'
#!/bin/sh
r() { echo "\$ $*"; "$@"; echo "exit $?"; }
exec > /root/units.out 2>&1
r systemctl start ha-witness
r systemctl is-active ha-witness
r systemctl start ha-receive@web
r systemctl is-active ha-receive@web
r systemctl show -p StatusText -p Type ha-receive@web
r systemctl reload ha-receive@web
sleep 1
r systemctl is-active ha-receive@web
r journalctl -b -u ha-receive@web --no-pager -o cat
r systemctl stop ha-receive@web
r systemctl is-active ha-receive@web
r ha-ctl role web
# ha-protect@web: this host stood by (its record says secondary): refused
# until an operator says otherwise. Then no domain here, an error (1):
# restarted.
r systemctl start ha-protect@web
r systemctl show -p ExecMainStatus ha-protect@web
r ha-ctl role web primary
r systemctl reset-failed ha-protect@web
r systemctl start ha-protect@web
sleep 7
r systemctl show -p NRestarts -p ExecMainStatus ha-protect@web
r systemctl stop ha-protect@web
# The role record says this host lost the role: 5, not restarted.
mkdir -p /var/lib/ha-protect
printf '[role]\nrole = lost\nprotecting = no\nsince = 1764806400\nwhy = a test\n' > /var/lib/ha-protect/web.role
r systemctl reset-failed ha-protect@web
r systemctl start ha-protect@web
sleep 7
r systemctl show -p NRestarts -p ExecMainStatus -p ActiveState ha-protect@web
r journalctl -b -u ha-protect@web --no-pager -o cat
# The roles follow the record after a handover: the units' ExecStopPost
# (ha-role-follow), run as systemd runs it after ha-protect exits 0 (a
# switchover) with the record "secondary": ha-receive@web starts. After a
# plain stop (the record says primary) nothing starts.
r systemctl show -p ExecStopPost ha-protect@web ha-receive@web
r ha-ctl role web primary
r env EXIT_CODE=exited EXIT_STATUS=0 /usr/lib/ha-protect/ha-role-follow web protect
sleep 2
echo "after a stop: ha-receive@web $(systemctl is-active ha-receive@web)"
r ha-ctl role web secondary
r env EXIT_CODE=exited EXIT_STATUS=0 /usr/lib/ha-protect/ha-role-follow web protect
sleep 3
echo "after a handover: ha-receive@web $(systemctl is-active ha-receive@web)"
r systemctl stop ha-receive@web
echo DONE
systemctl poweroff
EOF2
chmod 755 "$root/root/units.sh"
cat > "$root/etc/systemd/system/ha-units-test.service" << 'EOF2'
[Unit]
Description=the package test's steps
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/root/units.sh
[Install]
WantedBy=multi-user.target
EOF2
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/ha-units-test.service "$root/etc/systemd/system/multi-user.target.wants/"
if command -v systemd-nspawn > /dev/null; then
	# --keep-unit --register=no: no machined or system bus needed here;
	# the host name makes it beta of the pair file.
	echo beta > "$root/etc/hostname"
	timeout 180 systemd-nspawn --keep-unit --register=no --quiet --hostname=beta -D "$root" -b \
		> "$tmp/boot.log" 2>&1
	rc=$?
	out=$root/root/units.out
	has() { grep -q -- "$1" "$out"; }
	check "the root boots with systemd and runs the steps (nspawn exit $rc)" has '^DONE$'
	[ -f "$out" ] || tail -n 30 "$tmp/boot.log"
	check "ha-witness.service starts" sh -c "grep -A1 '^\$ systemctl is-active ha-witness' '$out' | grep -q '^active'"
	check "ha-receive@web starts (Type=notify: active once it listens)" \
		sh -c "grep -A1 '^\$ systemctl is-active ha-receive@web' '$out' | head -n 2 | grep -q '^active'"
	check "its status line comes from the daemon (sd_notify STATUS)" has '^StatusText=.'
	check "systemctl reload: SIGHUP reloads, the unit stays active" \
		sh -c "grep -q 'SIGHUP: reloading' '$out' && grep -A1 '^\$ systemctl is-active ha-receive@web' '$out' | sed -n 5p | grep -q '^active'"
	check "the journal has its lines" has 'listening on 127.0.0.1:17788'
	check "it wrote its role record: secondary" has 'web.role: secondary since'
	check "systemctl stop stops it" sh -c "grep -A1 '^\$ systemctl is-active ha-receive@web' '$out' | tail -n 1 | grep -q '^inactive'"
	check "ha-protect@web on the host that stood by: refused (5)" \
		has 'not protecting: this host is the secondary of pair web'
	check "ha-ctl role web primary: the operator's word" has 'web.role: primary since .*set by the operator'
	check "ha-protect@web, failing (exit 1), is restarted" \
		sh -c "grep -m1 '^NRestarts=' '$out' | grep -qv '=0$'"
	check "ha-protect@web refused by the role record (exit 5) is not restarted" \
		sh -c "grep -q '^ExecMainStatus=5' '$out' && grep '^NRestarts=' '$out' | tail -n 1 | grep -q '=0$' &&
			grep -q 'not protecting: this host lost the primary role of pair web' '$out'"
	check "both daemons' units run ha-role-follow when they stop" \
		sh -c "test \$(grep -c '^ExecStopPost=.*ha-role-follow' '$out') -eq 2"
	check "after a plain stop of the primary, nothing starts" has '^after a stop: ha-receive@web inactive'
	check "after a handover (exit 0, the record says secondary), ha-receive@web starts" \
		has '^after a handover: ha-receive@web active'
	if [ "$fails" -ne 0 ]; then
		cat "$out"
		tail -n 30 "$tmp/boot.log"
	fi
else
	echo "     systemd-nspawn is missing (Debian package systemd-container): the units not started"
	check "systemd-nspawn is here to boot the root" false
fi
[ "$fails" -eq 0 ]
