/* The stream's record table (names, layout rules) and its reader
 * (stream.h): headers, then records validated before anything is
 * allocated or trusted; the writer is stream_write.c. */
#include "checkpoint/stream.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/io.h"
#include "common/log.h"
#include "common/version.h"

/* Per-type layout rules. fixed: body length must equal min_len. */
struct rec_desc {
	uint32_t type;
	const char *name;
	uint32_t min_len;
	uint32_t max_len;
};

static const struct rec_desc rec_table[] = {
	{CKPT_REC_END, "END", 0, 0},
	{CKPT_REC_PAGE_DATA, "PAGE_DATA", 8, CKPT_REC_LENGTH_MAX},
	{CKPT_REC_X86_PV_INFO, "X86_PV_INFO", 8, 8},
	{CKPT_REC_X86_PV_P2M_FRAMES, "X86_PV_P2M_FRAMES", 8, CKPT_REC_LENGTH_MAX},
	{CKPT_REC_X86_PV_VCPU_BASIC, "X86_PV_VCPU_BASIC", 8, CKPT_REC_LENGTH_MAX},
	{CKPT_REC_X86_PV_VCPU_EXTENDED, "X86_PV_VCPU_EXTENDED", 8, CKPT_REC_LENGTH_MAX},
	{CKPT_REC_X86_PV_VCPU_XSAVE, "X86_PV_VCPU_XSAVE", 8, CKPT_REC_LENGTH_MAX},
	{CKPT_REC_SHARED_INFO, "SHARED_INFO", 4096, 4096},
	{CKPT_REC_X86_TSC_INFO, "X86_TSC_INFO", 24, 24},
	{CKPT_REC_HVM_CONTEXT, "HVM_CONTEXT", 1, CKPT_REC_LENGTH_MAX},
	{CKPT_REC_HVM_PARAMS, "HVM_PARAMS", 8, CKPT_REC_LENGTH_MAX},
	{CKPT_REC_TOOLSTACK, "TOOLSTACK", 0, CKPT_REC_LENGTH_MAX},
	{CKPT_REC_X86_PV_VCPU_MSRS, "X86_PV_VCPU_MSRS", 8, CKPT_REC_LENGTH_MAX},
	{CKPT_REC_VERIFY, "VERIFY", 0, 0},
	{CKPT_REC_CHECKPOINT, "CHECKPOINT", 0, 0},
	{CKPT_REC_CHECKPOINT_DIRTY_PFN_LIST, "CHECKPOINT_DIRTY_PFN_LIST", 0, CKPT_REC_LENGTH_MAX},
	{CKPT_REC_STATIC_DATA_END, "STATIC_DATA_END", 0, 0},
	{CKPT_REC_X86_CPUID_POLICY, "X86_CPUID_POLICY", 0, CKPT_REC_LENGTH_MAX},
	{CKPT_REC_X86_MSR_POLICY, "X86_MSR_POLICY", 0, CKPT_REC_LENGTH_MAX},
	{CKPT_REC_HA_DOMAIN_CONFIG, "HA_DOMAIN_CONFIG", 88, 88},
	{CKPT_REC_HA_VMM_STATE, "HA_VMM_STATE", 8, CKPT_REC_LENGTH_MAX},
	{CKPT_REC_HA_PAGE_DATA_Z, "HA_PAGE_DATA_Z", 8 + 16, CKPT_REC_LENGTH_MAX},
	{CKPT_REC_HA_TRAILER, "HA_CHECKPOINT_TRAILER", 32, 32},
	{CKPT_REC_HA_DISK_WRITE, "HA_DISK_WRITE", 24, CKPT_REC_LENGTH_MAX},
	{CKPT_REC_HA_DISK_BARRIER, "HA_DISK_BARRIER", 24, 24},
	{CKPT_REC_HA_DISK_CONFIG, "HA_DISK_CONFIG", 48, 48},
	{CKPT_REC_HA_XEN_CONFIG, "HA_XEN_CONFIG", 1, 1u << 20},
	{CKPT_REC_HA_DRBD_DISK, "HA_DRBD_DISK", 72, 72},
	{CKPT_REC_HA_ACK, "HA_ACK", 16, 16},
	{CKPT_REC_HA_HEARTBEAT, "HA_HEARTBEAT", 24, 24},
	{CKPT_REC_HA_ERROR, "HA_ERROR", 8, 8 + 4096},
	{CKPT_REC_HA_LINK_TIMER, "HA_LINK_TIMER", 8, 8},
	{CKPT_REC_HA_VERIFY, "HA_VERIFY", 8, CKPT_REC_LENGTH_MAX},
	{CKPT_REC_HA_SWITCHOVER, "HA_SWITCHOVER", 16, 16},
	{CKPT_REC_HA_DISK_NEED, "HA_DISK_NEED", 40 + 8, CKPT_REC_LENGTH_MAX},
	{CKPT_REC_HA_POSTCOPY, "HA_POSTCOPY", 16 + 8, CKPT_REC_LENGTH_MAX},
	{CKPT_REC_HA_PC_REQ, "HA_PC_REQ", 8 + 8, CKPT_REC_LENGTH_MAX},
	{CKPT_REC_HA_PC_END, "HA_PC_END", 16, 16},
};

