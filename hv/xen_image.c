/* The xen backend, secondary side: the committed image of a Xen domain,
 * and failover by restoring it with the toolstack.
 *
 * The receiver commits pages into a sparse buffer over the guest-physical
 * map (anonymous memory; pages never written stay unbacked) and keeps the
 * last checkpoint's state records. On failover the image becomes an xl
 * save file, which `xl restore` turns into a running domain:
 *
 *   xl header    "Xen saved domain, xl format\n \0 \r", byte order,
 *                flags STREAMv2 (| JSON), the domain's libxl configuration
 *   libxl        "LibxlFmt" v2, LIBXC_CONTEXT, ... END
 *   libxc        image + domain header (x86 HVM), STATIC_DATA_END,
 *                PAGE_DATA x N (1024 pages each), X86_TSC_INFO,
 *                HVM_CONTEXT, HVM_PARAMS, END
 *
 * Why restore rather than keep a paused domain updated each checkpoint:
 * docs/xen.md (measured failover time and what the other route costs).
 */
#include "hv/xen.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint/stream.h"
#include "common/bitmap.h"
#include "common/clock.h"
#include "common/io.h"
#include "common/log.h"
#include "common/service.h"

#define XL_MAGIC "Xen saved domain, xl format\n \0 \r"
#define XL_BYTEORDER 0x01020304u
#define XL_FLAG_JSON 0x1u
#define XL_FLAG_STREAMV2 0x2u
#define LIBXL_IDENT UINT64_C(0x4c6962786c466d74) /* "LibxlFmt" */
#define LIBXL_VERSION 2u
#define LIBXL_REC_END 0u
#define LIBXL_REC_LIBXC_CONTEXT 1u
#define LIBXL_REC_LAST 5u /* CHECKPOINT_STATE, the last type libxl 4.17 knows */
#define PAGES_PER_RECORD 1024u

struct xl_save_hdr {
	char magic[32];
	uint32_t byteorder;
	uint32_t mandatory_flags;
	uint32_t optional_flags;
	uint32_t optional_data_len;
};
_Static_assert(sizeof(struct xl_save_hdr) == 48, "xl save header size");

struct libxl_hdr {
	uint64_t ident;
	uint32_t version;
	uint32_t options;
};
_Static_assert(sizeof(struct libxl_hdr) == 16, "libxl header size");

struct hv_xen_image {
	struct hv_info info;
	struct hv_state start; /* the stream's start records (the CPU policy) */
	uint8_t *mem;
	size_t len;
	struct bitmap present;
};

