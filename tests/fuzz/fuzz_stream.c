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
			const uint8_t *p;

			if (rec.type != CKPT_REC_HA_PAGE_DATA_Z || ckpt_pages_view(&rec, &v) < 0)
				continue;
			p = v.data;
			for (uint32_t i = 0; i < v.count; i++) {
				uint8_t *page = image[(v.descs[i].pfn & CKPT_PFN_MASK) % IMAGE_PAGES];

				ckpt_decode_page(dec, v.descs[i].encoding, p, v.descs[i].length, page,
						 page);
				p += v.descs[i].length;
			}
		}
	}
	ckpt_reader_free(r);
	return 0;
}