static const struct rec_desc *rec_lookup(uint32_t type)
{
	for (size_t i = 0; i < sizeof(rec_table) / sizeof(rec_table[0]); i++)
		if (rec_table[i].type == type)
			return &rec_table[i];
	return NULL;
}

const char *ckpt_rec_name(uint32_t type)
{
	const struct rec_desc *d = rec_lookup(type);

	return d ? d->name : "unknown";
}

const char *ckpt_domain_name(uint32_t type)
{
	switch (type) {
	case CKPT_DHDR_X86_PV:
		return "x86 PV";
	case CKPT_DHDR_X86_HVM:
		return "x86 HVM";
	case CKPT_DHDR_X86_PVH:
		return "x86 PVH";
	case CKPT_DHDR_HAVM:
		return "ha-vm";
	default:
		return "unknown";
	}
}

bool ckpt_pfn_has_data(uint64_t entry)
{
	return (entry >> CKPT_PFN_TYPE_SHIFT) <= CKPT_PFN_TYPE_L4TAB;
}

/* ================================ reader ================================ */

struct ckpt_reader {
	int fd;
	const struct ckpt_transport *tr; /* NULL: plain fd */
	const uint8_t *mem;
	size_t mem_len;
	size_t mem_pos;

	uint64_t offset;
	struct ckpt_stream_info info;
	bool headers_done;
	bool ended;

	uint8_t *buf; /* record body, 8-aligned */
	size_t buf_cap;

	XXH3_state_t *csum;
	uint32_t records;
	uint64_t pages;
	bool trailer_pending;
	struct ckpt_ha_trailer trailer;
	bool trailers_required;
	uint64_t last_epoch; /* UINT64_MAX: none yet */

	char err[256];
};

static int reader_alloc(struct ckpt_reader **out)
{
	struct ckpt_reader *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->csum = XXH3_createState();
	if (!r->csum) {
		free(r);
		return -ENOMEM;
	}
	XXH3_64bits_reset(r->csum);
	r->fd = -1;
	r->last_epoch = UINT64_MAX;
	*out = r;
	return 0;
}

void ckpt_reader_set_transport(struct ckpt_reader *r, const struct ckpt_transport *t)
{
	r->tr = t;
}

int ckpt_reader_new_fd(int fd, struct ckpt_reader **out)
{
	int rc = reader_alloc(out);

	if (rc == 0)
		(*out)->fd = fd;
	return rc;
}

int ckpt_reader_new_mem(const void *buf, size_t len, struct ckpt_reader **out)
{
	int rc = reader_alloc(out);

	if (rc == 0) {
		(*out)->mem = buf;
		(*out)->mem_len = len;
	}
	return rc;
}

void ckpt_reader_free(struct ckpt_reader *r)
{
	if (!r)
		return;
	XXH3_freeState(r->csum);
	free(r->buf);
	free(r);
}

const struct ckpt_stream_info *ckpt_reader_info(const struct ckpt_reader *r)
{
	return &r->info;
}

const char *ckpt_reader_error(const struct ckpt_reader *r)
{
	return r->err[0] ? r->err : "no error";
}

uint64_t ckpt_reader_offset(const struct ckpt_reader *r)
{
	return r->offset;
}

uint64_t ckpt_reader_last_epoch(const struct ckpt_reader *r)
{
	return r->last_epoch;
}

__attribute__((format(printf, 4, 5))) static int fail(struct ckpt_reader *r, int err,
						       const struct ckpt_record *rec,
						       const char *fmt, ...)
{
	va_list ap;
	int n;

	if (rec)
		n = snprintf(r->err, sizeof(r->err), "offset %llu: %s (0x%08x): ",
			     (unsigned long long)rec->offset, ckpt_rec_name(rec->type), rec->type);
	else
		n = snprintf(r->err, sizeof(r->err), "offset %llu: ",
			     (unsigned long long)r->offset);
	va_start(ap, fmt);
	vsnprintf(r->err + n, sizeof(r->err) - (size_t)n, fmt, ap);
	va_end(ap);
	return err;
}

