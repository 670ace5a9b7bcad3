/* The secondary's checkpoint buffer: holds every record of the checkpoint
 * being received, and applies it all or nothing when its CHECKPOINT
 * arrives. Nothing of a checkpoint touches the committed image before all
 * of its pages have been decoded successfully into scratch space.
 */
#ifndef HA_SECONDARY_CKBUF_H
#define HA_SECONDARY_CKBUF_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint/codec.h"
#include "checkpoint/stream.h"
#include "hv/hv.h"

struct ckbuf;

/* Returns the committed copy of page pfn (writable), or NULL if out of range. */
typedef uint8_t *(*ckbuf_page_fn)(void *ctx, uint64_t pfn);

/* max_bytes bounds the memory one checkpoint may take (records + scratch). */
int ckbuf_new(size_t max_bytes, struct ckbuf **out);
void ckbuf_free(struct ckbuf *b);
/* Drops everything buffered (a partial checkpoint). */
void ckbuf_reset(struct ckbuf *b);
/* Buffers a page record (PAGE_DATA, HA_PAGE_DATA_Z) or a state record.
 * -E2BIG: the checkpoint exceeds max_bytes. */
int ckbuf_add(struct ckbuf *b, const struct ckpt_record *rec);
/* Decodes every page into scratch (deltas against the committed image, or
 * against an earlier copy in the same checkpoint), then copies them into
 * the image and replaces *state with the checkpoint's state records (if it
 * has any). On error nothing was applied: -EBADMSG corrupt page data or a
 * pfn out of range; -ENOMEM. The buffer is empty afterwards either way. */
int ckbuf_commit(struct ckbuf *b, struct ckpt_decoder *dec, ckbuf_page_fn page, void *ctx,
		 struct hv_state *state, char *err, size_t errlen);
/* Pages and octets buffered so far. */
uint64_t ckbuf_pages(const struct ckbuf *b);
size_t ckbuf_bytes(const struct ckbuf *b);

#endif
