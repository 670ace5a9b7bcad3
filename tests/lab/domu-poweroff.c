/* domu-poweroff: the Xen lab's domU powers itself off (docs/lab.md).
 *
 *   domu-poweroff [poweroff|reboot|crash]     (default poweroff)
 *
 * A PVH guest of Debian's kernel cannot power itself off the usual way
 * (its ACPI poweroff needs a device model a PVH domain has none of, and
 * sysrq 'o' leaves it running), so this asks Xen directly, as a PV-aware
 * guest's kernel does: the SCHEDOP_shutdown hypercall with the reason,
 * through the kernel's privcmd device (/dev/xen/privcmd, module
 * xen-privcmd). Xen then ends the domain with that reason, as it does for
 * any guest that shuts itself down. Static, for the domU's initramfs.
 */
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <xen/xen.h>
#include <xen/sched.h>
#include <xen/sys/privcmd.h>

int main(int argc, char **argv)
{
	const char *how = argc > 1 ? argv[1] : "poweroff";
	struct sched_shutdown s;
	privcmd_hypercall_t h = {.op = __HYPERVISOR_sched_op, .arg = {SCHEDOP_shutdown}};
	int fd;

	if (!strcmp(how, "poweroff"))
		s.reason = SHUTDOWN_poweroff;
	else if (!strcmp(how, "reboot"))
		s.reason = SHUTDOWN_reboot;
	else if (!strcmp(how, "crash"))
		s.reason = SHUTDOWN_crash;
	else {
		fprintf(stderr, "usage: domu-poweroff [poweroff|reboot|crash]\n");
		return 2;
	}
	h.arg[1] = (unsigned long)&s;
	fd = open("/dev/xen/privcmd", O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "domu-poweroff: /dev/xen/privcmd: %s (is xen-privcmd loaded?)\n",
			strerror(errno));
		return 1;
	}
	printf("domu-poweroff: asking Xen to %s this domain\n", how);
	fflush(stdout);
	if (ioctl(fd, IOCTL_PRIVCMD_HYPERCALL, &h) < 0) {
		fprintf(stderr, "domu-poweroff: SCHEDOP_shutdown: %s\n", strerror(errno));
		return 1;
	}
	/* Xen stops the vCPU in the hypercall; nothing after it runs. */
	return 0;
}
