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
	free(im);
}

uint8_t *hv_xen_image_page(struct hv_xen_image *im, uint64_t pfn)
{
	if (pfn >= im->info.nr_pages)
		return NULL;
	bitmap_set(&im->present, pfn);
	return im->mem + pfn * CKPT_PAGE_SIZE;
}

static const void *find_rec(const struct hv_state *st, uint32_t type, uint32_t *len)
{
	for (uint32_t i = 0; i < st->nrecs; i++) {
		if (st->recs[i].type == type) {
			*len = st->recs[i].len;
			return st->buf + st->recs[i].off;
		}
	}
	return NULL;
}

/* The first string value of key (with its quotes, e.g. "\"pdev_path\"")
 * in a libxl JSON configuration: its opening quote at *v and its closing
 * quote at *q. False when there is none. */
static bool find_string(const char *json, size_t len, const char *key, const char **v,
			const char **q)
{
	const char *end = json + len, *p = json;
	size_t klen = strlen(key);

	while (p + klen <= end && memcmp(p, key, klen))
		p++;
	if (p + klen > end)
		return false;
	p += klen;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ':'))
		p++;
	if (p >= end || *p != '"')
		return false;
	*v = p;
	for (p++; p < end && *p != '"'; p++)
		if (*p == '\\')
			p++;
	*q = p;
	return p < end;
}

/* The first disk's "pdev_path" value. */
static bool find_pdev_path(const char *json, size_t len, const char **v, const char **q)
{
	return find_string(json, len, "\"pdev_path\"", v, q);
}

static int copy_string(const char *v, const char *q, char *out, size_t outlen)
{
	size_t n = 0;

	for (const char *p = v + 1; p < q; p++) {
		if (*p == '\\')
			p++; /* \" \\ \/: the character itself (paths need no others) */
		if (n + 1 >= outlen) {
			if (outlen)
				out[0] = '\0';
			return -ENAMETOOLONG;
		}
		out[n++] = *p;
	}
	out[n] = '\0';
	return 0;
}

int hv_xen_config_disk(const char *json, size_t len, char *out, size_t outlen)
{
	const char *v, *q;

	if (outlen)
		out[0] = '\0';
	if (!find_pdev_path(json, len, &v, &q))
		return -ENOENT;
	return copy_string(v, q, out, outlen);
}

int hv_xen_config_string(const char *json, size_t len, const char *key, char *out,
			 size_t outlen)
{
	char quoted[64];
	const char *v, *q;

	if (outlen)
		out[0] = '\0';
	if ((size_t)snprintf(quoted, sizeof(quoted), "\"%s\"", key) >= sizeof(quoted))
		return -ENAMETOOLONG;
	if (!find_string(json, len, quoted, &v, &q))
		return -ENOENT;
	return copy_string(v, q, out, outlen);
}

/* The configuration with its first disk's "pdev_path" set to disk (the
 * device that holds the disk on this host, e.g. a promoted DRBD resource
 * with another minor than on the primary). NULL when the configuration
 * names no disk (the caller uses it as it is) or on ENOMEM. */
