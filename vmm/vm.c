#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "vmm/blk.h"
#include "vmm/guest/abi.h"
#include "vmm/vm_int.h"

static struct kvm_run *volatile kick_run;

static void on_kick(int sig)
{
	struct kvm_run *r = kick_run;

	/* Without this a kick landing between two KVM_RUNs would be lost. */
	if (r)
		r->immediate_exit = 1;
}

static uint64_t words(uint64_t pages)
{
	return (pages + 63) / 64;
}

static void mark_vmm_dirty(struct vm *vm, uint64_t gpa, size_t len)
{
	for (uint64_t p = gpa / PAGE; p <= (gpa + len - 1) / PAGE; p++)
		__atomic_fetch_or(&vm->vmm_dirty[p / 64], UINT64_C(1) << (p % 64),
				  __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */

static int open_tap(struct vm *vm, const char *name)
{
	struct ifreq ifr = {0};
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		log_error("cannot open /dev/net/tun: %s (load the tun module, run as root)",
			  strerror(errno));
		return -errno;
	}
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int rc = -errno;

		log_error("cannot attach to TAP %s: %s%s", name, strerror(errno),
			  errno == EBUSY ? " (another process uses it)" : "");
		close(fd);
		return rc;
	}
	snprintf(vm->tap_name, sizeof(vm->tap_name), "%s", ifr.ifr_name);
	vm->tap = fd;
	return 0;
}

static void build_page_tables(struct vm *vm)
{
	uint64_t *pml4 = (uint64_t *)(vm->mem + HAVM_GPA_PML4);
	uint64_t *pdpt = (uint64_t *)(vm->mem + HAVM_GPA_PML4 + PAGE);
	uint64_t *gdt = (uint64_t *)(vm->mem + HAVM_GPA_GDT);
	uint64_t two_mb = vm->mem_bytes >> 21;

	/* Identity map of RAM in 2 MiB pages, user-accessible at every level. */
	pml4[0] = (HAVM_GPA_PML4 + PAGE) | 0x7;
	for (uint64_t g = 0; g < (two_mb + 511) / 512; g++) {
		uint64_t *pd = (uint64_t *)(vm->mem + HAVM_GPA_PML4 + (2 + g) * PAGE);

		pdpt[g] = (HAVM_GPA_PML4 + (2 + g) * PAGE) | 0x7;
		for (uint64_t i = 0; i < 512 && g * 512 + i < two_mb; i++)
			pd[i] = ((g * 512 + i) << 21) | 0x87;
	}
	gdt[0] = 0;
	gdt[1] = 0x00af9b000000ffffull; /* 0x08 code64 DPL0 */
	gdt[2] = 0x00cf93000000ffffull; /* 0x10 data DPL0 */
	gdt[3] = 0x00affb000000ffffull; /* 0x18 code64 DPL3 */
	gdt[4] = 0x00cff3000000ffffull; /* 0x20 data DPL3 */
}

static int setup_cpu(struct vm *vm)
{
	struct kvm_sregs s;
	struct kvm_regs r = {0};
	struct kvm_segment code = {
		.base = 0, .limit = 0xffffffff, .selector = 0x1b, .type = 11, .present = 1,
		.dpl = 3, .db = 0, .s = 1, .l = 1, .g = 1,
	};
	struct kvm_segment data = code;

	if (ioctl(vm->vcpu, KVM_GET_SREGS, &s) < 0)
		return -errno;
	data.selector = 0x23;
	data.type = 3;
	data.l = 0;
	data.db = 1;
	s.cs = code;
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.gdt.base = HAVM_GPA_GDT;
	s.gdt.limit = 39;
	s.idt.base = 0;
	s.idt.limit = 0;
	s.cr3 = HAVM_GPA_PML4;
	s.cr4 = 0x620;      /* PAE | OSFXSR | OSXMMEXCPT */
	s.cr0 = 0x80010033; /* PG | WP | NE | ET | MP | PE */
	s.efer = 0x500;     /* LME | LMA */
	if (ioctl(vm->vcpu, KVM_SET_SREGS, &s) < 0)
		return -errno;
	r.rip = HAVM_GPA_CODE;
	r.rsp = HAVM_GPA_STACK_TOP;
	r.rflags = 0x3002; /* IOPL 3: the guest may use its ports */
	if (ioctl(vm->vcpu, KVM_SET_REGS, &r) < 0)
		return -errno;
	return 0;
}

