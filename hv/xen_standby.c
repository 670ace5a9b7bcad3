/* The xen backend, secondary side: the hot standby. At the first committed
 * checkpoint, the domain is built paused on this host (`xl restore -p` of
 * an image that allocates its pages without writing them, under the name
 * NAME--standby), the committed pages are copied into it, and from then
 * on every commit writes its pages straight into the domain through
 * foreign mappings kept for the session. Failover loads the last
 * committed TSC, HVM parameters and context, renames the domain and
 * unpauses it. docs/architecture.md ("The hot standby") has why a commit
 * can never leave a domain that could be activated half-updated.
 */
#include "hv/xen_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xen/hvm/params.h>
#include <xen/hvm/save.h>

#include "checkpoint/stream_format.h"
#include "common/clock.h"
#include "common/log.h"

/* The pages libxc clears on restore (the xenstore and console rings, the
 * ioreq pages): shared with this host's daemons once the domain is built,
 * so commits do not write them (they hold the primary's rings) and
 * activation clears them, as libxc does after loading memory. */
static const uint32_t special_params[] = {HVM_PARAM_STORE_PFN, HVM_PARAM_CONSOLE_PFN,
					  HVM_PARAM_IOREQ_PFN, HVM_PARAM_BUFIOREQ_PFN};
#define NR_SPECIAL (sizeof(special_params) / sizeof(special_params[0]))

struct hv_xen_standby {
	xc_interface *xch;
	xenforeignmemory_handle *fmem;
	uint32_t domid;
	char name[64];	  /* the domain's name, taken at activation */
	char sbname[80];  /* its name until then */
	uint64_t nr_pfns;
	uint8_t **pages;  /* per pfn: its mapping, NULL where none */
	struct mapping *maps;
	size_t nmaps;
	uint64_t special[NR_SPECIAL];
	uint8_t *scratch; /* where a commit's writes to a special page go */
	uint32_t vcpus;   /* whose state activation loaded */
	char disk[256];	  /* this host's device for its first disk ("" as on the primary) */
};

static void standby_name(const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s--standby", name);
}

static bool is_special(const struct hv_xen_standby *sb, uint64_t pfn)
{
	for (size_t i = 0; i < NR_SPECIAL; i++)
		if (sb->special[i] && sb->special[i] == pfn)
			return true;
	return false;
}

/* Maps n pfns from first (all present in the standby) for writing. */
static int map_run(struct hv_xen_standby *sb, uint64_t first, uint32_t n)
{
	xen_pfn_t *pfns = calloc(n, sizeof(*pfns));
	int *err = calloc(n, sizeof(*err));
	struct mapping *m;
	void *addr = NULL;
	int rc = 0;

	if (!pfns || !err) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < n; i++)
		pfns[i] = first + i;
	addr = xenforeignmemory_map(sb->fmem, sb->domid, PROT_READ | PROT_WRITE, n, pfns, err);
	if (!addr) {
		rc = -errno;
		log_error("cannot map the standby %s (id %u), pfns %llu..%llu: %s", sb->sbname,
			  sb->domid, (unsigned long long)first, (unsigned long long)(first + n - 1),
			  strerror(-rc));
		goto out;
	}
	for (uint32_t i = 0; i < n && rc == 0; i++) {
		if (err[i]) {
			rc = -EIO;
			log_error("the standby %s has no page at pfn %llu (Xen: %s), which the "
				  "primary's domain has",
				  sb->sbname, (unsigned long long)(first + i), strerror(-err[i]));
		}
	}
	m = rc == 0 ? realloc(sb->maps, (sb->nmaps + 1) * sizeof(*sb->maps)) : NULL;
	if (!m) {
		rc = rc < 0 ? rc : -ENOMEM;
		xenforeignmemory_unmap(sb->fmem, addr, n);
		goto out;
	}
	sb->maps = m;
	sb->maps[sb->nmaps++] = (struct mapping){addr, n};
	for (uint32_t i = 0; i < n; i++)
		sb->pages[first + i] = (uint8_t *)addr + (size_t)i * CKPT_PAGE_SIZE;
