/* libFuzzer harness: the stream reader and page decoder on arbitrary input,
 * applying pages to a small image as a receiver would. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "checkpoint/codec.h"
#include "checkpoint/stream.h"
#include "common/log.h"

#define IMAGE_PAGES 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t image[IMAGE_PAGES][CKPT_PAGE_SIZE];
	static struct ckpt_decoder *dec;
	struct ckpt_reader *r;
	struct ckpt_record rec;

	if (!dec) {
		log_set_level(LOG_LVL_ERROR);
		if (ckpt_decoder_new(&dec) < 0)
			return 0;
	}
	if (ckpt_reader_new_mem(data, size, &r) < 0)
		return 0;
	if (ckpt_reader_headers(r, 0) == 0) {
		while (ckpt_reader_next(r, &rec) == 0 && rec.type != CKPT_REC_END) {
			struct ckpt_pages_view v;
			struct ckpt_page_iter it;
			struct ckpt_page pg;

			if (ckpt_pages_view(&rec, &v) < 0)
				continue;
			ckpt_page_iter_init(&it, &v);
			while (ckpt_page_iter_next(&it, &pg)) {
				uint8_t *page = image[pg.pfn % IMAGE_PAGES];

				ckpt_decode_page(dec, pg.encoding, pg.payload, pg.length, page, page);
			}
		}
	}
	ckpt_reader_free(r);
	return 0;
}