static int setup_cpuid(struct vm *vm)
{
	int n = 128, rc;
	struct kvm_cpuid2 *c;

	for (;;) {
		c = calloc(1, sizeof(*c) + (size_t)n * sizeof(c->entries[0]));
		if (!c)
			return -ENOMEM;
		c->nent = (uint32_t)n;
		if (ioctl(vm->kvm, KVM_GET_SUPPORTED_CPUID, c) == 0)
			break;
		rc = -errno;
		free(c);
		if (rc != -E2BIG)
			return rc;
		n *= 2;
	}
	rc = ioctl(vm->vcpu, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
	free(c);
	return rc;
}

/* The MSRs that this host lets us read back: the set saved in a state. */
static int probe_msrs(struct vm *vm)
{
	struct kvm_msr_list *list = calloc(1, sizeof(*list) + 1024 * sizeof(uint32_t));
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e;
	} one;

	if (!list)
		return -ENOMEM;
	list->nmsrs = 1024;
	if (ioctl(vm->kvm, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		free(list);
		return -errno;
	}
	vm->nmsrs = 0;
	for (uint32_t i = 0; i < list->nmsrs && vm->nmsrs < MAX_MSRS; i++) {
		memset(&one, 0, sizeof(one));
		one.h.nmsrs = 1;
		one.e.index = list->indices[i];
		if (ioctl(vm->vcpu, KVM_GET_MSRS, &one) == 1)
			vm->msr_index[vm->nmsrs++] = list->indices[i];
	}
	free(list);
	return 0;
}

int vm_create(const struct vm_config *cfg, struct vm **out)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	struct kvm_userspace_memory_region region;
	struct kvm_enable_cap cap = {.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2};
	struct havm_bootinfo *bi;
	const char *what = "";
	int rc;

	if (!vm)
		return -ENOMEM;
	vm->kvm = vm->fd = vm->vcpu = vm->memfd = vm->tap = vm->wake = vm->uffd = -1;
	pthread_mutex_init(&vm->mu, NULL);
	pthread_cond_init(&vm->cv, NULL);
	snprintf(vm->name, sizeof(vm->name), "%s", cfg->name);
	vm->mem_bytes = cfg->mem_bytes;
	vm->incoming = cfg->incoming;
	if (cfg->mem_bytes < (4u << 20) || cfg->mem_bytes > (UINT64_C(4) << 30) ||
	    cfg->mem_bytes % (2u << 20)) {
		log_error("memory size must be a multiple of 2 MiB between 4 MiB and 4 GiB");
		rc = -EINVAL;
		goto err;
	}
	if (!cfg->incoming && cfg->image_len > HAVM_CODE_MAX) {
		rc = -E2BIG;
		goto err;
	}

	what = "open /dev/kvm";
	vm->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm < 0)
		goto sys;
	what = "KVM_CREATE_VM";
	vm->fd = ioctl(vm->kvm, KVM_CREATE_VM, 0);
	if (vm->fd < 0)
		goto sys;
	/* Dirty pages stay writable until we clear them: logging costs nothing
	 * until protection starts, then exactly one fault per page per epoch. */
	cap.args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KVM_DIRTY_LOG_INITIALLY_SET;
	what = "enable MANUAL_DIRTY_LOG_PROTECT2";
	if (ioctl(vm->fd, KVM_ENABLE_CAP, &cap) < 0)
		goto sys;
	ioctl(vm->fd, KVM_SET_TSS_ADDR, 0xfffbd000ul);

	what = "memfd_create";
	vm->memfd = memfd_create(vm->name, MFD_CLOEXEC);
	if (vm->memfd < 0)
		goto sys;
	what = "size guest memory";
	if (ftruncate(vm->memfd, (off_t)vm->mem_bytes) < 0)
		goto sys;
	vm->mem = mmap(NULL, vm->mem_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, vm->memfd, 0);
	what = "map guest memory";
	if (vm->mem == MAP_FAILED) {
		vm->mem = NULL;
		goto sys;
	}
	region = (struct kvm_userspace_memory_region){
		.slot = 0,
		.flags = KVM_MEM_LOG_DIRTY_PAGES,
		.guest_phys_addr = 0,
		.memory_size = vm->mem_bytes,
		.userspace_addr = (uintptr_t)vm->mem,
	};
	what = "KVM_SET_USER_MEMORY_REGION";
	if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		goto sys;
	what = "KVM_CREATE_IRQCHIP";
	if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0)
		goto sys;
	what = "KVM_CREATE_VCPU";
	vm->vcpu = ioctl(vm->fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu < 0)
		goto sys;
	vm->run_size = (size_t)ioctl(vm->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	vm->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu, 0);
	what = "map kvm_run";
	if (vm->run == MAP_FAILED) {
		vm->run = NULL;
		goto sys;
	}
	rc = setup_cpuid(vm);
	if (rc < 0) {
		what = "KVM_SET_CPUID2";
		goto kvmerr;
	}
	rc = probe_msrs(vm);
	if (rc < 0) {
		what = "KVM_GET_MSR_INDEX_LIST";
		goto kvmerr;
	}
	vm->kvm_bitmap = calloc(words(vm->mem_bytes / PAGE), 8);
	vm->vmm_dirty = calloc(words(vm->mem_bytes / PAGE), 8);
	if (!vm->kvm_bitmap || !vm->vmm_dirty) {
		rc = -ENOMEM;
		goto err;
	}
	what = "eventfd";
	vm->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->wake < 0)
		goto sys;
	if (cfg->tap) {
		rc = open_tap(vm, cfg->tap);
		if (rc < 0)
			goto err;
	}
	/* An incoming VM opens its disk when it is activated: until then the
	 * disk (a replica being updated, sized by its first configuration) is
	 * not the one the guest will find. */
	if (cfg->disk)
		snprintf(vm->disk_spec, sizeof(vm->disk_spec), "%s", cfg->disk);
	if (cfg->disk && !cfg->incoming) {
		rc = blk_open(cfg->disk, &vm->disk);
		if (rc < 0) {
			log_error("%s: cannot open disk %s: %s", vm->name, cfg->disk, strerror(-rc));
			goto err;
		}
	}
	vm->dev.has_nic = cfg->tap != NULL;

	if (!cfg->incoming) {
		build_page_tables(vm);
		memcpy(vm->mem + HAVM_GPA_CODE, cfg->image, cfg->image_len);
		bi = (struct havm_bootinfo *)(vm->mem + HAVM_GPA_BOOTINFO);
		bi->magic = HAVM_BOOT_MAGIC;
		bi->mem_bytes = vm->mem_bytes;
		bi->heap_start = HAVM_GPA_HEAP;
		rc = ioctl(vm->vcpu, KVM_GET_TSC_KHZ, 0);
		bi->tsc_khz = rc > 0 ? (uint64_t)rc : 0;
		memcpy(bi->mac, cfg->mac, 6);
		bi->has_nic = cfg->tap != NULL;
		bi->ip = cfg->ip;
		bi->netmask = cfg->netmask;
		bi->gateway = cfg->gateway;
		memcpy(bi->arg, cfg->arg, sizeof(bi->arg));
		snprintf(bi->name, sizeof(bi->name), "%s", cfg->name);
		rc = setup_cpu(vm);
		if (rc < 0) {
			what = "set up long mode";
			goto kvmerr;
		}
	}
	*out = vm;
	return 0;
