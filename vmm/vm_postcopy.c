/* Postcopy on the destination of a migration: guest memory registered with
 * a userfaultfd so that the first touch of a page that is not here yet
 * (the guest's, through KVM, or a device's in this process) waits until
 * the process serving the userfaultfd places it. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "vmm/vm.h"
#include "vmm/vm_int.h"

/* Drops pages [first, first + n) from the memfd: the next touch of one
 * is a missing page. */
static int punch(struct vm *vm, uint64_t first, uint64_t n)
{
	if (fallocate(vm->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)(first * PAGE), (off_t)(n * PAGE)) < 0)
		return -errno;
	return 0;
}

int vm_postcopy_start(struct vm *vm, const uint64_t *need, size_t nwords, int *uffd,
		      uint64_t *base)
{
	uint64_t nr = vm->mem_bytes / PAGE, run = 0, evicted = 0;
	struct uffdio_api api = {.api = UFFD_API};
	struct uffdio_register reg = {
		.range = {.start = (uint64_t)(uintptr_t)vm->mem, .len = vm->mem_bytes},
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	int fd, rc;

	if (!vm->incoming || vm->started || vm->uffd >= 0)
		return -EBUSY;
	if (nwords != (nr + 63) / 64)
		return -EINVAL;
	/* The boot page as pre-copy left it: its MAC does not change. */
	memcpy(vm->pc_mac, vm_mac(vm), sizeof(vm->pc_mac));
	/* Runs of needed pages, dropped a run at a time. */
	for (uint64_t pfn = 0; pfn <= nr; pfn++) {
		bool set = pfn < nr && (need[pfn / 64] >> (pfn % 64) & 1);

		if (set) {
			run++;
			continue;
		}
		if (run) {
			rc = punch(vm, pfn - run, run);
			if (rc < 0) {
				log_error("postcopy: cannot drop pages %llu..%llu: %s",
					  (unsigned long long)(pfn - run), (unsigned long long)pfn - 1,
					  strerror(-rc));
				return rc;
			}
			evicted += run;
			run = 0;
		}
	}
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		log_error("postcopy: userfaultfd: %s%s", strerror(errno),
			  errno == EPERM ? " (vm.unprivileged_userfaultfd, or run as root)" : "");
		return rc;
	}
	if (ioctl(fd, UFFDIO_API, &api) < 0 || ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
		rc = -errno;
		log_error("postcopy: registering guest memory with userfaultfd: %s (shared "
			  "memory needs Linux 4.11 or later)",
			  strerror(errno));
		close(fd);
		return rc;
	}
	if (!(reg.ioctls & ((uint64_t)1 << _UFFDIO_COPY))) {
		log_error("postcopy: this kernel cannot place pages in shared memory "
			  "(no UFFDIO_COPY)");
		close(fd);
		return -EOPNOTSUPP;
	}
	vm->uffd = fd;
	*uffd = fd;
	*base = (uint64_t)(uintptr_t)vm->mem;
	log_info("postcopy: %llu of %llu pages are not here yet: the guest waits for each on "
		 "its first touch",
		 (unsigned long long)evicted, (unsigned long long)nr);
	return 0;
}

int vm_postcopy_end(struct vm *vm)
{
	struct uffdio_range r = {.start = (uint64_t)(uintptr_t)vm->mem, .len = vm->mem_bytes};
	int rc = 0;

	if (vm->uffd < 0)
		return -ENOENT;
	if (ioctl(vm->uffd, UFFDIO_UNREGISTER, &r) < 0)
		rc = -errno;
	close(vm->uffd);
	vm->uffd = -1;
	if (rc == 0)
		log_info("postcopy: every page is here");
	return rc;
}

bool vm_postcopy_active(struct vm *vm)
{
	return vm->uffd >= 0;
}