/* Reads exactly len octets; returns len, fewer at EOF, or -errno. */
static ssize_t src_read(struct ckpt_reader *r, void *buf, size_t len)
{
	ssize_t n;

	if (r->mem) {
		size_t left = r->mem_len - r->mem_pos;

		n = (ssize_t)(len < left ? len : left);
		memcpy(buf, r->mem + r->mem_pos, (size_t)n);
		r->mem_pos += (size_t)n;
	} else if (r->tr) {
		n = r->tr->read(r->tr->priv, buf, len);
	} else {
		n = io_read_full(r->fd, buf, len);
	}
	if (n > 0)
		r->offset += (uint64_t)n;
	return n;
}

int ckpt_reader_at_eof(struct ckpt_reader *r)
{
	uint8_t b;
	ssize_t n;

	if (r->mem)
		return r->mem_pos >= r->mem_len;
	n = src_read(r, &b, 1);
	return n == 0;
}

/* Reads exactly len octets or fails naming what was being read. */
static int read_exact(struct ckpt_reader *r, void *buf, size_t len, const struct ckpt_record *rec,
		      const char *what)
{
	uint64_t start = r->offset;
	ssize_t n = src_read(r, buf, len);

	if (n < 0)
		return fail(r, (int)n, rec, "read error in %s: %s", what, strerror((int)-n));
	if ((size_t)n < len)
		return fail(r, -EPIPE, rec, "stream truncated in %s: %zu of %zu octets at %llu", what,
			    (size_t)n, len, (unsigned long long)start);
	return 0;
}

int ckpt_reader_headers(struct ckpt_reader *r, uint32_t ihdr_id)
{
	struct ckpt_image_hdr ih;
	struct ckpt_domain_hdr dh;
	uint32_t version;
	int rc;

	rc = read_exact(r, &ih, sizeof(ih), NULL, "the image header");
	if (rc < 0)
		return rc;
	if (be64toh(ih.marker) != CKPT_IHDR_MARKER)
		return fail(r, -EBADMSG, NULL,
			    "image header: bad marker 0x%016llx (not a checkpoint stream)",
			    (unsigned long long)be64toh(ih.marker));
	if (ihdr_id == 0 &&
	    (be32toh(ih.id) == CKPT_IHDR_ID_XEN || be32toh(ih.id) == CKPT_IHDR_ID_BACK))
		ihdr_id = be32toh(ih.id);
	if (be32toh(ih.id) != ihdr_id)
		return fail(r, -EBADMSG, NULL, "image header: id 0x%08x, expected 0x%08x",
			    be32toh(ih.id), ihdr_id);
	version = be32toh(ih.version);
	if (ihdr_id == CKPT_IHDR_ID_BACK && version != CKPT_IHDR_BACK_VERSION)
		return fail(r, -EBADMSG, NULL,
			    "image header: unsupported version %u: the peer's back channel is "
			    "version %u, this release (%s) speaks %u; run one release on both hosts",
			    version, version, HA_VERSION, CKPT_IHDR_BACK_VERSION);
	if (ihdr_id != CKPT_IHDR_ID_BACK &&
	    (version < CKPT_IHDR_VERSION_MIN || version > CKPT_IHDR_VERSION))
		return fail(r, -EBADMSG, NULL,
			    "image header: unsupported version %u: the stream is version %u, "
			    "this release (%s) reads %u to %u; run one release on both hosts",
			    version, version, HA_VERSION, CKPT_IHDR_VERSION_MIN, CKPT_IHDR_VERSION);
	if (be16toh(ih.options) & CKPT_IHDR_OPT_BIG_ENDIAN)
		return fail(r, -EBADMSG, NULL, "image header: big-endian guest data unsupported");
	if (be16toh(ih.options) || ih.reserved1 || ih.reserved2)
		return fail(r, -EBADMSG, NULL, "image header: reserved bits set");

	rc = read_exact(r, &dh, sizeof(dh), NULL, "the domain header");
	if (rc < 0)
		return rc;
	if (strcmp(ckpt_domain_name(dh.type), "unknown") == 0)
		return fail(r, -EBADMSG, NULL, "domain header: unknown domain type 0x%08x",
			    dh.type);
	if (dh.page_shift != CKPT_PAGE_SHIFT)
		return fail(r, -EBADMSG, NULL, "domain header: page shift %u, expected %u",
			    dh.page_shift, CKPT_PAGE_SHIFT);
	if (dh.reserved)
		return fail(r, -EBADMSG, NULL, "domain header: reserved bits set");

	r->info.ihdr_id = ihdr_id;
	r->info.version = version;
	r->info.domain_type = dh.type;
	r->info.xen_major = dh.xen_major;
	r->info.xen_minor = dh.xen_minor;
	r->headers_done = true;
	return 0;
}