int hv_xen_image_new(const struct hv_info *info, struct hv_xen_image **out)
{
	struct hv_xen_image *im = calloc(1, sizeof(*im));
	int rc;

	if (!im)
		return -ENOMEM;
	im->info = *info;
	im->len = (size_t)info->nr_pages * CKPT_PAGE_SIZE;
	im->mem = mmap(NULL, im->len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (im->mem == MAP_FAILED) {
		im->mem = NULL;
		free(im);
		return -ENOMEM;
	}
	rc = bitmap_init(&im->present, info->nr_pages);
	if (rc < 0) {
		munmap(im->mem, im->len);
		free(im);
		return rc;
	}
	*out = im;
	return 0;
}

void hv_xen_image_free(struct hv_xen_image *im)
{
	if (!im)
		return;
	if (im->mem)
		munmap(im->mem, im->len);
	bitmap_destroy(&im->present);
	hv_state_free(&im->start);
	free(im);
}

int hv_xen_image_set_start(struct hv_xen_image *im, const struct hv_state *st)
{
	hv_state_free(&im->start);
	return hv_state_copy(&im->start, st);
}

uint8_t *hv_xen_image_page(struct hv_xen_image *im, uint64_t pfn)
{
	if (pfn >= im->info.nr_pages)
		return NULL;
	bitmap_set(&im->present, pfn);
	return im->mem + pfn * CKPT_PAGE_SIZE;
}

/* The configuration adapted to this host: its first disk's "pdev_path" set
 * to DISK (the device that holds the disk here, e.g. a promoted DRBD
 * resource with another minor than on the primary) unless DISK is "", and
 * its name set to NAME unless NULL. With a NAME (the standby) it has no
 * disks: their backends would open them at once, and this host may open
 * them only once it takes over (the standby gets them at activation). 0
 * with *out malloc'd (NULL: use it as it is), or -errno. */
static int adapt_config(const struct hv_info *info, const char *json, uint32_t len,
			const char *name, char **out, uint32_t *outlen)
{
	struct hv_xen_config *c;
	char err[320];
	int rc;

	*out = NULL;
	if (!info->disk[0] && !name)
		return 0;
	rc = hv_xen_config_parse(json, len, &c, err, sizeof(err));
	if (rc < 0) {
		log_error("%s", err);
		return rc;
	}
	if (info->disk[0] && hv_xen_config_set(c, "disks.0.pdev_path", info->disk) < 0)
		log_warn("the domain's configuration names no disk: %s is not attached to it",
			 info->disk);
	if (name && hv_xen_config_set(c, "c_info.name", name) < 0) {
		log_error("the domain's libxl configuration has no c_info.name");
		rc = -EBADMSG;
	}
	if (name)
		hv_xen_config_clear(c, "disks");
	if (rc == 0)
		rc = hv_xen_config_dump(c, out, outlen);
	hv_xen_config_free(c);
	return rc;
}

static int write_xl_header(int fd, const void *config, uint32_t config_len)
{
	struct xl_save_hdr h = {
		.byteorder = XL_BYTEORDER,
		.mandatory_flags = XL_FLAG_STREAMV2 | (config_len ? XL_FLAG_JSON : 0),
		.optional_data_len = 4 + config_len,
	};
	struct libxl_hdr lh = {
		.ident = htobe64(LIBXL_IDENT),
		.version = htobe32(LIBXL_VERSION),
	};
	struct ckpt_rec_hdr ctx = {.type = LIBXL_REC_LIBXC_CONTEXT};
	uint32_t len = config_len;
	int rc;

	memcpy(h.magic, XL_MAGIC, sizeof(h.magic));
	rc = io_write_full(fd, &h, sizeof(h));
	if (rc == 0)
		rc = io_write_full(fd, &len, sizeof(len));
	if (rc == 0 && config_len)
		rc = io_write_full(fd, config, config_len);
	if (rc == 0)
		rc = io_write_full(fd, &lh, sizeof(lh));
	if (rc == 0)
		rc = io_write_full(fd, &ctx, sizeof(ctx));
	return rc;
}

/* A PAGE_DATA record of pfns to be allocated without data (XALLOC): what
 * libxc's restore populates and leaves zeroed. */
static int write_alloc(struct ckpt_writer *w, const uint64_t *pfns, uint32_t n)
{
	struct ckpt_page_data_hdr hdr = {.count = n};
	uint64_t ents[PAGES_PER_RECORD];
	struct iovec iov[2] = {{&hdr, sizeof(hdr)}, {ents, n * sizeof(ents[0])}};

	for (uint32_t i = 0; i < n; i++)
		ents[i] = pfns[i] | (uint64_t)CKPT_PFN_TYPE_XALLOC << CKPT_PFN_TYPE_SHIFT;
	return ckpt_writer_pages(w, CKPT_REC_PAGE_DATA, iov, 2, 0);
}

/* The image as an xl save file. NAME: the domain is created under that
 * name, its pages allocated but not written (the standby's creation). */
static int write_image(struct hv_xen_image *im, const struct hv_state *st, int fd,
		       const char *name)
{
	static const uint32_t state_types[] = {CKPT_REC_X86_TSC_INFO, CKPT_REC_HVM_CONTEXT,
					       CKPT_REC_HVM_PARAMS};
	struct ckpt_rec_hdr end = {.type = LIBXL_REC_END};
	uint64_t pfns[PAGES_PER_RECORD];
	const void *pages[PAGES_PER_RECORD];
	struct ckpt_writer *w = NULL;
	const char *config;
	char *local = NULL;
	uint32_t config_len = 0, n = 0, len;
	int rc;

	if (!hv_state_find(st, CKPT_REC_HVM_CONTEXT, &len)) {
		log_error("the committed checkpoint has no HVM_CONTEXT record: nothing to restore");
		return -EBADMSG;
	}
	config = hv_state_find(st, CKPT_REC_HA_XEN_CONFIG, &config_len);
	if (!config && name) {
		log_error("the primary sent no libxl configuration: cannot create %s", name);
		return -ENOENT;
	}
	if (config) {
		rc = adapt_config(&im->info, config, config_len, name, &local, &config_len);
		if (rc < 0)
			return rc;
		if (local)
			config = local;
	}
	rc = write_xl_header(fd, config, config ? config_len : 0);
	if (rc == 0)
		rc = ckpt_writer_new(fd, &w);
	if (rc < 0)
		goto out;
	ckpt_writer_set_trailers(w, false);
	rc = ckpt_writer_headers(w, CKPT_IHDR_ID_XEN, CKPT_DHDR_X86_HVM, im->info.xen_major,
				 im->info.xen_minor);
	/* The CPU policy, if the primary sent it, goes before STATIC_DATA_END
	 * as libxc's save writes it. */
	for (size_t t = 0; rc == 0 && t < 2; t++) {
		uint32_t type = t ? CKPT_REC_X86_MSR_POLICY : CKPT_REC_X86_CPUID_POLICY;
		const void *body = hv_state_find(&im->start, type, &len);
		struct iovec iov = {(void *)body, len};

		if (body)
			rc = ckpt_writer_record(w, type, &iov, 1);
	}
	if (rc == 0)
		rc = ckpt_writer_record(w, CKPT_REC_STATIC_DATA_END, NULL, 0);
	for (size_t b = bitmap_next_set(&im->present, 0); rc == 0 && b < im->present.nbits;
	     b = bitmap_next_set(&im->present, b + 1)) {
		pfns[n] = b;
		pages[n] = im->mem + b * CKPT_PAGE_SIZE;
		if (++n == PAGES_PER_RECORD) {
			rc = name ? write_alloc(w, pfns, n) : ckpt_writer_page_data(w, pfns, pages, n);
			n = 0;
		}
	}
	if (rc == 0 && n)
		rc = name ? write_alloc(w, pfns, n) : ckpt_writer_page_data(w, pfns, pages, n);
	for (size_t t = 0; rc == 0 && t < sizeof(state_types) / sizeof(state_types[0]); t++) {
		const void *body = hv_state_find(st, state_types[t], &len);
		struct iovec iov = {(void *)body, len};

		if (body)
			rc = ckpt_writer_record(w, state_types[t], &iov, 1);
	}
	if (rc == 0)
		rc = ckpt_writer_end(w);
	if (rc == 0)
		rc = io_write_full(fd, &end, sizeof(end));
out:
	ckpt_writer_free(w);
	free(local);
	return rc;
}

int hv_xen_image_write(struct hv_xen_image *im, const struct hv_state *st, int fd)
{
	return write_image(im, st, fd, NULL);
}

static pid_t spawn(const char *const argv[])
{
	pid_t pid = fork();

	if (pid == 0) {
		service_child_signals();
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], (char *const *)argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid < 0 ? -errno : pid;
}

/* Waits for pid; 0 when it exited 0, else -EIO with what names it logged. */
static int wait_child(pid_t pid, const char *what)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		log_error("`%s` failed (status 0x%x); its messages are above", what, status);
		return -EIO;
	}
	return 0;
}

