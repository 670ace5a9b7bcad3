/* The kvm backend (kvm:NAME): a domain is an ha-vm instance, reached through its
 * control socket (vmm/vmm_ctl.h); its memory is the VM's memfd, mapped
 * here. On the secondary, an incoming ha-vm is started for each protected
 * domain and activated on failover. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdbool.h>

#include "checkpoint/stream_format.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/service.h"
#include "hv/hv.h"
#include "vmm/vmm_ctl.h"

/* A guest of ha-vm: the same handle on both sides, through its control
 * socket. */
struct hv_dom {
	struct vmm_ctl *ctl;
	struct vmm_ctl_info info;
	uint8_t *mem;
	uint64_t mem_len;
	uint64_t nr_pages;
};

/* The secondary's copy: an incoming ha-vm. */
struct hv_copy {
	struct hv_dom dom;
};

static int attach(const char *name, struct hv_dom **out, bool quiet)
{
	struct hv_dom *d = calloc(1, sizeof(*d));
	int rc;

	if (!d)
		return -ENOMEM;
	rc = vmm_ctl_connect(name, &d->ctl);
	if (rc < 0 && !quiet) {
		char path[108];

		vmm_ctl_path(path, sizeof(path), name);
		log_error("no ha-vm named %s (%s: %s)", name, path, strerror(-rc));
	}
	if (rc < 0) {
		free(d);
		return rc;
	}
	rc = vmm_ctl_info(d->ctl, &d->info);
	if (rc == 0)
		rc = vmm_ctl_map(d->ctl, &d->mem, &d->mem_len);
	if (rc < 0) {
		vmm_ctl_close(d->ctl);
		free(d);
		return rc;
	}
	d->nr_pages = d->mem_len / CKPT_PAGE_SIZE;
	*out = d;
	return 0;
}

static int kvm_attach(const char *name, struct hv_dom **out)
{
	return attach(name, out, false);
}

static void kvm_close(struct hv_dom *d)
{
	if (!d)
		return;
	vmm_ctl_close(d->ctl);
	free(d);
}

static int kvm_info(struct hv_dom *d, struct hv_info *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", d->info.name);
	out->nr_pages = d->nr_pages;
	out->vcpus = d->info.vcpus;
	snprintf(out->iface, sizeof(out->iface), "%s", d->info.tap);
	snprintf(out->disk, sizeof(out->disk), "%s", d->info.disk);
	out->domain_type = CKPT_DHDR_HAVM;
	memcpy(out->mac, d->info.mac, sizeof(out->mac));
	return 0;
}

/* ha-vm is the domain: a control socket that broke means it died, and the
 * epoch loop knows a domain that is gone as -ESRCH (as with Xen). */
static int gone(int rc)
{
	return rc == -EPIPE || rc == -ECONNRESET ? -ESRCH : rc;
}

static int kvm_dirty_start(struct hv_dom *d)
{
	return gone(vmm_ctl_dirty_reset(d->ctl));
}

static int kvm_harvest(struct hv_dom *d, struct bitmap *dirty)
{
	return gone(vmm_ctl_harvest(d->ctl, dirty->words, BITMAP_WORDS(dirty->nbits)));
}

static int kvm_pause(struct hv_dom *d)
{
	return gone(vmm_ctl_pause(d->ctl));
}

static int kvm_resume(struct hv_dom *d)
{
	return gone(vmm_ctl_resume(d->ctl));
}

/* A switchover handed the VM over: ha-vm stops it and exits. */
static int kvm_stop(struct hv_dom *d)
{
	int rc = vmm_ctl_stop(d->ctl);

	/* Its end may cut the answer short: gone is stopped. */
	return rc == -EPIPE || rc == -ECONNRESET ? 0 : rc;
}

static int kvm_save_state(struct hv_dom *d, struct hv_state *st)
{
	void *blob;
	size_t len;
	int rc = vmm_ctl_get_state(d->ctl, &blob, &len);
	struct ckpt_ha_vmm_state_hdr hdr = {.format = 1};
	uint8_t *body;

	if (rc < 0)
		return gone(rc);
	body = malloc(sizeof(hdr) + len);
	if (!body) {
		free(blob);
		return -ENOMEM;
	}
	memcpy(body, &hdr, sizeof(hdr));
	memcpy(body + sizeof(hdr), blob, len);
	rc = hv_state_add(st, CKPT_REC_HA_VMM_STATE, body, sizeof(hdr) + len);
	free(body);
	free(blob);
	return rc;
}

static uint8_t *kvm_page(struct hv_dom *d, uint64_t pfn)
{
	return pfn < d->nr_pages ? d->mem + pfn * CKPT_PAGE_SIZE : NULL;
}

/* The words of HA_VM_ARGS (ha-vm options the secondary adds, split on
 * spaces), at most max, into words; *buf holds them (free it). The count,
 * 0 when unset, or -ENOMEM. */
static int vm_args(char **buf, char *words[], int max)
{
	const char *extra = getenv("HA_VM_ARGS");
	char *save = NULL;
	int n = 0;

	*buf = NULL;
	if (!extra)
		return 0;
	*buf = strdup(extra);
	if (!*buf)
		return -ENOMEM;
	for (char *tok = strtok_r(*buf, " ", &save); tok && n < max;
	     tok = strtok_r(NULL, " ", &save))
		words[n++] = tok;
	return n;
}

/* Starts "ha-vm run --incoming" in its own session (it must outlive us
 * after a failover) and waits for its control socket. */