out:
	free(pfns);
	free(err);
	return rc;
}

/* Maps every pfn of present, in runs. */
static int map_present(struct hv_xen_standby *sb, const struct bitmap *present)
{
	uint64_t run = 0;
	uint32_t n = 0;
	int rc = 0;

	for (size_t b = bitmap_next_set(present, 0); rc == 0 && b < present->nbits;
	     b = bitmap_next_set(present, b + 1)) {
		if (n && (b != run + n || n == XEN_MAP_CHUNK)) {
			rc = map_run(sb, run, n);
			n = 0;
		}
		if (!n)
			run = b;
		n++;
	}
	if (rc == 0 && n)
		rc = map_run(sb, run, n);
	return rc;
}

/* Runs `xl ARGS...` and waits: 0 when it exits 0. */
static int xl(const char *a1, const char *a2, const char *a3)
{
	const char *bin = getenv("HA_XEN_XL") ? getenv("HA_XEN_XL") : "xl";
	const char *argv[] = {bin, a1, a2, a3, NULL};

	return hv_xen_run(argv);
}

static void destroy_leftover(const char *sbname)
{
	uint32_t id;
	char ids[16];

	if (hv_xen_domain_named(sbname, &id) < 0)
		return;
	log_warn("a standby %s (id %u) is left over from an earlier ha-receive that could not "
		 "remove it: destroying it (it never ran and holds no state anyone needs)",
		 sbname, id);
	snprintf(ids, sizeof(ids), "%u", id);
	xl("destroy", ids, NULL);
}

int hv_xen_standby_new(struct hv_xen_image *im, const struct hv_state *st,
		       struct hv_xen_standby **out)
{
	const struct hv_info *info = hv_xen_image_info(im);
	const struct bitmap *present = hv_xen_image_present(im);
	struct hv_xen_standby *sb = calloc(1, sizeof(*sb));
	uint64_t t0 = clk_now_ns(), t1, copied = 0;
	int rc;

	if (!sb)
		return -ENOMEM;
	snprintf(sb->name, sizeof(sb->name), "%s", info->name);
	snprintf(sb->disk, sizeof(sb->disk), "%s", info->disk);
	standby_name(info->name, sb->sbname, sizeof(sb->sbname));
	sb->nr_pfns = info->nr_pages;
	sb->domid = DOMID_INVALID;
	destroy_leftover(sb->sbname);
	rc = hv_xen_image_standby(im, st, sb->sbname);
	if (rc < 0)
		goto fail;
	rc = hv_xen_domain_named(sb->sbname, &sb->domid);
	if (rc < 0) {
		log_error("xl restore -p succeeded but no domain %s is found: %s", sb->sbname,
			  strerror(-rc));
		goto fail;
	}
	t1 = clk_now_ns();
	sb->xch = xc_interface_open(NULL, NULL, 0);
	sb->fmem = xenforeignmemory_open(NULL, 0);
	sb->pages = calloc(sb->nr_pfns, sizeof(*sb->pages));
	sb->scratch = mmap(NULL, CKPT_PAGE_SIZE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!sb->xch || !sb->fmem) {
		rc = -errno;
		log_error("cannot open libxenctrl or libxenforeignmemory: %s", strerror(-rc));
		goto fail;
	}
	if (!sb->pages || sb->scratch == MAP_FAILED) {
		sb->scratch = NULL;
		rc = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < NR_SPECIAL; i++) {
		if (xc_hvm_param_get(sb->xch, sb->domid, special_params[i], &sb->special[i]) < 0) {
			rc = -errno;
			log_error("cannot read HVM parameter %u of the standby %s: %s",
				  special_params[i], sb->sbname, strerror(-rc));
			goto fail;
		}
	}
	rc = map_present(sb, present);
	if (rc < 0)
		goto fail;
	for (size_t b = bitmap_next_set(present, 0); b < present->nbits;
	     b = bitmap_next_set(present, b + 1)) {
		if (is_special(sb, b))
			continue;
		memcpy(sb->pages[b], hv_xen_image_page(im, b), CKPT_PAGE_SIZE);
		copied++;
	}
	log_info("hot standby %s (id %u) holds the committed image: built in %llu ms, %llu "
		 "pages copied in %llu ms, %zu mappings",
		 sb->sbname, sb->domid, (unsigned long long)((t1 - t0) / NSEC_PER_MSEC),
		 (unsigned long long)copied,
		 (unsigned long long)((clk_now_ns() - t1) / NSEC_PER_MSEC), sb->nmaps);
	*out = sb;
	return 0;
fail:
	hv_xen_standby_destroy(sb);
	hv_xen_standby_free(sb);
	return rc;
}