int hv_xen_run(const char *const argv[])
{
	char what[256] = "";
	pid_t pid;

	for (size_t i = 0, n = 0; argv[i] && n < sizeof(what); i++)
		n += (size_t)snprintf(what + n, sizeof(what) - n, "%s%s", i ? " " : "", argv[i]);
	pid = spawn(argv);
	if (pid < 0) {
		log_error("cannot start %s: %s", argv[0], strerror(-(int)pid));
		return (int)pid;
	}
	return wait_child(pid, what);
}

/* Starts `xl restore [-p] [CONFIG] FILE`; xl exits once the domain runs
 * (or, paused, once it is built). */
static pid_t start_xl_restore(const char *file, bool paused)
{
	const char *xl = getenv("HA_XEN_XL") ? getenv("HA_XEN_XL") : "xl";
	const char *cfg = getenv("HA_XEN_CONFIG");
	const char *argv[6];
	int argc = 0;

	argv[argc++] = xl;
	argv[argc++] = "restore";
	if (paused)
		argv[argc++] = "-p";
	else if (cfg && *cfg)
		argv[argc++] = cfg;
	argv[argc++] = file;
	argv[argc] = NULL;
	return spawn(argv);
}

static int wait_xl(pid_t pid, const char *file)
{
	char what[600];

	snprintf(what, sizeof(what), "xl restore %s", file);
	return wait_child(pid, what);
}

