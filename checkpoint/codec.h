/* Page codec: XOR-delta against the copy last sent, then zstd.
 *
 * The encoder runs on the sender thread, after the guest has resumed. It
 * keeps a bounded, set-associative cache of the pages it last sent; a page
 * found there is sent as zstd(page XOR cached copy), which is tiny when only
 * a few words changed. A page not in the cache is sent as zstd(page), a zero
 * page as ZERO, and anything that does not shrink as RAW. The receiver keeps
 * every page, so its base for a delta is always its current copy.
 *
 * The cache mirrors what the receiver holds only while the stream is
 * intact: after any stream error, call ckpt_encoder_reset() before sending
 * to a (re)connected receiver.
 */
#ifndef HA_CHECKPOINT_CODEC_H
#define HA_CHECKPOINT_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "checkpoint/stream_format.h"

#define CKPT_CODEC_BATCH_MAX 1024 /* pages per HA_PAGE_DATA_Z record */

struct ckpt_codec_config {
	size_t cache_pages; /* 0: no deltas; rounded down to a multiple of 4 */
	int level;          /* zstd level; 1 is the sweet spot for pages */
};

#define CKPT_CODEC_DEFAULT_CACHE_PAGES 16384 /* 64 MiB */
#define CKPT_CODEC_DEFAULT_LEVEL 1

struct ckpt_codec_stats {
	uint64_t pages;
	uint64_t raw_bytes;  /* pages * 4096 */
	uint64_t wire_bytes; /* record bodies produced */
	uint64_t by_encoding[CKPT_ENC_MAX + 1];
	uint64_t cache_hits;
};

struct ckpt_encoder;

/* One encoded batch: the HA_PAGE_DATA_Z body as iovecs into the encoder's
 * own buffers. Each page is read once, so pages may be live (pre-copy of a
 * running guest): what is sent is one consistent snapshot of each page. */
struct ckpt_zbatch {
	struct iovec *iov;
	int iovcnt;
	uint32_t pages;
	size_t bytes;
};

int ckpt_encoder_new(const struct ckpt_codec_config *cfg, struct ckpt_encoder **out);
void ckpt_encoder_free(struct ckpt_encoder *e);
void ckpt_encoder_reset(struct ckpt_encoder *e);
/* Encodes count (1..CKPT_CODEC_BATCH_MAX) pages. pfns are plain pfns. The
 * batch stays valid until the next call on this encoder. */
int ckpt_encoder_encode(struct ckpt_encoder *e, const uint64_t *pfns, const void *const *pages,
			uint32_t count, struct ckpt_zbatch *out);
const struct ckpt_codec_stats *ckpt_encoder_stats(const struct ckpt_encoder *e);

struct ckpt_decoder;

int ckpt_decoder_new(struct ckpt_decoder **out);
void ckpt_decoder_free(struct ckpt_decoder *d);
/* Decodes one page into out (4096 octets). base is the receiver's current
 * copy of the page (needed for XOR_ZSTD, may be NULL otherwise); out may
 * equal base. Returns 0, or -EBADMSG when the payload is corrupt (out is
 * then undefined: decode into scratch space, commit afterwards). */
int ckpt_decode_page(struct ckpt_decoder *d, uint32_t encoding, const void *payload, uint32_t len,
		     const void *base, void *out);

#endif