static int kvm_create_incoming(const struct hv_info *info, struct hv_dom **out)
{
	char mem[32], self[4096], vmm[4200], *slash;
	char *argv[32];
	int argc = 0, rc = -ETIMEDOUT, nw;
	char *copy = NULL;
	pid_t pid;

	snprintf(mem, sizeof(mem), "%lluK", (unsigned long long)(info->nr_pages * 4));
	/* ha-vm sits next to ha-receive. */
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return -errno;
	self[n] = '\0';
	slash = strrchr(self, '/');
	*slash = '\0';
	snprintf(vmm, sizeof(vmm), "%s/ha-vm", self);
	argv[argc++] = vmm;
	argv[argc++] = (char *)"run";
	argv[argc++] = (char *)"--incoming";
	argv[argc++] = (char *)"--name";
	argv[argc++] = (char *)info->name;
	argv[argc++] = (char *)"--mem";
	argv[argc++] = mem;
	if (info->disk[0]) {
		argv[argc++] = (char *)"--disk";
		argv[argc++] = (char *)info->disk;
	}
	nw = vm_args(&copy, argv + argc, 31 - argc);
	if (nw < 0)
		return nw;
	argc += nw;
	argv[argc] = NULL;
	pid = fork();
	if (pid < 0) {
		free(copy);
		return -errno;
	}
	if (pid == 0) {
		service_child_signals();
		setsid();
		signal(SIGPIPE, SIG_DFL);
		execv(vmm, argv);
		fprintf(stderr, "cannot run %s: %s\n", vmm, strerror(errno));
		_exit(127);
	}
	free(copy);
	for (int i = 0; i < 500; i++) {
		int status;

		if (waitpid(pid, &status, WNOHANG) == pid) {
			log_error("the incoming ha-vm exited at once (status %d)", status);
			return -ECHILD;
		}
		rc = attach(info->name, out, true);
		if (rc == 0) {
			if ((*out)->nr_pages != info->nr_pages) {
				kvm_close(*out);
				return -EINVAL;
			}
			return 0;
		}
		clk_sleep_until_ns(clk_now_ns() + 10 * NSEC_PER_MSEC);
	}
	kill(pid, SIGTERM);
	return rc;
}

static int kvm_activate(struct hv_copy *c, const struct hv_state *st)
{
	struct hv_dom *d = &c->dom;
	uint32_t len;
	const uint8_t *rec = hv_state_find(st, CKPT_REC_HA_VMM_STATE, &len);

	if (!rec) {
		log_error("the committed checkpoint has no ha-vm state record");
		return -EBADMSG;
	}
	if (len < sizeof(struct ckpt_ha_vmm_state_hdr))
		return -EBADMSG;
	return vmm_ctl_activate(d->ctl, rec + sizeof(struct ckpt_ha_vmm_state_hdr),
				len - sizeof(struct ckpt_ha_vmm_state_hdr));
}

static int kvm_postcopy_start(struct hv_copy *c, const uint64_t *need, size_t nwords, int *uffd,
			      uint64_t *base)
{
	return gone(vmm_ctl_postcopy(c->dom.ctl, need, nwords, uffd, base));
}

static int kvm_postcopy_end(struct hv_copy *c)
{
	return gone(vmm_ctl_postcopy_end(c->dom.ctl));
}

static void kvm_destroy(struct hv_copy *c)
{
	vmm_ctl_stop(c->dom.ctl);
}

static int kvm_create(const struct hv_info *info, struct hv_copy **out)
{
	struct hv_dom *d;
	int rc = kvm_create_incoming(info, &d);

	if (rc == 0)
		*out = (struct hv_copy *)d;
	return rc;
}

static uint8_t *kvm_copy_page(struct hv_copy *c, uint64_t pfn)
{
	return kvm_page(&c->dom, pfn);
}

static void kvm_copy_close(struct hv_copy *c)
{
	kvm_close(&c->dom);
}

static const struct hv_save_ops save_ops = {
	.open = kvm_attach,
	.close = kvm_close,
	.info = kvm_info,
	.dirty_start = kvm_dirty_start,
	.harvest = kvm_harvest,
	.pause = kvm_pause,
	.resume = kvm_resume,
	.save_state = kvm_save_state,
	.page = kvm_page,
	.stop = kvm_stop,
};

/* hv_restore_ops.needs: the interface HA_VM_ARGS's --tap names, which the
 * incoming ha-vm opens; the memory comes with the primary's stream. */
static int kvm_needs(const char *name, struct hv_needs *out, char *err, size_t errlen)
{
	char *copy, *words[64];
	int n = vm_args(&copy, words, 64);
	bool tap = false;

	memset(out, 0, sizeof(*out));
	if (n <= 0)
		return n;
	snprintf(out->source, sizeof(out->source), "HA_VM_ARGS");
	for (int i = 0; i < n; i++) {
		const char *tok = words[i];

		if (tap && out->nnets < HV_NEEDS_MAX_NETS) {
			snprintf(out->nets[out->nnets].name, sizeof(out->nets[0].name), "%s", tok);
			snprintf(out->nets[out->nnets].what, sizeof(out->nets[0].what),
				 "--tap");
			out->nnets++;
		}
		tap = !strcmp(tok, "--tap");
	}
	free(copy);
	return 0;
}

static const struct hv_restore_ops restore_ops = {
	.create = kvm_create,
	.page = kvm_copy_page,
	.activate = kvm_activate,
	.postcopy_start = kvm_postcopy_start,
	.postcopy_end = kvm_postcopy_end,
	.destroy = kvm_destroy,
	.close = kvm_copy_close,
	.needs = kvm_needs,
};

const struct hv_ops hv_havm_ops = {
	.prefix = "kvm",
	.save = &save_ops,
	.restore = &restore_ops,
};
