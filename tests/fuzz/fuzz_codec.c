/* libFuzzer harness: the page decoder on arbitrary payloads. Input: one
 * octet of encoding, then the payload. Output must stay within one page. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "checkpoint/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ckpt_decoder *dec;
	static uint8_t base[CKPT_PAGE_SIZE], out[CKPT_PAGE_SIZE];

	if (size < 1 || size > 2 * CKPT_PAGE_SIZE)
		return 0;
	if (!dec && ckpt_decoder_new(&dec) < 0)
		return 0;
	memset(base, 0x5A, sizeof(base));
	ckpt_decode_page(dec, data[0] % 5, data + 1, (uint32_t)(size - 1), base, out);
	return 0;
}
