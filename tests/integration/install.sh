#!/bin/sh
# What `make install` lays out, as an operator and the Debian package get
# it: daemons in sbin and tools in bin, each answering --version; man pages
# that groff renders without a warning and that document every option the
# program's --help lists; systemd units that systemd-analyze verifies
# clean; the bash completion; the example pair file, which the daemons
# read without an error.
. "$(dirname "$0")/lib.sh"
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root

case $HA_BUILD in *san) san=1 ;; *) san=0 ;; esac
make -s -C "$src" install DESTDIR="$root" PREFIX=/usr SAN=$san > "$tmp/install.log" 2>&1
check "make install DESTDIR PREFIX=/usr" test $? -eq 0
for p in ha-protect ha-receive ha-witness ha-diskrepl ha-netbuf ha-vm ha-save ha-restore ha-migrate; do
	test -x "$root/usr/sbin/$p" || echo "$p" >> "$tmp/missing"
done
for p in ha-ctl ha-stream ha-tls-gen; do
	test -x "$root/usr/bin/$p" || echo "$p" >> "$tmp/missing"
done
# ha-sla: a link into the test tools, whose programs it drives.
test -x "$root$(readlink "$root/usr/bin/ha-sla")" || echo ha-sla >> "$tmp/missing"
check "daemons in /usr/sbin, tools in /usr/bin" test ! -e "$tmp/missing"
check "test tools apart, in /usr/lib/ha-protect/bin" \
	sh -c "test -x '$root/usr/lib/ha-protect/bin/ha-client' && ! test -e '$root/usr/bin/ha-client' &&
		! test -e '$root/usr/sbin/ha-client'"
for p in sbin/ha-protect sbin/ha-receive sbin/ha-witness sbin/ha-diskrepl sbin/ha-netbuf \
	sbin/ha-vm bin/ha-ctl bin/ha-stream; do
	"$root/usr/$p" --version > "$tmp/v" 2>&1 && grep -q "^${p#*/} [0-9]" "$tmp/v" &&
		grep -q "^stream protocol: " "$tmp/v" || echo "$p" >> "$tmp/noversion"
done
check "every program answers --version (release, stream protocol)" test ! -e "$tmp/noversion"
agent=$root/usr/lib/ocf/resource.d/ha-protect/pair
check "the Pacemaker agent, executable, in /usr/lib/ocf/resource.d/ha-protect" test -x "$agent"
if [ -r /usr/lib/ocf/lib/heartbeat/ocf-shellfuncs ] && command -v xmllint > /dev/null; then
	check "its meta-data is valid against ra-api-1.dtd" \
		sh -c "OCF_ROOT=/usr/lib/ocf '$agent' meta-data | (cd /usr/share/resource-agents && xmllint --noout --valid - 2>&1) | grep . && exit 1; exit 0"
else
	echo "     resource-agents or xmllint is missing: the agent's meta-data not validated"
fi

# Man pages: silent groff, and every option of --help documented.
for m in "$root"/usr/share/man/man*/*; do
	LC_ALL=C.UTF-8 groff -man -ww -z "$m" > "$tmp/groff" 2>&1
	[ -s "$tmp/groff" ] && { echo "     $(basename "$m"): $(head -n 1 "$tmp/groff")"; touch "$tmp/warned"; }
done
check "groff -man -ww is silent on every page" test ! -e "$tmp/warned"
check "pages for the daemons (8), the tools (1) and the pair file (5)" sh -c "
	for m in man8/ha-protect.8 man8/ha-receive.8 man8/ha-witness.8 man8/ha-diskrepl.8 \
		man8/ha-ctl.8 man8/ha-save.8 man8/ha-restore.8 man8/ha-migrate.8 man1/ha-stream.1 man1/ha-sla.1 \
		man5/ha-protect.conf.5; do
		test -f '$root/usr/share/man/'\$m || exit 1
	done"
for p in ha-protect ha-receive ha-witness ha-diskrepl ha-save ha-restore ha-migrate; do
	LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$root/usr/share/man/man8/$p.8" 2>/dev/null > "$tmp/$p.txt"
	for o in $("$root/usr/sbin/$p" --help | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
		grep -q -- "$o\b" "$tmp/$p.txt" || echo "$p $o" >> "$tmp/undocumented"
	done
done
[ -e "$tmp/undocumented" ] && sed 's/^/     undocumented: /' "$tmp/undocumented"
check "each daemon's page documents every option of its --help" test ! -e "$tmp/undocumented"

# Units: verified as installed, with the programs at the paths of this root.
if command -v systemd-analyze > /dev/null; then
	mkdir "$tmp/units"
	for u in ha-protect@web ha-receive@web ha-diskrepl@d0 ha-witness; do
		f=$root/usr/lib/systemd/system/${u%@*}$(case $u in *@*) echo @ ;; esac).service
		sed -e "s|/usr/sbin/|$root/usr/sbin/|" -e "s|/usr/lib/ha-protect/|$root/usr/lib/ha-protect/|" "$f" \
			> "$tmp/units/$u.service"
	done
	(cd "$tmp/units" && MANPATH="$root/usr/share/man" systemd-analyze verify --man=yes \
		./ha-protect@web.service ./ha-receive@web.service ./ha-diskrepl@d0.service \
		./ha-witness.service) > "$tmp/verify" 2>&1
	rc=$?
	sed 's/^/     /' "$tmp/verify"
	check "systemd-analyze verify: every unit clean" sh -c "test $rc -eq 0 && ! test -s '$tmp/verify'"
	check "units are Type=notify with a reload" sh -c "
		for f in '$root'/usr/lib/systemd/system/*.service; do
			grep -q '^Type=notify' \$f && grep -q '^ExecReload=' \$f || exit 1
		done"
else
	echo "     systemd-analyze is missing: units not verified"
	fails=$((fails + 1))
fi
check "bash completion parses" bash -n "$root/usr/share/bash-completion/completions/ha-protect"

# The example pair file as shipped: both daemons take every key and value
# in it (--help after it: the options are checked, then nothing runs).
ex=$root/usr/share/doc/ha-protect/examples/pair.conf.example
for p in ha-protect ha-receive; do
	"$root/usr/sbin/$p" --config "$ex" --host alpha --help > "$tmp/ex.$p" 2>&1 || {
		echo "     $p: $(grep -v '^usage\|^ ' "$tmp/ex.$p" | head -n 2)"
		touch "$tmp/exbad"
	}
done
check "both daemons read the example pair file" test ! -e "$tmp/exbad"
[ "$fails" -eq 0 ]