sys:
	rc = -errno;
kvmerr:
	log_error("%s: %s failed: %s", vm->name, what, strerror(-rc));
	if (rc == -ENOENT || rc == -EACCES)
		log_error("is /dev/kvm present and accessible? (modprobe kvm; run as root)");
err:
	vm_destroy(vm);
	return rc;
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	vm_stop(vm);
	if (vm->started)
		pthread_join(vm->thread, NULL);
	if (vm->run)
		munmap(vm->run, vm->run_size);
	if (vm->mem)
		munmap(vm->mem, vm->mem_bytes);
	for (int *fd = &vm->kvm; fd <= &vm->memfd; fd++)
		if (*fd >= 0)
			close(*fd);
	if (vm->tap >= 0)
		close(vm->tap);
	if (vm->wake >= 0)
		close(vm->wake);
	if (vm->uffd >= 0)
		close(vm->uffd);
	blk_close(vm->disk);
	free(vm->kvm_bitmap);
	free(vm->vmm_dirty);
	pthread_cond_destroy(&vm->cv);
	pthread_mutex_destroy(&vm->mu);
	free(vm);
}

/* ------------------------------------------------------------------ */
/* Devices. */

static void console_out(struct vm *vm, uint8_t c)
{
	if (c == '\n' || vm->conlen == sizeof(vm->con) - 1) {
		vm->con[vm->conlen] = '\0';
		log_info("guest: %s", vm->con);
		vm->conlen = 0;
		if (c == '\n')
			return;
	}
	vm->con[vm->conlen++] = (char)c;
}