static char *config_with_disk(const char *json, uint32_t len, const char *disk, uint32_t *outlen)
{
	const char *end = json + len, *v, *q;
	size_t n;
	char *out;

	if (!find_pdev_path(json, len, &v, &q))
		return NULL;
	out = malloc(len + 2 * strlen(disk) + 3);
	if (!out)
		return NULL;
	n = (size_t)(v - json);
	memcpy(out, json, n);
	out[n++] = '"';
	for (const char *d = disk; *d; d++) {
		if (*d == '"' || *d == '\\')
			out[n++] = '\\';
		out[n++] = *d;
	}
	out[n++] = '"';
	memcpy(out + n, q + 1, (size_t)(end - q - 1));
	n += (size_t)(end - q - 1);
	*outlen = (uint32_t)n;
	return out;
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

int hv_xen_image_write(struct hv_xen_image *im, const struct hv_state *st, int fd)
{
	static const uint32_t state_types[] = {CKPT_REC_X86_TSC_INFO, CKPT_REC_HVM_CONTEXT,
					       CKPT_REC_HVM_PARAMS};
	struct ckpt_rec_hdr end = {.type = LIBXL_REC_END};
	uint64_t pfns[PAGES_PER_RECORD];
	const void *pages[PAGES_PER_RECORD];
	struct ckpt_writer *w = NULL;
	const void *config;
	char *local = NULL;
	uint32_t config_len = 0, n = 0, len;
	int rc;

	if (!find_rec(st, CKPT_REC_HVM_CONTEXT, &len)) {
		log_error("the committed checkpoint has no HVM_CONTEXT record: nothing to restore");
		return -EBADMSG;
	}
	config = find_rec(st, CKPT_REC_HA_XEN_CONFIG, &config_len);
	if (config && im->info.disk[0]) {
		local = config_with_disk(config, config_len, im->info.disk, &config_len);
		if (local)
			config = local;
		else
			log_warn("the domain's configuration names no disk: %s is not attached to "
				 "it", im->info.disk);
	}
	rc = write_xl_header(fd, config, config ? config_len : 0);
	if (rc == 0)
		rc = ckpt_writer_new(fd, &w);
	if (rc < 0)
		goto out;
	ckpt_writer_set_trailers(w, false);
	rc = ckpt_writer_headers(w, CKPT_IHDR_ID_XEN, CKPT_DHDR_X86_HVM, im->info.xen_major,
				 im->info.xen_minor);
	if (rc == 0)
		rc = ckpt_writer_record(w, CKPT_REC_STATIC_DATA_END, NULL, 0);
	for (size_t b = bitmap_next_set(&im->present, 0); rc == 0 && b < im->present.nbits;
	     b = bitmap_next_set(&im->present, b + 1)) {
		pfns[n] = b;
		pages[n] = im->mem + b * CKPT_PAGE_SIZE;
		if (++n == PAGES_PER_RECORD) {
			rc = ckpt_writer_page_data(w, pfns, pages, n);
			n = 0;
		}
	}
	if (rc == 0 && n)
		rc = ckpt_writer_page_data(w, pfns, pages, n);
	for (size_t t = 0; rc == 0 && t < sizeof(state_types) / sizeof(state_types[0]); t++) {
		const void *body = find_rec(st, state_types[t], &len);
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

/* Starts `xl restore [CONFIG] FILE`; xl exits once the domain runs. */
static pid_t start_xl_restore(const char *file)
{
	const char *xl = getenv("HA_XEN_XL") ? getenv("HA_XEN_XL") : "xl";
	const char *cfg = getenv("HA_XEN_CONFIG");
	char *argv[5];
	int argc = 0;
	pid_t pid;

	argv[argc++] = (char *)xl;
	argv[argc++] = (char *)"restore";
	if (cfg && *cfg)
		argv[argc++] = (char *)cfg;
	argv[argc++] = (char *)file;
	argv[argc] = NULL;
	pid = fork();
	if (pid == 0) {
		service_child_signals();
		signal(SIGPIPE, SIG_DFL);
		execvp(xl, argv);
		fprintf(stderr, "cannot run %s: %s\n", xl, strerror(errno));
		_exit(127);
	}
	return pid < 0 ? -errno : pid;
}

static int wait_xl(pid_t pid, const char *file)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		log_error("`xl restore %s` failed (status 0x%x); its messages are above", file,
			  status);
		return -EIO;
	}
	return 0;
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
	pid = start_xl_restore(path);
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

/* The image as an xl save file in dir; its name into path. */
static int write_file(struct hv_xen_image *im, const struct hv_state *st, const char *dir,
		      char *path, size_t len)
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
	rc = hv_xen_image_write(im, st, fd);
	close(fd);
	if (rc < 0) {
		log_error("cannot write the restore image %s: %s", path, strerror(-rc));
		unlink(path);
	}
	return rc;
}

int hv_xen_image_keep(struct hv_xen_image *im, const struct hv_state *st, char *path,
		      size_t len)
{
	return write_file(im, st, save_dir(), path, len);
}

static int restore_file(struct hv_xen_image *im, const struct hv_state *st, const char *dir)
{
	char path[512];
	uint64_t t0 = clk_now_ns(), t1;
	int rc;
	pid_t pid;

	rc = write_file(im, st, dir, path, sizeof(path));
	if (rc < 0)
		return rc;
	t1 = clk_now_ns();
	log_info("restore image %s written: %zu pages in %llu ms; running xl restore", path,
		 bitmap_count(&im->present), (unsigned long long)((t1 - t0) / NSEC_PER_MSEC));
	pid = start_xl_restore(path);
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

	if (!find_rec(st, CKPT_REC_HA_XEN_CONFIG, &config_len) && !getenv("HA_XEN_CONFIG")) {
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
