/* Checkpoint stream writer and reader (format: docs/stream-format.md).
 *
 * The writer frames records around caller-owned iovecs, so staged pages go
 * to the socket without another copy, and keeps the running checksum that
 * the checkpoint trailer carries. The reader trusts nothing: it validates
 * headers, lengths, padding, per-type layouts, checkpoint trailers and
 * ordering before handing a record out, and names the offset and record in
 * every error (ckpt_reader_error()).
 *
 * Functions return 0 or -errno. Reader errors: -EBADMSG malformed stream,
 * -ENODATA end of input at a record boundary without END, -EPIPE end of
 * input inside a header or record, -ENOMEM, or the read error.
 */
#ifndef HA_CHECKPOINT_STREAM_H
#define HA_CHECKPOINT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "checkpoint/stream_format.h"

/* Name of a record type ("PAGE_DATA"), or "unknown". */
const char *ckpt_rec_name(uint32_t type);

/* Padding after a record body of LENGTH octets, to CKPT_REC_ALIGN. */
static inline uint32_t ckpt_pad_len(uint32_t length)
{
	return (CKPT_REC_ALIGN - length % CKPT_REC_ALIGN) % CKPT_REC_ALIGN;
}
/* Name of a domain type ("x86 HVM", "ha-vm"), or "unknown". */
const char *ckpt_domain_name(uint32_t type);

/* A byte transport other than a plain file descriptor (the replication
 * link's TLS session). Both calls keep io.h's semantics: writev writes
 * everything or fails with -errno; read fills len octets, returns fewer
 * only at end of input, or -errno. */
struct ckpt_transport {
	int (*writev)(void *priv, const struct iovec *iov, int cnt);
	ssize_t (*read)(void *priv, void *buf, size_t len);
	void *priv;
};

/* ---- writer ---- */

struct ckpt_writer;

/* Writes to fd (not owned). Trailers are on by default. */
int ckpt_writer_new(int fd, struct ckpt_writer **out);
void ckpt_writer_free(struct ckpt_writer *w);
/* Image header (id CKPT_IHDR_ID_XEN or CKPT_IHDR_ID_BACK) and domain header. */
int ckpt_writer_headers(struct ckpt_writer *w, uint32_t ihdr_id, uint32_t domain_type,
			uint32_t xen_major, uint32_t xen_minor);
/* Also writes everything to fd (best effort: a failure there is logged and
 * ends the copy, never the stream). -1 stops. */
void ckpt_writer_set_tee(struct ckpt_writer *w, int fd);
/* Writes through t (not copied, must outlive the writer) instead of fd. */
void ckpt_writer_set_transport(struct ckpt_writer *w, const struct ckpt_transport *t);
/* Whether ckpt_writer_checkpoint() precedes CHECKPOINT with a trailer. */
void ckpt_writer_set_trailers(struct ckpt_writer *w, bool on);
/* Any record; the body is the concatenation of iov. Page records must go
 * through ckpt_writer_pages() so the trailer can count their pages. */
int ckpt_writer_record(struct ckpt_writer *w, uint32_t type, const struct iovec *iov, int iovcnt);
/* A PAGE_DATA or HA_PAGE_DATA_Z record carrying npages data pages. */
int ckpt_writer_pages(struct ckpt_writer *w, uint32_t type, const struct iovec *iov, int iovcnt,
		      uint32_t npages);
/* A Xen PAGE_DATA record of normal pages: pfns[i] with pages[i] (not copied). */
int ckpt_writer_page_data(struct ckpt_writer *w, const uint64_t *pfns, const void *const *pages,
			  uint32_t count);
/* Ends a checkpoint: HA_CHECKPOINT_TRAILER(epoch) if on, then CHECKPOINT. */
int ckpt_writer_checkpoint(struct ckpt_writer *w, uint64_t epoch);
int ckpt_writer_end(struct ckpt_writer *w);
/* Octets written so far. */
uint64_t ckpt_writer_offset(const struct ckpt_writer *w);

/* ---- reader ---- */

struct ckpt_reader;

struct ckpt_stream_info {
	uint32_t ihdr_id;
	uint32_t version;
	uint32_t domain_type;
	uint32_t xen_major;
	uint32_t xen_minor;
	bool have_config;
	struct ckpt_ha_domain_config config;
};

struct ckpt_record {
	uint32_t type;
	uint32_t length;
	const uint8_t *body; /* valid until the next ckpt_reader_next(); 8-aligned */
	uint64_t offset;     /* of the record header in the stream */
	uint32_t pages;      /* data pages, for PAGE_DATA / HA_PAGE_DATA_Z */
	uint64_t epoch;      /* for HA_CHECKPOINT_TRAILER and CHECKPOINT (when trailed) */
};

/* Reads from fd (not owned), or from a memory buffer (not copied). */
int ckpt_reader_new_fd(int fd, struct ckpt_reader **out);
int ckpt_reader_new_mem(const void *buf, size_t len, struct ckpt_reader **out);
void ckpt_reader_free(struct ckpt_reader *r);
/* Reads through t (not copied, must outlive the reader) instead of fd. */
void ckpt_reader_set_transport(struct ckpt_reader *r, const struct ckpt_transport *t);
/* Reads and validates the image header (expecting ihdr_id, or either kind
 * if 0) and the domain header. */
int ckpt_reader_headers(struct ckpt_reader *r, uint32_t ihdr_id);
const struct ckpt_stream_info *ckpt_reader_info(const struct ckpt_reader *r);
/* The next record, validated. Unknown optional records are skipped (logged).
 * A CHECKPOINT is returned only after its trailer (when present) matched. */
int ckpt_reader_next(struct ckpt_reader *r, struct ckpt_record *rec);
/* Why the last call failed: "offset N: RECORD (0xTYPE): what". */
const char *ckpt_reader_error(const struct ckpt_reader *r);
uint64_t ckpt_reader_offset(const struct ckpt_reader *r);
/* The last epoch whose CHECKPOINT was read, or UINT64_MAX if none. */
uint64_t ckpt_reader_last_epoch(const struct ckpt_reader *r);
/* After END: 1 if the input ends here, 0 if octets follow (one is consumed). */
int ckpt_reader_at_eof(struct ckpt_reader *r);

/* ---- views of validated records ---- */

struct ckpt_pages_view {
	uint32_t count;
	const uint64_t *pfns;                   /* PAGE_DATA: count pfn entries */
	const struct ckpt_page_z_desc *descs;   /* HA_PAGE_DATA_Z: count descriptors */
	const uint8_t *data;                    /* pages, or concatenated payloads */
};

int ckpt_pages_view(const struct ckpt_record *rec, struct ckpt_pages_view *v);

/* Walks the data pages of a view (entries without data are skipped). */
struct ckpt_page {
	uint64_t pfn;
	uint32_t encoding; /* CKPT_ENC_RAW for PAGE_DATA */
	uint32_t length;
	const uint8_t *payload;
	uint32_t index; /* entry index in the record */
};

struct ckpt_page_iter {
	const struct ckpt_pages_view *v;
	uint32_t next;
	const uint8_t *payload;
};

void ckpt_page_iter_init(struct ckpt_page_iter *it, const struct ckpt_pages_view *v);
bool ckpt_page_iter_next(struct ckpt_page_iter *it, struct ckpt_page *pg);
/* True if a pfn entry's type carries a page of data. */
bool ckpt_pfn_has_data(uint64_t entry);

#endif
