/* ha-stream: validate and pretty-print a saved checkpoint stream, or an
 * xl save file (ha-save on Xen).
 *
 *   ha-stream verify FILE|-   exit 0 if valid, 1 if not (offset and record named)
 *   ha-stream dump FILE|-     records, epochs, page counts, compression ratio
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/codec.h"
#include "checkpoint/stream.h"
#include "common/log.h"
#include "common/version.h"
#include "hv/xen.h"

struct walk {
	bool verbose;
	struct ckpt_decoder *dec;
	uint8_t *image; /* guest memory, for decoding deltas; NULL without a config */
	size_t image_pages;

	uint64_t records, checkpoints, pages, raw_bytes, wire_bytes;
	uint64_t ckpt_pages, ckpt_wire;
	char err[320];
};

static void usage(FILE *f)
{
	fprintf(f, "usage: ha-stream verify FILE|-\n"
		   "       ha-stream dump FILE|-\n"
		   "Validates (verify) or prints (dump) a checkpoint stream saved with\n"
		   "ha-save or ha-protect --save, or an xl save file (ha-save on Xen;\n"
		   "given as FILE, not on standard input). '-' reads standard input.\n"
		   "verify exits 0 when the file is valid and 1 when it is not, naming\n"
		   "the offset and record.\n");
}