static int check_pfn(struct ckpt_reader *r, const struct ckpt_record *rec, uint32_t i,
		     uint64_t e)
{
	unsigned type = (unsigned)(e >> CKPT_PFN_TYPE_SHIFT);

	if (e & CKPT_PFN_RESERVED_MASK)
		return fail(r, -EBADMSG, rec, "pfn entry %u: reserved bits set (0x%016llx)", i,
			    (unsigned long long)e);
	if (type >= 5 && type <= 8)
		return fail(r, -EBADMSG, rec, "pfn entry %u: invalid page type %u", i, type);
	return 0;
}

static int validate_page_data(struct ckpt_reader *r, struct ckpt_record *rec)
{
	const struct ckpt_page_data_hdr *h = (const void *)rec->body;
	uint32_t count = h->count;
	const uint64_t *pfns = (const uint64_t *)(rec->body + sizeof(*h));
	uint64_t need, data = 0;

	if (h->reserved)
		return fail(r, -EBADMSG, rec, "reserved field set");
	if (count == 0)
		return fail(r, -EBADMSG, rec, "count is 0");
	need = sizeof(*h) + (uint64_t)count * 8;
	if (need > rec->length)
		return fail(r, -EBADMSG, rec, "count %u needs %llu octets of pfns, length is %u",
			    count, (unsigned long long)need, rec->length);
	for (uint32_t i = 0; i < count; i++) {
		int rc = check_pfn(r, rec, i, pfns[i]);

		if (rc < 0)
			return rc;
		data += ckpt_pfn_has_data(pfns[i]);
	}
	need += data * CKPT_PAGE_SIZE;
	if (need != rec->length)
		return fail(r, -EBADMSG, rec,
			    "page count mismatch: %u entries with %llu data pages need %llu octets, "
			    "length is %u",
			    count, (unsigned long long)data, (unsigned long long)need, rec->length);
	rec->pages = (uint32_t)data;
	return 0;
}

static int validate_page_data_z(struct ckpt_reader *r, struct ckpt_record *rec)
{
	const struct ckpt_page_data_hdr *h = (const void *)rec->body;
	uint32_t count = h->count;
	const struct ckpt_page_z_desc *d = (const void *)(rec->body + sizeof(*h));
	uint64_t need, payload = 0;

	if (h->reserved)
		return fail(r, -EBADMSG, rec, "reserved field set");
	if (count == 0)
		return fail(r, -EBADMSG, rec, "count is 0");
	need = sizeof(*h) + (uint64_t)count * sizeof(*d);
	if (need > rec->length)
		return fail(r, -EBADMSG, rec,
			    "count %u needs %llu octets of descriptors, length is %u", count,
			    (unsigned long long)need, rec->length);
	for (uint32_t i = 0; i < count; i++) {
		uint64_t e = d[i].pfn;
		uint32_t enc = d[i].encoding, len = d[i].length;
		int rc = check_pfn(r, rec, i, e);

		if (rc < 0)
			return rc;
		if (!ckpt_pfn_has_data(e))
			return fail(r, -EBADMSG, rec, "page %u: type without data", i);
		if (enc > CKPT_ENC_MAX)
			return fail(r, -EBADMSG, rec, "page %u: unknown encoding %u", i, enc);
		if ((enc == CKPT_ENC_RAW && len != CKPT_PAGE_SIZE) ||
		    (enc == CKPT_ENC_ZERO && len != 0) ||
		    ((enc == CKPT_ENC_ZSTD || enc == CKPT_ENC_XOR_ZSTD) &&
		     (len == 0 || len >= CKPT_PAGE_SIZE)))
			return fail(r, -EBADMSG, rec, "page %u: payload length %u invalid for encoding %u",
				    i, len, enc);
		payload += len;
	}
	if (need + payload != rec->length)
		return fail(r, -EBADMSG, rec,
			    "page count mismatch: %u descriptors with %llu payload octets need %llu, "
			    "length is %u",
			    count, (unsigned long long)payload, (unsigned long long)(need + payload),
			    rec->length);
	rec->pages = count;
	return 0;
}

