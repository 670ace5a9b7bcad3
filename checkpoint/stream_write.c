/* The stream's writer (stream.h): framing, padding, the running checksum
 * and its trailer, the CHECKPOINT record that closes an epoch. */
#include "checkpoint/stream.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/io.h"
#include "common/log.h"

static const uint8_t zero_pad[CKPT_REC_ALIGN];

struct ckpt_writer {
	int fd;
	const struct ckpt_transport *tr; /* NULL: plain fd */
	int tee; /* -1: none */
	bool trailers;
	uint64_t offset;
	XXH3_state_t *csum;
	uint32_t records; /* in the current checkpoint */
	uint64_t pages;
};

int ckpt_writer_new(int fd, struct ckpt_writer **out)
{
	struct ckpt_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->csum = XXH3_createState();
	if (!w->csum) {
		free(w);
		return -ENOMEM;
	}
	XXH3_64bits_reset(w->csum);
	w->fd = fd;
	w->tee = -1;
	w->trailers = true;
	*out = w;
	return 0;
}

void ckpt_writer_free(struct ckpt_writer *w)
{
	if (!w)
		return;
	XXH3_freeState(w->csum);
	free(w);
}

void ckpt_writer_set_tee(struct ckpt_writer *w, int fd)
{
	w->tee = fd;
}

/* Writes to the stream and, best effort, to the tee. */
static int emit(struct ckpt_writer *w, const struct iovec *vec, int n)
{
	int rc = w->tr ? w->tr->writev(w->tr->priv, vec, n) : io_writev_full(w->fd, vec, n);

	if (rc == 0 && w->tee >= 0) {
		int trc = io_writev_full(w->tee, vec, n);

		if (trc < 0) {
			log_warn("saving the stream failed (%s); no longer saving it",
				 strerror(-trc));
			w->tee = -1;
		}
	}
	return rc;
}

void ckpt_writer_set_transport(struct ckpt_writer *w, const struct ckpt_transport *t)
{
	w->tr = t;
}

void ckpt_writer_set_trailers(struct ckpt_writer *w, bool on)
{
	w->trailers = on;
}

uint64_t ckpt_writer_offset(const struct ckpt_writer *w)
{
	return w->offset;
}

int ckpt_writer_headers(struct ckpt_writer *w, uint32_t ihdr_id, uint32_t domain_type,
			uint32_t xen_major, uint32_t xen_minor)
{
	struct ckpt_image_hdr ih = {
		.marker = htobe64(CKPT_IHDR_MARKER),
		.id = htobe32(ihdr_id),
		.version = htobe32(ihdr_id == CKPT_IHDR_ID_BACK ? CKPT_IHDR_BACK_VERSION
							     : CKPT_IHDR_VERSION),
	};
	struct ckpt_domain_hdr dh = {
		.type = domain_type,
		.page_shift = CKPT_PAGE_SHIFT,
		.xen_major = xen_major,
		.xen_minor = xen_minor,
	};
	struct iovec iov[2] = {{&ih, sizeof(ih)}, {&dh, sizeof(dh)}};
	int rc = emit(w, iov, 2);

	if (rc == 0)
		w->offset += sizeof(ih) + sizeof(dh);
	return rc;
}