static void idle_wait(struct vm *vm, uint32_t us)
{
	struct pollfd p[2] = {{.fd = vm->wake, .events = POLLIN}, {.fd = vm->tap, .events = POLLIN}};
	struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000};
	uint64_t v;

	if (vm->dev.events)
		return;
	ppoll(p, vm->tap >= 0 ? 2 : 1, &ts, NULL);
	if (p[0].revents)
		(void)!read(vm->wake, &v, sizeof(v));
}

static uint32_t nic_rx(struct vm *vm)
{
	ssize_t n;

	if (vm->tap < 0)
		return 0;
	n = read(vm->tap, vm->mem + HAVM_GPA_NIC_RX, HAVM_NIC_BUF);
	if (n <= 0)
		return 0;
	mark_vmm_dirty(vm, HAVM_GPA_NIC_RX, (size_t)n);
	return (uint32_t)n;
}

static void nic_tx(struct vm *vm, uint32_t len)
{
	if (vm->tap < 0 || len > HAVM_NIC_BUF || len < 14)
		return;
	if (write(vm->tap, vm->mem + HAVM_GPA_NIC_TX, len) < 0)
		log_debug("TAP %s: frame of %u octets dropped: %s", vm->tap_name, len,
			  strerror(errno));
}

static bool gpa_range_ok(struct vm *vm, uint64_t gpa, uint64_t len)
{
	return gpa <= vm->mem_bytes && len <= vm->mem_bytes - gpa;
}

/* Runs one block request synchronously; the data moves directly between
 * the disk and guest RAM, and every page the VMM writes is marked dirty. */
static void blk_request(struct vm *vm, uint64_t gpa)
{
	struct havm_blk_req req;
	int rc = 0;

	if (!gpa_range_ok(vm, gpa, sizeof(req)))
		return;
	memcpy(&req, vm->mem + gpa, sizeof(req));
	if (!vm->disk) {
		rc = -ENODEV;
	} else if (req.op == HAVM_BLK_INFO) {
		req.size = blk_size(vm->disk);
	} else if (req.op == HAVM_BLK_FLUSH) {
		rc = blk_flush(vm->disk);
	} else if (req.op == HAVM_BLK_READ || req.op == HAVM_BLK_WRITE) {
		if (req.len > HAVM_BLK_MAX || (req.len | req.offset) % 512 ||
		    !gpa_range_ok(vm, req.buf, req.len) || req.offset > blk_size(vm->disk) ||
		    req.len > blk_size(vm->disk) - req.offset)
			rc = -EINVAL;
		else if (req.op == HAVM_BLK_READ) {
			rc = blk_read(vm->disk, vm->mem + req.buf, req.len, req.offset);
			if (req.len)
				mark_vmm_dirty(vm, req.buf, req.len);
		} else {
			rc = blk_write(vm->disk, vm->mem + req.buf, req.len, req.offset,
				       req.flags & HAVM_BLK_FUA);
		}
	} else {
		rc = -EINVAL;
	}
	if (rc < 0 && rc != -ENODEV && rc != -EINVAL)
		log_warn("disk: %s of %u octets at %llu failed: %s",
			 req.op == HAVM_BLK_READ ? "read" : "write", req.len,
			 (unsigned long long)req.offset, strerror(-rc));
	req.status = rc;
	memcpy(vm->mem + gpa, &req, sizeof(req));
	mark_vmm_dirty(vm, gpa, sizeof(req));
}

/* Returns 1 when the guest asked to stop. */
static int handle_io(struct vm *vm)
{
	struct kvm_run *r = vm->run;
	uint8_t *data = (uint8_t *)r + r->io.data_offset;
	uint32_t v = 0;

	if (r->io.direction == KVM_EXIT_IO_OUT)
		memcpy(&v, data, r->io.size < 4 ? r->io.size : 4);
	switch (r->io.port) {
	case HAVM_PORT_CONSOLE:
		if (r->io.direction == KVM_EXIT_IO_OUT)
			console_out(vm, (uint8_t)v);
		return 0;
	case HAVM_PORT_IDLE:
		idle_wait(vm, v);
		return 0;
	case HAVM_PORT_EVENTS:
		pthread_mutex_lock(&vm->mu);
		v = vm->dev.events;
		vm->dev.events = 0;
		pthread_mutex_unlock(&vm->mu);
		break;
	case HAVM_PORT_NIC_TX:
		nic_tx(vm, v);
		return 0;
	case HAVM_PORT_NIC_RX:
		v = nic_rx(vm);
		break;
	case HAVM_PORT_BLK:
		if (r->io.direction == KVM_EXIT_IO_OUT)
			blk_request(vm, v);
		return 0;
	case HAVM_PORT_EXIT:
		vm->result = (int)(v & 0x7fffffff);
		log_info("guest exited with status %u", v);
		return 1;
	default:
		v = 0xffffffff;
		break;
	}
	if (r->io.direction == KVM_EXIT_IO_IN)
		memcpy(data, &v, r->io.size < 4 ? r->io.size : 4);
	return 0;
}

