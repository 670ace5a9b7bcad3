# For scripts that run ha-vm guests. Source it, set KVMLAB_ENV (the names
# of the environment variables the script reads), then call
#
#   need_kvm "$top" "$0" "$@"
#
# Where this machine has no usable /dev/kvm (or HA_KVM=lab), the script is
# run again (directly if executable, else with sh), with the same arguments, inside the KVM lab
# (tests/kvmlab/run.sh): need_kvm does not return, the script's exit status
# is the lab run's. Inside the lab, with /dev/kvm present, or with
# HA_KVM=host, it returns at once.
need_kvm() {
	nk_top=$1 nk_script=$2
	shift 2
	case ${HA_KVM:-auto} in
	lab) nk_go=1 ;;
	host) nk_go=0 ;;
	auto) if [ -w /dev/kvm ]; then nk_go=0; else nk_go=1; fi ;;
	*) echo "HA_KVM is auto, lab or host, not '$HA_KVM'" >&2; exit 2 ;;
	esac
	[ "${HA_KVMLAB:-0}" = 1 ] && nk_go=0
	[ "$nk_go" = 1 ] || return 0
	echo "$(basename "$nk_script"): no usable /dev/kvm here: running in the KVM lab," \
		"a Linux VM under QEMU (TCG) with nested KVM (docs/kvm-lab.md); all of it is emulated, so slower"
	export KVMLAB_ENV
	nk_script=$(realpath "$nk_script")
	if [ -x "$nk_script" ]; then
		exec "$nk_top/tests/kvmlab/run.sh" -- "$nk_script" "$@"
	fi
	exec "$nk_top/tests/kvmlab/run.sh" -- sh "$nk_script" "$@"
}
