#!/bin/sh
# ha-restore: runs a domain saved by ha-save (ha-save(8)). The file is
# checked first (`ha-stream verify`); then
#   an xl save file (ha-save on Xen) is restored by stock `xl restore`;
#   a checkpoint stream (ha-save on KVM, ha-protect --save) by
#   `ha-receive --restore`, which runs its last complete checkpoint: a new
#   ha-vm for an ha-vm domain, `xl restore` for a Xen one.
set -u

usage() {
	cat <<EOF
usage: ha-restore [--paused] [--vm-args ARGS] FILE
Runs the domain saved in FILE (by ha-save) on this host, once FILE
verifies.
  --paused          Xen: leave the restored domain paused (xl restore -p)
  --vm-args ARGS    ha-vm: its options for the restored VM, e.g.
                    "--tap tap0" (default: \$HA_VM_ARGS)
Exit status: 0 the domain runs here; 1 it does not (the reason is
printed); 2 a usage error.
EOF
}

die() { # CODE MESSAGE
	echo "ha-restore: $2" >&2
	exit "$1"
}

paused=
vm_args=${HA_VM_ARGS:-}
while [ $# -gt 0 ]; do
	case $1 in
	--paused) paused=-p ;;
	--vm-args)
		[ $# -ge 2 ] || die 2 "--vm-args needs its options"
		vm_args=$2
		shift
		;;
	--vm-args=*) vm_args=${1#*=} ;;
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
if [ $# -ne 1 ]; then
	usage >&2
	exit 2
fi
file=$1
[ -f "$file" ] && [ -r "$file" ] || die 2 "$file: no such file, or not readable"

here=$(dirname -- "$(readlink -f -- "$0")")
prog() {
	if [ -x "$here/$1" ]; then
		echo "$here/$1"
	else
		command -v "$1" || die 1 "$1 is not installed"
	fi
}
stream=$(prog ha-stream) || exit 1

verdict=$("$stream" verify "$file") || die 1 "$file does not verify (above): nothing was started"
echo "$verdict"
case $verdict in
*": valid xl save file:"*)
	xl=${HA_XEN_XL:-xl}
	command -v "$xl" >/dev/null ||
		die 1 "$file is an xl save file: restore it in dom0 of a Xen host (xl is not installed here)"
	# shellcheck disable=SC2086
	exec "$xl" restore $paused "$file"
	;;
esac

receive=$(prog ha-receive) || exit 1
# The stream's first line names its domain type (ha-stream dump).
kind=$("$stream" dump "$file" 2>/dev/null | sed -n '1{s/.*, domain \([^(]*\) (.*/\1/p;q}')
case $kind in
ha-vm*) backend=kvm ;;
"") die 1 "$file: its domain type cannot be read" ;;
*) backend=xen ;;
esac
[ -z "$paused" ] || die 2 "--paused is for xl save files (ha-save on Xen); $file is a checkpoint stream"
HA_VM_ARGS=$vm_args exec "$receive" --backend "$backend" --restore "$file"
