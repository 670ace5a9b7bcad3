# Sourced by the labs' build scripts (tests/lab/build.sh,
# tests/kvmlab/build.sh), which define say and die: sets kpkg to the
# Debian kernel package linux-image-amd64 depends on and kver to its
# version string, running apt-get update when there are no package lists.
lab_kernel_pkg() {
	kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	if [ -z "$kpkg" ]; then
		say "no package lists: apt-get update"
		apt-get update -qq || die "apt-get update failed: the Debian archive must be reachable"
		kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	fi
	[ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 to a kernel package"
	kver=${kpkg#linux-image-}
}