uint8_t *hv_xen_standby_page(struct hv_xen_standby *sb, uint64_t pfn)
{
	xen_pfn_t gpfn = pfn;

	if (pfn >= sb->nr_pfns)
		return NULL;
	if (is_special(sb, pfn))
		return sb->scratch;
	if (sb->pages[pfn])
		return sb->pages[pfn];
	/* A page the primary's domain has and the standby does not (it was
	 * populated there after the standby was built): allocate it here.
	 * Nothing of the checkpoint has been written yet (the receiver looks
	 * up every page before it copies any). */
	if (xc_domain_populate_physmap_exact(sb->xch, sb->domid, 1, 0, 0, &gpfn) < 0) {
		log_error("cannot give the standby %s a page at pfn %llu: %s", sb->sbname,
			  (unsigned long long)pfn, strerror(errno));
		return NULL;
	}
	return map_run(sb, pfn, 1) == 0 ? sb->pages[pfn] : NULL;
}

const uint8_t *hv_xen_standby_peek(const struct hv_xen_standby *sb, uint64_t pfn)
{
	if (pfn >= sb->nr_pfns || is_special(sb, pfn))
		return NULL;
	return sb->pages[pfn];
}

/* How many vCPUs' registers (CPU records) an HVM context holds. */
static uint32_t context_vcpus(const uint8_t *ctx, uint32_t len)
{
	uint32_t n = 0;

	for (uint32_t off = 0; off + sizeof(struct hvm_save_descriptor) <= len;) {
		struct hvm_save_descriptor d;

		memcpy(&d, ctx + off, sizeof(d));
		if (d.typecode == HVM_SAVE_CODE(END))
			break;
		n += d.typecode == HVM_SAVE_CODE(CPU);
		off += sizeof(d) + d.length;
	}
	return n;
}

static int vcpus_of(xc_interface *xch, uint32_t domid, uint32_t *vcpus)
{
	xc_dominfo_t info;

	if (xc_domain_getinfo(xch, domid, 1, &info) != 1 || info.domid != domid)
		return -ESRCH;
	*vcpus = info.max_vcpu_id + 1;
	return 0;
}

/* The checkpoint's TSC, HVM parameters and context, as libxc's restore
 * loads them. */
static int load_state(struct hv_xen_standby *sb, const struct hv_state *st)
{
	const struct ckpt_tsc_info *tsc;
	const struct ckpt_hvm_params_hdr *ph;
	const void *ctx;
	uint32_t len, clen, ncpu, vcpus = 0;

	tsc = hv_state_find(st, CKPT_REC_X86_TSC_INFO, &len);
	if (tsc && len >= sizeof(*tsc) &&
	    xc_domain_set_tsc_info(sb->xch, sb->domid, tsc->mode, tsc->nsec, tsc->khz,
				   tsc->incarnation) < 0) {
		log_error("cannot set the TSC of the standby: %s", strerror(errno));
		return -errno;
	}
	ph = hv_state_find(st, CKPT_REC_HVM_PARAMS, &len);
	if (ph && len >= sizeof(*ph) + (uint64_t)ph->count * 16) {
		const uint64_t *e = (const uint64_t *)(ph + 1);

		for (uint32_t i = 0; i < ph->count; i++) {
			if (xc_hvm_param_set(sb->xch, sb->domid, (int)e[2 * i], e[2 * i + 1]) < 0) {
				log_error("cannot set HVM parameter %llu of the standby: %s",
					  (unsigned long long)e[2 * i], strerror(errno));
				return -errno;
			}
		}
	}
	ctx = hv_state_find(st, CKPT_REC_HVM_CONTEXT, &clen);
	if (!ctx) {
		log_error("the committed checkpoint has no HVM_CONTEXT record");
		return -EBADMSG;
	}
	ncpu = context_vcpus(ctx, clen);
	sb->vcpus = ncpu;
	if (vcpus_of(sb->xch, sb->domid, &vcpus) < 0 || ncpu != vcpus) {
		log_error("the committed HVM context holds the registers of %u vCPUs and the "
			  "standby has %u: not activating a domain with a vCPU in no known state",
			  ncpu, vcpus);
		return -EBADMSG;
	}
	if (xc_domain_hvm_setcontext(sb->xch, sb->domid, (uint8_t *)ctx, clen) < 0) {
		log_error("Xen refused the committed HVM context (%u octets) for the standby: %s",
			  clen, strerror(errno));
		return -errno;
	}
	return 0;
}