/* HA_DOMAIN_CONFIG: once, known flags, a named, non-empty domain. */
static int validate_config(struct ckpt_reader *r, struct ckpt_record *rec)
{
	const struct ckpt_ha_domain_config *c = (const void *)rec->body;

	if (r->info.have_config)
		return fail(r, -EBADMSG, rec, "configuration sent twice");
	if (c->flags & ~CKPT_CFG_KNOWN)
		return fail(r, -EBADMSG, rec, "unknown flags 0x%08x", c->flags);
	if (c->reserved[0] || c->reserved[1])
		return fail(r, -EBADMSG, rec, "reserved field set");
	if (!memchr(c->name, '\0', sizeof(c->name)))
		return fail(r, -EBADMSG, rec, "domain name not terminated");
	if (c->nr_pages == 0 || c->vcpus == 0)
		return fail(r, -EBADMSG, rec, "empty domain (%llu pages, %u vCPUs)",
			    (unsigned long long)c->nr_pages, c->vcpus);
	r->info.have_config = true;
	r->info.config = *c;
	r->trailers_required = c->flags & CKPT_CFG_TRAILERS;
	return 0;
}

/* The replicated disks' records: ranges and disk numbers in bounds. */
static int validate_disk(struct ckpt_reader *r, struct ckpt_record *rec)
{
	const uint8_t *b = rec->body;

	switch (rec->type) {
	case CKPT_REC_HA_DISK_WRITE: {
		const struct ckpt_ha_disk_write_hdr *h = (const void *)b;
		uint16_t fl = h->flags;
		uint64_t data = fl & CKPT_DISK_ZERO ? 0 : h->length;

		if (sizeof(*h) + data != rec->length)
			return fail(r, -EBADMSG, rec, "data length %u does not match record length %u",
				    h->length, rec->length);
		if (fl & ~CKPT_DISK_KNOWN)
			return fail(r, -EBADMSG, rec, "unknown flags 0x%04x", fl);
		if (h->disk >= CKPT_DISK_MAX)
			return fail(r, -EBADMSG, rec, "disk %u out of range", h->disk);
		if (h->length == 0 || h->offset + h->length < h->offset)
			return fail(r, -EBADMSG, rec, "empty or wrapping range");
		return 0;
	}
	case CKPT_REC_HA_DISK_BARRIER: {
		const struct ckpt_ha_disk_barrier *h = (const void *)b;

		if (h->reserved || h->disk >= CKPT_DISK_MAX)
			return fail(r, -EBADMSG, rec, "disk %u out of range or reserved field set",
				    h->disk);
		return 0;
	}
	case CKPT_REC_HA_DISK_CONFIG: {
		const struct ckpt_ha_disk_config *c = (const void *)b;

		if (c->reserved || c->disk >= CKPT_DISK_MAX ||
		    (c->flags & ~(CKPT_DISKCFG_FULL | CKPT_DISKCFG_NEED_MET)) || !c->size)
			return fail(r, -EBADMSG, rec, "bad disk %u: flags 0x%x, %llu octets",
				    c->disk, c->flags,
				    (unsigned long long)c->size);
		return 0;
	}
	case CKPT_REC_HA_DRBD_DISK: {
		const struct ckpt_ha_drbd_disk *d = (const void *)b;

		if (d->reserved || !memchr(d->resource, '\0', sizeof(d->resource)) || !d->resource[0])
			return fail(r, -EBADMSG, rec, "reserved field set or resource name unterminated");
		return 0;
	}
	default:
		return 0;
	}
}

/* HVM_PARAMS and HA_VERIFY: u32 count, u32 reserved, count 16-octet
 * pairs of u64. */
static int validate_pairs(struct ckpt_reader *r, struct ckpt_record *rec)
{
	const struct ckpt_hvm_params_hdr *h = (const void *)rec->body;
	uint64_t need = sizeof(*h) + (uint64_t)h->count * 16;

	_Static_assert(sizeof(struct ckpt_hvm_params_hdr) == sizeof(struct ckpt_ha_verify_hdr),
		       "the two headers share a layout");
	if (h->reserved)
		return fail(r, -EBADMSG, rec, "reserved field set");
	if (need != rec->length)
		return fail(r, -EBADMSG, rec, "count %u needs %llu octets, length is %u", h->count,
			    (unsigned long long)need, rec->length);
	return 0;
}