/* Frames one record: header, body iovecs, padding, in one writev. */
static int write_framed(struct ckpt_writer *w, uint32_t type, const struct iovec *iov, int iovcnt,
			bool in_checksum)
{
	struct ckpt_rec_hdr hdr;
	struct iovec stack_vec[64];
	struct iovec *vec = stack_vec;
	uint64_t length = 0;
	int n = 0, rc;

	for (int i = 0; i < iovcnt; i++)
		length += iov[i].iov_len;
	if (length > CKPT_REC_LENGTH_MAX) {
		log_error("%s record of %llu octets exceeds the %u-octet cap", ckpt_rec_name(type),
			  (unsigned long long)length, CKPT_REC_LENGTH_MAX);
		return -EMSGSIZE;
	}
	if (iovcnt + 2 > (int)(sizeof(stack_vec) / sizeof(stack_vec[0]))) {
		vec = malloc(sizeof(*vec) * (size_t)(iovcnt + 2));
		if (!vec)
			return -ENOMEM;
	}
	hdr.type = type;
	hdr.length = ((uint32_t)length);
	vec[n++] = (struct iovec){&hdr, sizeof(hdr)};
	for (int i = 0; i < iovcnt; i++)
		if (iov[i].iov_len)
			vec[n++] = iov[i];
	if (ckpt_pad_len((uint32_t)length))
		vec[n++] = (struct iovec){(void *)zero_pad, ckpt_pad_len((uint32_t)length)};

	if (in_checksum) {
		for (int i = 0; i < n; i++)
			XXH3_64bits_update(w->csum, vec[i].iov_base, vec[i].iov_len);
		w->records++;
	}
	rc = emit(w, vec, n);
	if (rc == 0)
		w->offset += sizeof(hdr) + length + ckpt_pad_len((uint32_t)length);
	if (vec != stack_vec)
		free(vec);
	return rc;
}

int ckpt_writer_record(struct ckpt_writer *w, uint32_t type, const struct iovec *iov, int iovcnt)
{
	if (type == CKPT_REC_PAGE_DATA || type == CKPT_REC_HA_PAGE_DATA_Z ||
	    type == CKPT_REC_CHECKPOINT || type == CKPT_REC_HA_TRAILER)
		return -EINVAL;
	return write_framed(w, type, iov, iovcnt,
			    type != CKPT_REC_HA_HEARTBEAT && type != CKPT_REC_HA_LINK_TIMER);
}

int ckpt_writer_pages(struct ckpt_writer *w, uint32_t type, const struct iovec *iov, int iovcnt,
		      uint32_t npages)
{
	int rc;

	if (type != CKPT_REC_PAGE_DATA && type != CKPT_REC_HA_PAGE_DATA_Z)
		return -EINVAL;
	rc = write_framed(w, type, iov, iovcnt, true);
	if (rc == 0)
		w->pages += npages;
	return rc;
}

int ckpt_writer_page_data(struct ckpt_writer *w, const uint64_t *pfns, const void *const *pages,
			  uint32_t count)
{
	struct ckpt_page_data_hdr hdr = {.count = count};
	struct iovec *iov;
	int rc;

	if (count == 0 || (uint64_t)count * (8 + CKPT_PAGE_SIZE) + 8 > CKPT_REC_LENGTH_MAX)
		return -EINVAL;
	iov = malloc(sizeof(*iov) * (count + 2));
	if (!iov)
		return -ENOMEM;
	iov[0] = (struct iovec){&hdr, sizeof(hdr)};
	/* pfn entries are native little-endian u64s already (x86 hosts). */
	iov[1] = (struct iovec){(void *)pfns, sizeof(uint64_t) * count};
	for (uint32_t i = 0; i < count; i++)
		iov[i + 2] = (struct iovec){(void *)pages[i], CKPT_PAGE_SIZE};
	rc = ckpt_writer_pages(w, CKPT_REC_PAGE_DATA, iov, (int)count + 2, count);
	free(iov);
	return rc;
}

int ckpt_writer_checkpoint(struct ckpt_writer *w, uint64_t epoch)
{
	int rc;

	if (w->trailers) {
		struct ckpt_ha_trailer t = {
			.epoch = epoch,
			.checksum = XXH3_64bits_digest(w->csum),
			.records = w->records,
			.algorithm = CKPT_CSUM_XXH3_64,
			.pages = w->pages,
		};
		struct iovec iov = {&t, sizeof(t)};

		rc = write_framed(w, CKPT_REC_HA_TRAILER, &iov, 1, false);
		if (rc < 0)
			return rc;
	}
	rc = write_framed(w, CKPT_REC_CHECKPOINT, NULL, 0, false);
	XXH3_64bits_reset(w->csum);
	w->records = 0;
	w->pages = 0;
	return rc;
}

int ckpt_writer_end(struct ckpt_writer *w)
{
	return write_framed(w, CKPT_REC_END, NULL, 0, false);
}