static int map_image(struct walk *w, const struct ckpt_stream_info *info)
{
	size_t len;

	if (!info->have_config || w->image)
		return 0;
	w->image_pages = info->config.nr_pages;
	if (w->image_pages > (SIZE_MAX >> CKPT_PAGE_SHIFT))
		return -E2BIG;
	len = w->image_pages << CKPT_PAGE_SHIFT;
	/* Sparse: only pages the stream touches cost memory. */
	w->image = mmap(NULL, len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (w->image == MAP_FAILED) {
		w->image = NULL;
		return -errno;
	}
	return 0;
}

/* Decodes and applies every page, as a receiver would. */
static int check_pages(struct walk *w, const struct ckpt_record *rec)
{
	struct ckpt_pages_view v;
	struct ckpt_page_iter it;
	struct ckpt_page pg;

	ckpt_pages_view(rec, &v);
	ckpt_page_iter_init(&it, &v);
	while (ckpt_page_iter_next(&it, &pg)) {
		if (w->image && pg.pfn >= w->image_pages) {
			snprintf(w->err, sizeof(w->err),
				 "offset %llu: %s: page %u: pfn 0x%llx beyond the guest's %zu pages",
				 (unsigned long long)rec->offset, ckpt_rec_name(rec->type), pg.index,
				 (unsigned long long)pg.pfn, w->image_pages);
			return -EBADMSG;
		}
		if (w->image) {
			uint8_t *page = w->image + (pg.pfn << CKPT_PAGE_SHIFT);

			if (ckpt_decode_page(w->dec, pg.encoding, pg.payload, pg.length, page,
					     page) < 0) {
				snprintf(w->err, sizeof(w->err),
					 "offset %llu: %s: page %u (pfn 0x%llx): corrupt compressed "
					 "data (encoding %u, %u octets)",
					 (unsigned long long)rec->offset, ckpt_rec_name(rec->type),
					 pg.index, (unsigned long long)pg.pfn, pg.encoding, pg.length);
				return -EBADMSG;
			}
		}
		w->pages++;
		w->ckpt_pages++;
		w->raw_bytes += CKPT_PAGE_SIZE;
	}
	w->wire_bytes += rec->length;
	w->ckpt_wire += rec->length;
	return 0;
}

static void print_record(const struct ckpt_record *rec)
{
	const uint8_t *b = rec->body;

	printf("%12llu  %-26s %9u", (unsigned long long)rec->offset, ckpt_rec_name(rec->type),
	       rec->length);
	switch (rec->type) {
	case CKPT_REC_PAGE_DATA:
	case CKPT_REC_HA_PAGE_DATA_Z:
		printf("  pages %u", rec->pages);
		break;
	case CKPT_REC_HA_TRAILER:
	case CKPT_REC_CHECKPOINT:
		printf("  epoch %llu", (unsigned long long)rec->epoch);
		break;
	case CKPT_REC_HA_ACK: {
		const struct ckpt_ha_ack *a = (const void *)b;
		printf("  epoch %llu%s%s", (unsigned long long)a->epoch,
		       a->flags & CKPT_ACK_MEMORY ? " memory" : "",
		       a->flags & CKPT_ACK_DISK ? " disk" : "");
		break;
	}
	case CKPT_REC_HA_SWITCHOVER: {
		static const char *const steps[] = {"?", "prepare", "go", "ready", "runs"};
		const struct ckpt_ha_switchover *h = (const void *)b;

		printf("  epoch %llu %s", (unsigned long long)h->epoch,
		       steps[h->step <= CKPT_SWITCH_RUNS ? h->step : 0]);
		break;
	}
	case CKPT_REC_HA_HEARTBEAT: {
		const struct ckpt_ha_heartbeat *h = (const void *)b;
		printf("  seq %llu committed %lld", (unsigned long long)h->seq,
		       (long long)h->committed_epoch);
		break;
	}
	case CKPT_REC_HA_LINK_TIMER: {
		const struct ckpt_ha_link_timer *t = (const void *)b;
		printf("  down timer %u ms", t->down_ms);
		break;
	}
	case CKPT_REC_HA_DOMAIN_CONFIG: {
		const struct ckpt_ha_domain_config *c = (const void *)b;
		printf("  name %s, %llu pages, %u vCPUs, flags 0x%x", c->name,
		       (unsigned long long)c->nr_pages, c->vcpus, c->flags);
		break;
	}
	case CKPT_REC_HA_DISK_WRITE: {
		const struct ckpt_ha_disk_write_hdr *h = (const void *)b;
		printf("  disk %u epoch %llu offset %llu length %u%s%s%s", h->disk,
		       (unsigned long long)h->epoch, (unsigned long long)h->offset, h->length,
		       h->flags & CKPT_DISK_FUA ? " fua" : "", h->flags & CKPT_DISK_ZERO ? " zero" : "",
		       h->flags & CKPT_DISK_SYNC ? " sync" : "");
		break;
	}
	case CKPT_REC_HA_DISK_BARRIER: {
		const struct ckpt_ha_disk_barrier *h = (const void *)b;
		printf("  disk %u epoch %llu writes %llu", h->disk, (unsigned long long)h->epoch,
		       (unsigned long long)h->writes);
		break;
	}
	case CKPT_REC_HA_DISK_CONFIG: {
		const struct ckpt_ha_disk_config *c = (const void *)b;
		printf("  disk %u size %llu %s sync %llu octets", c->disk,
		       (unsigned long long)c->size, c->flags & CKPT_DISKCFG_FULL ? "full" : "incremental",
		       (unsigned long long)c->sync_bytes);
		break;
	}
	case CKPT_REC_HA_DISK_NEED: {
		const struct ckpt_ha_disk_need_hdr *n = (const void *)b;
		const uint64_t *w = (const uint64_t *)(n + 1);
		unsigned long long set = 0;

		for (uint64_t i = 0; i < (n->nchunks + 63) / 64; i++)
			set += (unsigned long long)__builtin_popcountll(w[i]);
		printf("  disk %u: %llu of %llu chunks of %u KiB", n->disk, set,
		       (unsigned long long)n->nchunks, n->chunk >> 10);
		break;
	}
	case CKPT_REC_HA_POSTCOPY: {
		const struct ckpt_ha_postcopy_hdr *h = (const void *)b;
		printf("  %llu of %llu pages left out", (unsigned long long)h->count,
		       (unsigned long long)h->nr_pages);
		break;
	}
	case CKPT_REC_HA_PC_REQ:
		printf("  %u pages", ((const struct ckpt_ha_pc_req_hdr *)b)->count);
		break;
	case CKPT_REC_HA_PC_END:
		printf("  %llu pages", (unsigned long long)((const struct ckpt_ha_pc_end *)b)->pages);
		break;
	case CKPT_REC_HA_DRBD_DISK: {
		const struct ckpt_ha_drbd_disk *d = (const void *)b;
		printf("  DRBD %s, minor %u", d->resource, d->minor);
		break;
	}
	case CKPT_REC_HA_ERROR: {
		const struct ckpt_ha_error_hdr *h = (const void *)b;
		printf("  code %u: %.*s", h->code, (int)(rec->length - sizeof(*h)),
		       (const char *)(b + sizeof(*h)));
		break;
	}
	default:
		break;
	}
	printf("\n");
}

/* Walks one stream to its END; TO_EOF: nothing may follow it. */
static int walk_stream(struct walk *w, struct ckpt_reader *r, bool to_eof)
{
	struct ckpt_record rec;
	const struct ckpt_stream_info *info;
	int rc;

	rc = ckpt_reader_headers(r, 0);
	if (rc < 0)
		goto bad;
	info = ckpt_reader_info(r);
	if (w->verbose)
		printf("stream: %s, version %u, domain %s (0x%08x), Xen %u.%u\n",
		       info->ihdr_id == CKPT_IHDR_ID_BACK ? "back channel" : "checkpoint stream",
		       info->version, ckpt_domain_name(info->domain_type), info->domain_type,
		       info->xen_major, info->xen_minor);
	for (;;) {
		rc = ckpt_reader_next(r, &rec);
		if (rc < 0)
			goto bad;
		w->records++;
		if (w->verbose)
			print_record(&rec);
		if (rec.type == CKPT_REC_HA_DOMAIN_CONFIG) {
			rc = map_image(w, ckpt_reader_info(r));
			if (rc < 0) {
				snprintf(w->err, sizeof(w->err), "cannot map the guest image: %s",
					 strerror(-rc));
				return rc;
			}
		}
		if (rec.type == CKPT_REC_PAGE_DATA || rec.type == CKPT_REC_HA_PAGE_DATA_Z) {
			rc = check_pages(w, &rec);
			if (rc < 0)
				return rc;
		}
		if (rec.type == CKPT_REC_CHECKPOINT) {
			w->checkpoints++;
			if (w->verbose)
				printf("              -- checkpoint epoch %llu: %llu pages, %llu "
				       "octets of page records (%.3f of raw)\n",
				       (unsigned long long)rec.epoch,
				       (unsigned long long)w->ckpt_pages,
				       (unsigned long long)w->ckpt_wire,
				       w->ckpt_pages ? (double)w->ckpt_wire /
							       (double)(w->ckpt_pages * CKPT_PAGE_SIZE)
						     : 0.0);
			w->ckpt_pages = w->ckpt_wire = 0;
		}
		if (rec.type == CKPT_REC_END)
			break;
	}
	if (to_eof && !ckpt_reader_at_eof(r)) {
		snprintf(w->err, sizeof(w->err), "offset %llu: data after the END record",
			 (unsigned long long)ckpt_reader_offset(r) - 1);
		return -EBADMSG;
	}
	return 0;
bad:
	snprintf(w->err, sizeof(w->err), "%s", ckpt_reader_error(r));
	return rc;
}

/* An xl save file (ha-save on Xen, ha-receive --save-file, xl save): its
 * framing (hv_xl_head, hv_xl_tail) around the libxc stream, which is
 * walked as a stream of ours is. */
static int walk_xl(struct walk *w, const char *path, const uint8_t *buf, size_t len)
{
	struct ckpt_reader *r = NULL;
	struct hv_xl_head h;
	unsigned tail = 0;
	int rc;

	rc = hv_xl_head(buf, len, &h, w->err, sizeof(w->err));
	if (rc < 0)
		return rc;
	if (w->verbose)
		printf("xl save file: flags 0x%x, a %s configuration of %u octets; libxc stream at "
		       "offset %zu\n",
		       h.flags, h.flags & 1 ? "JSON" : "native", h.config_len, h.libxc_off);
	rc = ckpt_reader_new_mem(buf + h.libxc_off, len - h.libxc_off, &r);
	if (rc < 0) {
		snprintf(w->err, sizeof(w->err), "out of memory");
		return rc;
	}
	rc = walk_stream(w, r, false);
	if (rc < 0) {
		char inner[sizeof(w->err)];

		snprintf(inner, sizeof(inner), "%s", w->err);
		snprintf(w->err, sizeof(w->err), "the libxc stream at offset %zu: %.250s", h.libxc_off,
			 inner);
	} else {
		rc = hv_xl_tail(buf, len, h.libxc_off + ckpt_reader_offset(r), &tail, w->err,
				sizeof(w->err));
	}
	ckpt_reader_free(r);
	if (rc == 0)
		printf("%s: valid xl save file: configuration %u octets; libxc stream of %llu "
		       "records, %llu pages; %u libxl records after it\n",
		       path, h.config_len, (unsigned long long)w->records,
		       (unsigned long long)w->pages, tail);
	return rc;
}

/* A regular file that starts like an xl save file, mapped: 0 with *buf
 * and *len set, 1 if it is anything else (read as a stream of ours), or
 * -errno. */
static int map_xl(int fd, uint8_t **buf, size_t *len)
{
	char head[64];
	struct stat st;
	ssize_t n;
	void *m;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size == 0)
		return 1;
	n = pread(fd, head, sizeof(head), 0);
	if (n < 0)
		return -errno;
	if (!hv_xl_is(head, (size_t)n))
		return 1;
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	*buf = m;
	*len = (size_t)st.st_size;
	return 0;
}