static void dump_regs(struct vm *vm)
{
	struct kvm_regs r;

	if (ioctl(vm->vcpu, KVM_GET_REGS, &r) == 0)
		log_error("rip 0x%llx rsp 0x%llx rax 0x%llx", (unsigned long long)r.rip,
			  (unsigned long long)r.rsp, (unsigned long long)r.rax);
}

static void *vcpu_main(void *arg)
{
	struct vm *vm = arg;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	kick_run = vm->run;
	log_set_domain(vm->name);
	for (;;) {
		pthread_mutex_lock(&vm->mu);
		if (vm->stop) {
			pthread_mutex_unlock(&vm->mu);
			break;
		}
		if (vm->pause_req) {
			pthread_mutex_unlock(&vm->mu);
			/* Completes a pending IN/OUT without running guest code. */
			vm->run->immediate_exit = 1;
			ioctl(vm->vcpu, KVM_RUN, 0);
			vm->run->immediate_exit = 0;
			pthread_mutex_lock(&vm->mu);
			vm->paused = true;
			pthread_cond_broadcast(&vm->cv);
			while (vm->pause_req && !vm->stop)
				pthread_cond_wait(&vm->cv, &vm->mu);
			vm->paused = false;
			pthread_mutex_unlock(&vm->mu);
			continue;
		}
		pthread_mutex_unlock(&vm->mu);

		if (ioctl(vm->vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				vm->run->immediate_exit = 0;
				continue;
			}
			log_error("KVM_RUN: %s", strerror(errno));
			vm->result = -errno;
			break;
		}
		vm->exits++;
		switch (vm->run->exit_reason) {
		case KVM_EXIT_IO:
			if (handle_io(vm))
				goto out;
			continue;
		case KVM_EXIT_INTR:
			continue;
		case KVM_EXIT_SHUTDOWN:
			log_error("the guest crashed (triple fault)");
			dump_regs(vm);
			vm->result = -EFAULT;
			goto out;
		default:
			log_error("unexpected exit %u from the vCPU", vm->run->exit_reason);
			dump_regs(vm);
			vm->result = -EIO;
			goto out;
		}
	}
out:
	pthread_mutex_lock(&vm->mu);
	vm->done = true;
	vm->paused = false;
	pthread_cond_broadcast(&vm->cv);
	pthread_mutex_unlock(&vm->mu);
	return NULL;
}

