#!/bin/sh
# ha-save: saves a running domain's memory and state to a file, with the
# checkpoint machinery: live pre-copy rounds, then one checkpoint. The
# domain runs on, or stops at that checkpoint with --stop (once the file
# holds it on disk). ha-restore runs the file (ha-save(8)).
#
#   kvm:NAME  the file is a checkpoint stream (ha-protect -b --save);
#   xen:NAME  the file is an xl save file, which stock `xl restore` reads:
#             the stream is written beside it first, then converted
#             (ha-receive --restore --save-file) and removed.
#
# Both are created with mode 0600 (they hold the guest's memory), never
# over an existing file, and checked with `ha-stream verify` at the end.
set -u

usage() {
	cat <<EOF
usage: ha-save [--stop] [--precopy-rounds N] DOMAIN FILE
Saves DOMAIN (kvm:NAME, an ha-vm instance; xen:NAME, a Xen domain of this
host) to FILE, which must not exist: a live pre-copy, then one checkpoint.
  --stop                the domain stops at that checkpoint, once FILE holds
                        it on disk (else it runs on)
  --precopy-rounds N    live pre-copy rounds before it (default 5)
On Xen, FILE is an xl save file: \`ha-restore FILE\` or \`xl restore FILE\`.
The domain's disks are not in FILE (as with xl save): restore it where its
disks are as they were at the save.
Exit status: 0 saved; 1 the save failed (the domain runs on, unless a
message says otherwise); 2 a usage error.
EOF
}

die() { # CODE MESSAGE
	echo "ha-save: $2" >&2
	exit "$1"
}

stop=
rounds=
while [ $# -gt 0 ]; do
	case $1 in
	--stop) stop=--stop ;;
	--precopy-rounds)
		[ $# -ge 2 ] || die 2 "--precopy-rounds needs a number"
		rounds=$2
		shift
		;;
	--precopy-rounds=*) rounds=${1#*=} ;;
	-h | --help)
		usage
		exit 0
		;;
	--) shift; break ;;
	-*)
		usage >&2
		die 2 "unknown option $1"
		;;
	*) break ;;
	esac
	shift
done
if [ $# -ne 2 ]; then
	usage >&2
	exit 2
fi
dom=$1
file=$2
case $dom in
kvm:?* | xen:?*) ;;
*) die 2 "$dom: DOMAIN is kvm:NAME or xen:NAME" ;;
esac
if [ -e "$file" ] || [ -L "$file" ]; then
	die 2 "$file exists: a save never replaces a file; remove it or choose another name"
fi
dir=$(dirname -- "$file")
[ -d "$dir" ] && [ -w "$dir" ] || die 2 "$dir: not a directory this user can write to"

# The programs beside this one (the build tree, or the installed sbin).
here=$(dirname -- "$(readlink -f -- "$0")")
prog() {
	if [ -x "$here/$1" ]; then
		echo "$here/$1"
	else
		command -v "$1" || die 1 "$1 is not installed"
	fi
}
protect=$(prog ha-protect) || exit 1
stream=$(prog ha-stream) || exit 1

# ha-protect's exit status as ours: 2 stays a usage error, the rest is 1.
code() { [ "$1" -eq 2 ] && echo 2 || echo 1; }

# -b: no secondary, the stream goes to the file; -d: the disk stays where
# it is; no network buffering (the domain's output is not held for a save).
save() { # OUT
	# shellcheck disable=SC2086
	"$protect" -F -b -d --netbuf none --save "$1" --max-epochs 1 $stop \
		${rounds:+--precopy-rounds "$rounds"} "$dom"
}

case $dom in
kvm:*)
	save "$file"
	rc=$?
	if [ "$rc" -ne 0 ]; then
		[ -n "$stop" ] && [ -e "$file" ] &&
			die "$(code "$rc")" "the save of $dom failed (ha-protect's messages are above); $file is kept"
		rm -f -- "$file"
		die "$(code "$rc")" "the save of $dom failed (ha-protect's messages are above)"
	fi
	;;
xen:*)
	receive=$(prog ha-receive) || exit 1
	tmp=$(mktemp "$dir/.ha-save.XXXXXX") || die 1 "cannot create a file in $dir"
	trap 'rm -f -- "$tmp"' EXIT
	trap 'exit 1' INT TERM
	save "$tmp"
	rc=$?
	if [ "$rc" -ne 0 ]; then
		if [ -n "$stop" ] && [ -s "$tmp" ]; then
			trap - EXIT
			die "$(code "$rc")" "the save of $dom failed (ha-protect's messages are above); what it wrote is kept in $tmp"
		fi
		die "$(code "$rc")" "the save of $dom failed (ha-protect's messages are above)"
	fi
	if ! "$receive" --backend xen --restore "$tmp" --save-file "$file"; then
		rm -f -- "$file"
		if [ -n "$stop" ]; then
			trap - EXIT
			die 1 "the stream could not be turned into an xl save file (above); the stopped domain's state is in $tmp: \`ha-restore $tmp\` runs it"
		fi
		die 1 "the stream could not be turned into an xl save file (above); $dom runs on"
	fi
	;;
esac

if ! "$stream" verify "$file"; then
	die 1 "$file does not verify (above): do not restore it"
fi
echo "ha-save: $dom saved to $file${stop:+; the domain is stopped}"