/* One disk of the configuration as an xl disk specification (target
 * last, as xl wants it). -ENOENT when it names no device. */
static int disk_spec(const struct hv_xen_config *c, size_t i, const char *pdev, char *out,
		     size_t len)
{
	const char *vdev, *fmt, *be, *script, *bedom;
	char key[64];
	int64_t rw = 1, cdrom = 0;
	int n;

#define DISK_KEY(k) (snprintf(key, sizeof(key), "disks.%zu." k, i), key)
	vdev = hv_xen_config_str(c, DISK_KEY("vdev"));
	fmt = hv_xen_config_str(c, DISK_KEY("format"));
	be = hv_xen_config_str(c, DISK_KEY("backend"));
	script = hv_xen_config_str(c, DISK_KEY("script"));
	bedom = hv_xen_config_str(c, DISK_KEY("backend_domname"));
	hv_xen_config_int(c, DISK_KEY("readwrite"), &rw);
	hv_xen_config_int(c, DISK_KEY("is_cdrom"), &cdrom);
	if (!pdev)
		pdev = hv_xen_config_str(c, DISK_KEY("pdev_path"));
#undef DISK_KEY
	if (!vdev || !pdev || !*pdev)
		return -ENOENT;
	n = snprintf(out, len, "vdev=%s, access=%s%s%s%s%s%s%s%s%s%s, target=%s", vdev,
		     rw ? "rw" : "ro", cdrom ? ", devtype=cdrom" : "",
		     fmt && strcmp(fmt, "unknown") ? ", format=" : "",
		     fmt && strcmp(fmt, "unknown") ? fmt : "",
		     be && strcmp(be, "unknown") ? ", backendtype=" : "",
		     be && strcmp(be, "unknown") ? be : "", script ? ", script=" : "",
		     script ? script : "", bedom ? ", backend=" : "", bedom ? bedom : "", pdev);
	return n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

/* The standby was built without disks (their backends would have opened
 * them while this host's replicas could not be written): now that the
 * receiver has promoted them, each disk of the committed configuration is
 * attached, the first on this host's device. The guest's front ends
 * reconnect to them when it resumes, as after any restore. */
static int attach_disks(struct hv_xen_standby *sb, const struct hv_state *st)
{
	const char *bin = getenv("HA_XEN_XL") ? getenv("HA_XEN_XL") : "xl";
	struct hv_xen_config *c;
	uint64_t t0 = clk_now_ns();
	uint32_t len;
	const char *json = hv_state_find(st, CKPT_REC_HA_XEN_CONFIG, &len);
	char err[320], spec[1024];
	size_t n, attached = 0;
	int rc = 0;

	if (!json || hv_xen_config_parse(json, len, &c, err, sizeof(err)) < 0)
		return 0; /* the standby was built from it: not reached */
	n = hv_xen_config_count(c, "disks");
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *argv[] = {bin, "block-attach", sb->sbname, spec, NULL};

		rc = disk_spec(c, i, i == 0 && sb->disk[0] ? sb->disk : NULL, spec, sizeof(spec));
		if (rc == -ENOENT) {
			log_warn("disk %zu of %s names no device: not attached", i, sb->name);
			rc = 0;
			continue;
		}
		if (rc == 0)
			rc = hv_xen_run(argv) < 0 ? -EIO : 0;
		if (rc == 0)
			attached++;
		if (rc < 0)
			log_error("cannot attach disk %zu (%s) to the standby %s: `xl block-attach` "
				  "failed (its messages are above); the standby stays paused",
				  i, spec, sb->sbname);
	}
	hv_xen_config_free(c);
	if (rc == 0 && attached)
		log_info("%zu disks attached to the standby %s in %llu ms", attached, sb->sbname,
			 (unsigned long long)((clk_now_ns() - t0) / NSEC_PER_MSEC));
	return rc;
}

