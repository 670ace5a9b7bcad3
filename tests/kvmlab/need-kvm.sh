# Sourced by a script that runs ha-vm guests, after it has set KVMLAB_ENV
# (the names of the environment variables it reads), as:
#
#   . "$top/tests/kvmlab/need-kvm.sh" "$top" "$0" "$@"
#
# Where this machine has no usable /dev/kvm (or HA_KVM=lab), the script is
# run again, with the same arguments, inside the KVM lab
# (tests/kvmlab/run.sh), and its exit status is the lab run's. Inside the
# lab, with /dev/kvm present, or with HA_KVM=host, nothing happens.
kvmlab_top=$1 kvmlab_script=$2
shift 2
case ${HA_KVM:-auto} in
lab) kvmlab_go=1 ;;
host) kvmlab_go=0 ;;
auto) if [ -w /dev/kvm ]; then kvmlab_go=0; else kvmlab_go=1; fi ;;
*) echo "HA_KVM is auto, lab or host, not '$HA_KVM'" >&2; exit 2 ;;
esac
[ "${HA_KVMLAB:-0}" = 1 ] && kvmlab_go=0
if [ "$kvmlab_go" = 1 ]; then
	echo "$(basename "$kvmlab_script"): no usable /dev/kvm here: running in the KVM lab," \
		"a Linux VM under QEMU (TCG) with nested KVM (docs/lab.md); all of it is emulated, so slower"
	export KVMLAB_ENV
	exec "$kvmlab_top/tests/kvmlab/run.sh" -- "$(realpath "$kvmlab_script")" "$@"
fi
unset kvmlab_top kvmlab_script kvmlab_go