static int validate_body(struct ckpt_reader *r, struct ckpt_record *rec)
{
	const uint8_t *b = rec->body;

	switch (rec->type) {
	case CKPT_REC_PAGE_DATA:
		return validate_page_data(r, rec);
	case CKPT_REC_HA_PAGE_DATA_Z:
		if (!r->info.have_config || !(r->info.config.flags & CKPT_CFG_COMPRESSED))
			return fail(r, -EBADMSG, rec,
				    "compressed pages in a stream whose configuration does not "
				    "announce compression");
		return validate_page_data_z(r, rec);
	case CKPT_REC_X86_TSC_INFO: {
		const struct ckpt_tsc_info *t = (const void *)b;

		if (t->reserved)
			return fail(r, -EBADMSG, rec, "reserved field set");
		return 0;
	}
	case CKPT_REC_HVM_PARAMS:
		return validate_pairs(r, rec);
	case CKPT_REC_CHECKPOINT_DIRTY_PFN_LIST:
		if (rec->length % 8)
			return fail(r, -EBADMSG, rec, "length %u is not a multiple of 8", rec->length);
		return 0;
	case CKPT_REC_HA_DOMAIN_CONFIG:
		return validate_config(r, rec);
	case CKPT_REC_HA_DISK_WRITE:
	case CKPT_REC_HA_DISK_BARRIER:
	case CKPT_REC_HA_DISK_CONFIG:
	case CKPT_REC_HA_DRBD_DISK:
		return validate_disk(r, rec);
	case CKPT_REC_HA_XEN_CONFIG:
		if (b[rec->length - 1] != '\0')
			return fail(r, -EBADMSG, rec, "configuration text not NUL-terminated");
		return 0;
	case CKPT_REC_HA_VMM_STATE:
		if (((const struct ckpt_ha_vmm_state_hdr *)b)->reserved)
			return fail(r, -EBADMSG, rec, "reserved field set");
		return 0;
	case CKPT_REC_HA_TRAILER: {
		const struct ckpt_ha_trailer *t = (const void *)b;

		if (t->algorithm != CKPT_CSUM_XXH3_64)
			return fail(r, -EBADMSG, rec, "unknown checksum algorithm %u",
				    t->algorithm);
		return 0;
	}
	case CKPT_REC_HA_ACK: {
		const struct ckpt_ha_ack *a = (const void *)b;

		if (a->reserved || (a->flags & ~(CKPT_ACK_MEMORY | CKPT_ACK_DISK)))
			return fail(r, -EBADMSG, rec, "reserved bits set");
		return 0;
	}
	case CKPT_REC_HA_SWITCHOVER: {
		const struct ckpt_ha_switchover *h = (const void *)b;

		if (h->reserved || h->step < CKPT_SWITCH_PREPARE || h->step > CKPT_SWITCH_RUNS)
			return fail(r, -EBADMSG, rec, "unknown step %u, or reserved bits set",
				    h->step);
		return 0;
	}
	case CKPT_REC_HA_VERIFY: {
		const struct ckpt_ha_verify_hdr *h = (const void *)b;
		const uint64_t *e = (const uint64_t *)(h + 1);
		int rc = validate_pairs(r, rec);

		if (rc < 0)
			return rc;
		for (uint32_t i = 1; i < h->count; i++)
			if (e[2 * i] <= e[2 * (i - 1)])
				return fail(r, -EBADMSG, rec, "pfns not ascending at entry %u", i);
		return 0;
	}
	case CKPT_REC_HA_DISK_NEED: {
		const struct ckpt_ha_disk_need_hdr *h = (const void *)b;

		if (h->disk >= CKPT_DISK_MAX || h->chunk < 4096 || (h->chunk & (h->chunk - 1)) ||
		    h->size == 0 || h->nchunks != (h->size - 1) / h->chunk + 1 ||
		    rec->length != sizeof(*h) + (h->nchunks + 63) / 64 * 8)
			return fail(r, -EBADMSG, rec, "disk %u, chunks of %u octets, %llu chunks for "
						    "%llu octets: not a bitmap of this length",
				    h->disk, h->chunk, (unsigned long long)h->nchunks,
				    (unsigned long long)h->size);
		return 0;
	}
	case CKPT_REC_HA_POSTCOPY: {
		const struct ckpt_ha_postcopy_hdr *h = (const void *)b;
		const uint64_t *w = (const uint64_t *)(h + 1);
		uint64_t words = (h->nr_pages + 63) / 64, set = 0;

		if (h->nr_pages == 0 || h->nr_pages > CKPT_REC_LENGTH_MAX ||
		    rec->length != sizeof(*h) + words * 8)
			return fail(r, -EBADMSG, rec, "%llu pages need a %llu-octet bitmap",
				    (unsigned long long)h->nr_pages,
				    (unsigned long long)(words * 8));
		for (uint64_t i = 0; i < words; i++)
			set += (uint64_t)__builtin_popcountll(w[i]);
		if (h->nr_pages % 64 && w[words - 1] >> (h->nr_pages % 64))
			return fail(r, -EBADMSG, rec, "bits set beyond page %llu",
				    (unsigned long long)h->nr_pages);
		if (set != h->count)
			return fail(r, -EBADMSG, rec, "count %llu, but %llu bits are set",
				    (unsigned long long)h->count, (unsigned long long)set);
		return 0;
	}
	case CKPT_REC_HA_PC_REQ: {
		const struct ckpt_ha_pc_req_hdr *h = (const void *)b;

		if (h->reserved || h->count == 0 ||
		    rec->length != sizeof(*h) + (uint64_t)h->count * 8)
			return fail(r, -EBADMSG, rec, "count %u in %u octets, or reserved bits set",
				    h->count, rec->length);
		return 0;
	}
	case CKPT_REC_HA_PC_END:
		if (((const struct ckpt_ha_pc_end *)b)->reserved)
			return fail(r, -EBADMSG, rec, "reserved field set");
		return 0;
	case CKPT_REC_HA_ERROR:
		if (((const struct ckpt_ha_error_hdr *)b)->reserved)
			return fail(r, -EBADMSG, rec, "reserved field set");
		return 0;
	default:
		return 0;
	}
}