int hv_xen_standby_activate(struct hv_xen_standby *sb, const struct hv_state *st)
{
	uint64_t t0 = clk_now_ns(), t1, t2;
	uint32_t id;
	int rc;

	if (hv_xen_domain_named(sb->name, &id) == 0) {
		log_error("a domain named %s already exists on this host (id %u): not starting a "
			  "second one beside it",
			  sb->name, id);
		return -EEXIST;
	}
	rc = attach_disks(sb, st);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < NR_SPECIAL; i++)
		if (sb->special[i] && sb->special[i] < sb->nr_pfns && sb->pages[sb->special[i]])
			memset(sb->pages[sb->special[i]], 0, CKPT_PAGE_SIZE);
	rc = load_state(sb, st);
	if (rc < 0)
		return rc;
	if (xc_domain_unpause(sb->xch, sb->domid) < 0) {
		rc = -errno;
		log_error("cannot unpause the standby %s (id %u): %s", sb->sbname, sb->domid,
			  strerror(-rc));
		return rc;
	}
	t1 = clk_now_ns();
	/* The guest does not read its name: it runs while xl renames it. */
	sb->domid = DOMID_INVALID; /* it runs: nothing here destroys it any more */
	if (xl("rename", sb->sbname, sb->name) < 0)
		log_error("the domain runs, but as %s: `xl rename %s %s` failed (its messages are "
			  "above); run it by hand",
			  sb->sbname, sb->sbname, sb->name);
	t2 = clk_now_ns();
	log_info("the standby runs as %s: state of its %u vCPUs loaded and unpaused in %llu ms, "
		 "renamed in %llu ms",
		 sb->name, sb->vcpus, (unsigned long long)((t1 - t0) / NSEC_PER_MSEC),
		 (unsigned long long)((t2 - t1) / NSEC_PER_MSEC));
	return 0;
}

int hv_xen_standby_copy_out(struct hv_xen_standby *sb, struct hv_xen_image *im)
{
	for (uint64_t pfn = 0; pfn < sb->nr_pfns; pfn++) {
		uint8_t *dst;

		if (!sb->pages[pfn])
			continue;
		dst = hv_xen_image_page(im, pfn);
		if (!dst)
			return -ERANGE;
		memcpy(dst, sb->pages[pfn], CKPT_PAGE_SIZE);
	}
	return 0;
}

void hv_xen_standby_destroy(struct hv_xen_standby *sb)
{
	char ids[16];

	if (!sb || sb->domid == DOMID_INVALID)
		return;
	snprintf(ids, sizeof(ids), "%u", sb->domid);
	if (xl("destroy", ids, NULL) < 0)
		log_error("the standby %s (id %u) could not be destroyed: `xl destroy %u` it",
			  sb->sbname, sb->domid, sb->domid);
	else
		log_info("the standby %s (id %u) is destroyed", sb->sbname, sb->domid);
	sb->domid = DOMID_INVALID;
}

void hv_xen_standby_free(struct hv_xen_standby *sb)
{
	if (!sb)
		return;
	for (size_t i = 0; i < sb->nmaps; i++)
		xenforeignmemory_unmap(sb->fmem, sb->maps[i].addr, sb->maps[i].n);
	free(sb->maps);
	free(sb->pages);
	if (sb->scratch)
		munmap(sb->scratch, CKPT_PAGE_SIZE);
	if (sb->fmem)
		xenforeignmemory_close(sb->fmem);
	if (sb->xch)
		xc_interface_close(sb->xch);
	free(sb);
}