/* Streams the image to xl through a FIFO, so writing and restoring
 * overlap. -EAGAIN: xl never opened the FIFO or it failed (the caller
 * falls back to a file). */
static int restore_fifo(struct hv_xen_image *im, const struct hv_state *st, const char *dir)
{
	char path[512];
	uint64_t t0 = clk_now_ns();
	int fd = -1, rc;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/ha-receive-%s.%d.fifo", dir, im->info.name,
		 (int)getpid());
	unlink(path);
	if (mkfifo(path, 0600) < 0) {
		log_warn("cannot create the FIFO %s (%s): writing the image to a file first", path,
			 strerror(errno));
		return -EAGAIN;
	}
	pid = start_xl_restore(path, false);
	if (pid < 0) {
		unlink(path);
		return (int)pid;
	}
	/* Wait for xl to open the FIFO, without hanging if it exits first. */
	while (fd < 0) {
		int status;

		fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0 || errno != ENXIO)
			break;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			log_warn("xl restore exited (status 0x%x) before reading the image", status);
			unlink(path);
			return -EAGAIN;
		}
		clk_sleep_until_ns(clk_now_ns() + NSEC_PER_MSEC);
	}
	if (fd < 0) {
		rc = -errno;
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
		unlink(path);
		log_warn("cannot open the FIFO %s: %s", path, strerror(-rc));
		return -EAGAIN;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	rc = hv_xen_image_write(im, st, fd);
	close(fd);
	log_info("restore image streamed to xl: %zu pages in %llu ms", bitmap_count(&im->present),
		 (unsigned long long)((clk_now_ns() - t0) / NSEC_PER_MSEC));
	if (rc < 0)
		log_warn("streaming the image to xl failed: %s", strerror(-rc));
	rc = wait_xl(pid, path) < 0 || rc < 0 ? -EAGAIN : 0;
	unlink(path);
	return rc;
}

static const char *save_dir(void)
{
	return getenv("HA_XEN_SAVE_DIR") ? getenv("HA_XEN_SAVE_DIR") : "/tmp";
}

/* The image as an xl save file in dir (NAME: the standby's creation, see
 * write_image); its name into path. */
static int write_file(struct hv_xen_image *im, const struct hv_state *st, const char *dir,
		      const char *name, char *path, size_t len)
{
	int fd, rc;

	snprintf(path, len, "%s/ha-receive-%s-XXXXXX", dir, im->info.name);
	fd = mkstemp(path);
	if (fd < 0) {
		rc = -errno;
		log_error("cannot create the restore image in %s: %s (set HA_XEN_SAVE_DIR)", dir,
			  strerror(errno));
		return rc;
	}
	rc = write_image(im, st, fd, name);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0) {
		log_error("cannot write the restore image %s: %s", path, strerror(-rc));
		unlink(path);
	}
	return rc;
}

int hv_xen_image_keep(struct hv_xen_image *im, const struct hv_state *st, char *path,
		      size_t len)
{
	return write_file(im, st, save_dir(), NULL, path, len);
}