static int ensure_buf(struct ckpt_reader *r, size_t need)
{
	void *p;
	size_t cap;

	if (need <= r->buf_cap)
		return 0;
	cap = r->buf_cap ? r->buf_cap : 4096;
	while (cap < need)
		cap *= 2;
	p = realloc(r->buf, cap);
	if (!p)
		return -ENOMEM;
	r->buf = p;
	r->buf_cap = cap;
	return 0;
}

/* Skips an unknown optional record's body, feeding the checksum. */
static int skip_body(struct ckpt_reader *r, struct ckpt_record *rec, uint64_t len)
{
	uint8_t chunk[4096];

	while (len) {
		size_t n = len < sizeof(chunk) ? (size_t)len : sizeof(chunk);
		int rc = read_exact(r, chunk, n, rec, "the record body");

		if (rc < 0)
			return rc;
		XXH3_64bits_update(r->csum, chunk, n);
		len -= n;
	}
	return 0;
}

static int check_checkpoint(struct ckpt_reader *r, struct ckpt_record *rec)
{
	if (!r->trailer_pending) {
		if (r->trailers_required)
			return fail(r, -EBADMSG, rec, "checkpoint without a trailer");
		rec->epoch = r->last_epoch == UINT64_MAX ? 0 : r->last_epoch + 1;
	} else {
		rec->epoch = r->trailer.epoch;
	}
	r->last_epoch = rec->epoch;
	r->trailer_pending = false;
	XXH3_64bits_reset(r->csum);
	r->records = 0;
	r->pages = 0;
	return 0;
}

static int check_trailer(struct ckpt_reader *r, struct ckpt_record *rec)
{
	const struct ckpt_ha_trailer *t = (const void *)rec->body;
	uint64_t epoch = t->epoch;
	uint64_t want = XXH3_64bits_digest(r->csum);

	if (r->trailer_pending)
		return fail(r, -EBADMSG, rec, "two trailers without a CHECKPOINT between them");
	if (r->last_epoch != UINT64_MAX && epoch != r->last_epoch + 1)
		return fail(r, -EBADMSG, rec, "epoch %llu follows epoch %llu",
			    (unsigned long long)epoch, (unsigned long long)r->last_epoch);
	if (t->records != r->records)
		return fail(r, -EBADMSG, rec, "epoch %llu: %u records announced, %u received",
			    (unsigned long long)epoch, t->records, r->records);
	if (t->pages != r->pages)
		return fail(r, -EBADMSG, rec, "epoch %llu: %llu pages announced, %llu received",
			    (unsigned long long)epoch, (unsigned long long)t->pages,
			    (unsigned long long)r->pages);
	if (t->checksum != want)
		return fail(r, -EBADMSG, rec,
			    "epoch %llu: checksum mismatch (trailer 0x%016llx, data 0x%016llx): "
			    "the checkpoint was corrupted in transit",
			    (unsigned long long)epoch, (unsigned long long)t->checksum,
			    (unsigned long long)want);
	rec->epoch = epoch;
	r->trailer = *t;
	r->trailer_pending = true;
	return 0;
}