int vm_start(struct vm *vm)
{
	struct sigaction sa = {.sa_handler = on_kick};
	sigset_t set, old;
	int rc;

	if (vm->started)
		return -EALREADY;
	sigaction(SIGUSR1, &sa, NULL);
	/* Only the vCPU thread takes the kick signal. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	rc = pthread_create(&vm->thread, NULL, vcpu_main, vm);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return -rc;
	vm->started = true;
	return 0;
}

int vm_wait(struct vm *vm)
{
	pthread_mutex_lock(&vm->mu);
	while (!vm->done && !(vm->stop && !vm->started))
		pthread_cond_wait(&vm->cv, &vm->mu);
	pthread_mutex_unlock(&vm->mu);
	return vm->result;
}

bool vm_wait_done(struct vm *vm)
{
	bool done;

	pthread_mutex_lock(&vm->mu);
	done = vm->done;
	pthread_mutex_unlock(&vm->mu);
	return done;
}

void vm_stop(struct vm *vm)
{
	uint64_t one = 1;

	pthread_mutex_lock(&vm->mu);
	vm->stop = true;
	pthread_cond_broadcast(&vm->cv);
	pthread_mutex_unlock(&vm->mu);
	if (vm->wake >= 0)
		(void)!write(vm->wake, &one, sizeof(one));
	if (vm->started && !vm->done)
		pthread_kill(vm->thread, SIGUSR1);
}

int vm_pause(struct vm *vm)
{
	uint64_t one = 1;

	pthread_mutex_lock(&vm->mu);
	if (!vm->started || vm->done) {
		pthread_mutex_unlock(&vm->mu);
		return vm->done ? -ESRCH : 0;
	}
	vm->pause_req = true;
	(void)!write(vm->wake, &one, sizeof(one));
	pthread_kill(vm->thread, SIGUSR1);
	while (!vm->paused && !vm->done)
		pthread_cond_wait(&vm->cv, &vm->mu);
	pthread_mutex_unlock(&vm->mu);
	return vm->done ? -ESRCH : 0;
}

int vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->mu);
	vm->pause_req = false;
	pthread_cond_broadcast(&vm->cv);
	pthread_mutex_unlock(&vm->mu);
	return vm->done ? -ESRCH : 0;
}

bool vm_paused(struct vm *vm)
{
	return !vm->started || vm->paused;
}

bool vm_incoming(struct vm *vm)
{
	return vm->incoming && !vm->started;
}

/* ------------------------------------------------------------------ */
/* Dirty tracking. */

static int get_and_clear(struct vm *vm, uint64_t *out)
{
	uint64_t pages = vm->mem_bytes / PAGE;
	struct kvm_dirty_log log = {.slot = 0, .dirty_bitmap = vm->kvm_bitmap};
	struct kvm_clear_dirty_log clr = {
		.slot = 0, .first_page = 0, .num_pages = (uint32_t)pages,
		.dirty_bitmap = vm->kvm_bitmap,
	};

	if (ioctl(vm->fd, KVM_GET_DIRTY_LOG, &log) < 0)
		return -errno;
	/* Re-protect exactly the pages reported, so the next write faults. */
	if (ioctl(vm->fd, KVM_CLEAR_DIRTY_LOG, &clr) < 0)
		return -errno;
	for (uint64_t i = 0; i < words(pages); i++) {
		uint64_t mine = __atomic_exchange_n(&vm->vmm_dirty[i], 0, __ATOMIC_RELAXED);

		if (out)
			out[i] |= vm->kvm_bitmap[i] | mine;
	}
	return 0;
}

int vm_dirty_reset(struct vm *vm)
{
	return get_and_clear(vm, NULL);
}

int vm_harvest(struct vm *vm, uint64_t *bitmap)
{
	return get_and_clear(vm, bitmap);
}

/* Frames that reached the TAP while the VM waited to be activated: nothing
 * read them, and they are old (minutes, for a standby). The guest must not
 * get them: a request the primary served long ago would be replayed. The
 * TAP is non-blocking. */
static unsigned drain_tap(struct vm *vm)
{
	static uint8_t frame[65536];
	unsigned n = 0;

	while (vm->tap >= 0 && read(vm->tap, frame, sizeof(frame)) > 0)
		n++;
	return n;
}

int vm_activate(struct vm *vm, const void *blob, size_t len)
{
	unsigned dropped;
	int rc;

	if (!vm_incoming(vm))
		return -EBUSY;
	if (vm->disk_spec[0] && !vm->disk) {
		rc = blk_open(vm->disk_spec, &vm->disk);
		if (rc < 0) {
			log_error("%s: cannot open disk %s: %s", vm->name, vm->disk_spec,
				  strerror(-rc));
			return rc;
		}
	}
	rc = vm_load_state(vm, blob, len);
	if (rc < 0)
		return rc;
	vm->dev.events |= HAVM_EV_MOVED;
	vm->incoming = false;
	dropped = drain_tap(vm);
	if (dropped)
		log_info("%s: dropped %u frames that reached %s while the VM waited", vm->name,
			 dropped, vm->tap_name);
	return vm_start(vm);
}

int vm_memfd(struct vm *vm)
{
	return vm->memfd;
}

uint64_t vm_mem_bytes(struct vm *vm)
{
	return vm->mem_bytes;
}

const char *vm_tap(struct vm *vm)
{
	return vm->tap_name;
}

const uint8_t *vm_mac(struct vm *vm)
{
	/* In a postcopy the boot page may not be here yet: the control
	 * thread never waits for a page (vm_postcopy.c kept the MAC). */
	if (vm->uffd >= 0)
		return vm->pc_mac;
	return ((const struct havm_bootinfo *)(vm->mem + HAVM_GPA_BOOTINFO))->mac;
}

const char *vm_disk(struct vm *vm)
{
	return vm->disk_spec;
}

const char *vm_name(struct vm *vm)
{
	return vm->name;
}

uint64_t vm_exits(struct vm *vm)
{
	return vm->exits;
}