static int restore_file(struct hv_xen_image *im, const struct hv_state *st, const char *dir)
{
	char path[512];
	uint64_t t0 = clk_now_ns(), t1;
	int rc;
	pid_t pid;

	rc = write_file(im, st, dir, NULL, path, sizeof(path));
	if (rc < 0)
		return rc;
	t1 = clk_now_ns();
	log_info("restore image %s written: %zu pages in %llu ms; running xl restore", path,
		 bitmap_count(&im->present), (unsigned long long)((t1 - t0) / NSEC_PER_MSEC));
	pid = start_xl_restore(path, false);
	rc = pid < 0 ? (int)pid : wait_xl(pid, path);
	if (rc < 0) {
		log_error("the image stays in %s for inspection (`xl restore` reads it)", path);
		return rc;
	}
	log_info("xl restore: %s runs (%llu ms)", im->info.name,
		 (unsigned long long)((clk_now_ns() - t1) / NSEC_PER_MSEC));
	unlink(path);
	return 0;
}

int hv_xen_image_restore(struct hv_xen_image *im, const struct hv_state *st)
{
	const char *dir = save_dir();
	uint32_t config_len;
	uint64_t t0 = clk_now_ns();
	int rc;

	if (!hv_state_find(st, CKPT_REC_HA_XEN_CONFIG, &config_len) && !getenv("HA_XEN_CONFIG")) {
		log_error("the primary sent no libxl configuration for %s and HA_XEN_CONFIG is not "
			  "set: give ha-receive HA_XEN_CONFIG=FILE (the domain's xl config)",
			  im->info.name);
		return -ENOENT;
	}
	if (!getenv("HA_XEN_RESTORE_FILE")) {
		rc = restore_fifo(im, st, dir);
		if (rc == 0) {
			log_info("xl restore: %s runs (%llu ms, image streamed)", im->info.name,
				 (unsigned long long)((clk_now_ns() - t0) / NSEC_PER_MSEC));
			return 0;
		}
		if (rc != -EAGAIN)
			return rc;
		log_warn("restoring through a FIFO failed; retrying from a file");
	}
	return restore_file(im, st, dir);
}

int hv_xen_image_standby(struct hv_xen_image *im, const struct hv_state *st, const char *name)
{
	char path[512];
	uint64_t t0 = clk_now_ns();
	int rc;
	pid_t pid;

	rc = write_file(im, st, save_dir(), name, path, sizeof(path));
	if (rc < 0)
		return rc;
	pid = start_xl_restore(path, true);
	rc = pid < 0 ? (int)pid : wait_xl(pid, path);
	unlink(path);
	if (rc == 0)
		log_info("xl restore -p: %s built, paused, %zu pages allocated (%llu ms)", name,
			 bitmap_count(&im->present),
			 (unsigned long long)((clk_now_ns() - t0) / NSEC_PER_MSEC));
	return rc;
}

const uint8_t *hv_xen_image_peek(const struct hv_xen_image *im, uint64_t pfn)
{
	if (pfn >= im->info.nr_pages || !bitmap_test(&im->present, pfn))
		return NULL;
	return im->mem + pfn * CKPT_PAGE_SIZE;
}

const struct hv_info *hv_xen_image_info(const struct hv_xen_image *im)
{
	return &im->info;
}

const struct bitmap *hv_xen_image_present(const struct hv_xen_image *im)
{
	return &im->present;
}

bool hv_xl_is(const void *buf, size_t len)
{
	return len >= sizeof(XL_MAGIC) - 1 && !memcmp(buf, XL_MAGIC, sizeof(XL_MAGIC) - 1);
}