int ckpt_reader_next(struct ckpt_reader *r, struct ckpt_record *rec)
{
	struct ckpt_rec_hdr hdr;
	const struct rec_desc *d;
	uint32_t pad;
	ssize_t n;
	int rc;

	if (!r->headers_done)
		return fail(r, -EINVAL, NULL, "headers not read yet");
	if (r->ended)
		return fail(r, -EBADMSG, NULL, "read past the END record");
again:
	memset(rec, 0, sizeof(*rec));
	rec->offset = r->offset;
	n = src_read(r, &hdr, sizeof(hdr));
	if (n < 0)
		return fail(r, (int)n, NULL, "read error: %s", strerror((int)-n));
	if (n == 0)
		return fail(r, -ENODATA, NULL,
			    "stream ends without an END record (the sender stopped or the link broke)");
	if ((size_t)n < sizeof(hdr))
		return fail(r, -EPIPE, NULL, "stream truncated in a record header");
	rec->type = hdr.type;
	rec->length = hdr.length;

	if (rec->length > CKPT_REC_LENGTH_MAX)
		return fail(r, -EBADMSG, rec, "length %u over the %u-octet cap", rec->length,
			    CKPT_REC_LENGTH_MAX);
	d = rec_lookup(rec->type);
	if (!d) {
		if (!(rec->type & CKPT_REC_OPTIONAL))
			return fail(r, -EBADMSG, rec, "unknown mandatory record");
		if (r->trailer_pending)
			return fail(r, -EBADMSG, rec, "record between a trailer and its CHECKPOINT");
		log_info("offset %llu: skipping unknown optional record 0x%08x (%u octets)",
			 (unsigned long long)rec->offset, rec->type, rec->length);
		XXH3_64bits_update(r->csum, &hdr, sizeof(hdr));
		r->records++;
		rc = skip_body(r, rec, (uint64_t)rec->length + ckpt_pad_len(rec->length));
		if (rc < 0)
			return rc;
		goto again;
	}
	if (rec->length < d->min_len || rec->length > d->max_len)
		return fail(r, -EBADMSG, rec, "length %u outside %u..%u", rec->length, d->min_len,
			    d->max_len);

	pad = ckpt_pad_len(rec->length);
	rc = ensure_buf(r, (size_t)rec->length + pad + 1);
	if (rc < 0)
		return fail(r, rc, rec, "cannot allocate %u octets", rec->length);
	rc = read_exact(r, r->buf, (size_t)rec->length + pad, rec, "the record body");
	if (rc < 0)
		return rc;
	for (uint32_t i = 0; i < pad; i++)
		if (r->buf[rec->length + i])
			return fail(r, -EBADMSG, rec, "non-zero padding");
	rec->body = r->buf;

	rc = validate_body(r, rec);
	if (rc < 0)
		return rc;

	switch (rec->type) {
	case CKPT_REC_HA_HEARTBEAT:
	case CKPT_REC_HA_LINK_TIMER:
		return 0; /* outside checkpoints */
	case CKPT_REC_HA_TRAILER:
		return check_trailer(r, rec);
	case CKPT_REC_CHECKPOINT:
		return check_checkpoint(r, rec);
	case CKPT_REC_END:
		if (r->trailer_pending)
			return fail(r, -EBADMSG, rec, "END between a trailer and its CHECKPOINT");
		r->ended = true;
		return 0;
	default:
		break;
	}
	if (r->trailer_pending)
		return fail(r, -EBADMSG, rec, "record between a trailer and its CHECKPOINT");
	XXH3_64bits_update(r->csum, &hdr, sizeof(hdr));
	XXH3_64bits_update(r->csum, r->buf, (size_t)rec->length + pad);
	r->records++;
	r->pages += rec->pages;
	return 0;
}

int ckpt_pages_view(const struct ckpt_record *rec, struct ckpt_pages_view *v)
{
	const struct ckpt_page_data_hdr *h = (const void *)rec->body;

	memset(v, 0, sizeof(*v));
	if (rec->type == CKPT_REC_PAGE_DATA) {
		v->count = h->count;
		v->pfns = (const uint64_t *)(rec->body + sizeof(*h));
		v->data = rec->body + sizeof(*h) + (size_t)v->count * 8;
		return 0;
	}
	if (rec->type == CKPT_REC_HA_PAGE_DATA_Z) {
		v->count = h->count;
		v->descs = (const struct ckpt_page_z_desc *)(rec->body + sizeof(*h));
		v->data = rec->body + sizeof(*h) + (size_t)v->count * sizeof(*v->descs);
		return 0;
	}
	return -EINVAL;
}

void ckpt_page_iter_init(struct ckpt_page_iter *it, const struct ckpt_pages_view *v)
{
	it->v = v;
	it->next = 0;
	it->payload = v->data;
}

bool ckpt_page_iter_next(struct ckpt_page_iter *it, struct ckpt_page *pg)
{
	const struct ckpt_pages_view *v = it->v;

	while (it->next < v->count) {
		uint32_t i = it->next++;
		uint64_t e = (v->descs ? v->descs[i].pfn : v->pfns[i]);

		if (!ckpt_pfn_has_data(e))
			continue;
		pg->pfn = e & CKPT_PFN_MASK;
		pg->encoding = v->descs ? v->descs[i].encoding : CKPT_ENC_RAW;
		pg->length = v->descs ? v->descs[i].length : CKPT_PAGE_SIZE;
		pg->payload = it->payload;
		pg->index = i;
		it->payload += pg->length;
		return true;
	}
	return false;
}