int main(int argc, char **argv)
{
	struct walk w = {0};
	struct ckpt_reader *r = NULL;
	const char *path;
	int fd, rc;

	if (version_arg(argc, argv, "ha-stream"))
		return 0;

	log_init(argv[0]);
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return 0;
	}
	if (argc != 3 || (strcmp(argv[1], "verify") && strcmp(argv[1], "dump"))) {
		usage(stderr);
		return 2;
	}
	w.verbose = !strcmp(argv[1], "dump");
	path = argv[2];
	fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
	if (fd < 0) {
		fprintf(stderr, "ha-stream: cannot open %s: %s\n", path, strerror(errno));
		return 2;
	}
	uint8_t *xl = NULL;
	size_t xl_len = 0;

	rc = fd == STDIN_FILENO ? 1 : map_xl(fd, &xl, &xl_len);
	if (rc < 0) {
		fprintf(stderr, "ha-stream: cannot read %s: %s\n", path, strerror(-rc));
		return 2;
	}
	if (ckpt_decoder_new(&w.dec) < 0 || (!xl && ckpt_reader_new_fd(fd, &r) < 0)) {
		fprintf(stderr, "ha-stream: out of memory\n");
		return 2;
	}
	rc = xl ? walk_xl(&w, path, xl, xl_len) : walk_stream(&w, r, true);
	if (rc < 0) {
		fprintf(stderr, "ha-stream: %s: invalid: %s\n", path, w.err);
	} else if (!xl) {
		printf("%s: valid: %llu records, %llu checkpoints, %llu pages, page records "
		       "%llu octets for %llu raw (ratio %.3f)\n",
		       path, (unsigned long long)w.records, (unsigned long long)w.checkpoints,
		       (unsigned long long)w.pages, (unsigned long long)w.wire_bytes,
		       (unsigned long long)w.raw_bytes,
		       w.raw_bytes ? (double)w.wire_bytes / (double)w.raw_bytes : 0.0);
	}
	if (w.image)
		munmap(w.image, w.image_pages << CKPT_PAGE_SHIFT);
	if (xl)
		munmap(xl, xl_len);
	ckpt_decoder_free(w.dec);
	ckpt_reader_free(r);
	if (fd != STDIN_FILENO)
		close(fd);
	return rc < 0 ? 1 : 0;
}