int hv_xl_head(const uint8_t *buf, size_t len, struct hv_xl_head *h, char *err, size_t errlen)
{
	struct xl_save_hdr xh;
	struct libxl_hdr lh;
	struct ckpt_rec_hdr rh;
	uint32_t clen;
	size_t off;

	if (len < sizeof(xh) || !hv_xl_is(buf, len)) {
		snprintf(err, errlen, "offset 0: not an xl save file (no xl header)");
		return -EBADMSG;
	}
	memcpy(&xh, buf, sizeof(xh));
	if (xh.byteorder != XL_BYTEORDER) {
		snprintf(err, errlen, "offset 32: xl header: byte order 0x%08x, not this host's",
			 xh.byteorder);
		return -EBADMSG;
	}
	if (!(xh.mandatory_flags & XL_FLAG_STREAMV2) ||
	    (xh.mandatory_flags & ~(XL_FLAG_STREAMV2 | XL_FLAG_JSON))) {
		snprintf(err, errlen, "offset 36: xl header: mandatory flags 0x%x (a libxl v2 "
				      "stream is 0x2, with 0x1 for a JSON configuration)",
			 xh.mandatory_flags);
		return -EBADMSG;
	}
	off = sizeof(xh);
	if (xh.optional_data_len < sizeof(clen) || xh.optional_data_len > len - off) {
		snprintf(err, errlen, "offset 44: xl header: %u octets of configuration data, "
				      "in a file of %zu",
			 xh.optional_data_len, len);
		return -EBADMSG;
	}
	memcpy(&clen, buf + off, sizeof(clen));
	if (clen > xh.optional_data_len - sizeof(clen)) {
		snprintf(err, errlen, "offset %zu: xl header: a configuration of %u octets in %u",
			 off, clen, xh.optional_data_len);
		return -EBADMSG;
	}
	h->flags = xh.mandatory_flags;
	h->config = (const char *)buf + off + sizeof(clen);
	h->config_len = clen;
	off += xh.optional_data_len;
	if (len - off < sizeof(lh) + sizeof(rh)) {
		snprintf(err, errlen, "offset %zu: the file ends before the libxl stream", off);
		return -EBADMSG;
	}
	memcpy(&lh, buf + off, sizeof(lh));
	if (be64toh(lh.ident) != LIBXL_IDENT || be32toh(lh.version) != LIBXL_VERSION) {
		snprintf(err, errlen, "offset %zu: no libxl v2 stream header (ident 0x%016llx, "
				      "version %u)",
			 off, (unsigned long long)be64toh(lh.ident), be32toh(lh.version));
		return -EBADMSG;
	}
	off += sizeof(lh);
	memcpy(&rh, buf + off, sizeof(rh));
	if (rh.type != LIBXL_REC_LIBXC_CONTEXT || rh.length) {
		snprintf(err, errlen, "offset %zu: libxl record type %u, length %u: the file "
				      "holds no libxc stream (LIBXC_CONTEXT) here",
			 off, rh.type, rh.length);
		return -EBADMSG;
	}
	h->libxc_off = off + sizeof(rh);
	return 0;
}

int hv_xl_tail(const uint8_t *buf, size_t len, size_t off, unsigned *nrecs, char *err,
	       size_t errlen)
{
	struct ckpt_rec_hdr rh;

	*nrecs = 0;
	for (;;) {
		if (off > len || len - off < sizeof(rh)) {
			snprintf(err, errlen, "offset %zu: the file ends before libxl's END record",
				 off);
			return -EBADMSG;
		}
		memcpy(&rh, buf + off, sizeof(rh));
		size_t body = (size_t)rh.length + ckpt_pad_len(rh.length);

		if (rh.type > LIBXL_REC_LAST || rh.type == LIBXL_REC_LIBXC_CONTEXT ||
		    body > len - off - sizeof(rh)) {
			snprintf(err, errlen, "offset %zu: libxl record type %u, length %u: %s", off,
				 rh.type, rh.length,
				 rh.type > LIBXL_REC_LAST	      ? "no such type"
				 : rh.type == LIBXL_REC_LIBXC_CONTEXT ? "a second libxc stream"
								      : "beyond the file's end");
			return -EBADMSG;
		}
		off += sizeof(rh) + body;
		(*nrecs)++;
		if (rh.type == LIBXL_REC_END)
			break;
	}
	if (off != len) {
		snprintf(err, errlen, "offset %zu: %zu octets after libxl's END record", off, len - off);
		return -EBADMSG;
	}
	return 0;
}
