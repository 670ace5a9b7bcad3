/* libFuzzer harness: the witness's request parser and lease table on
 * arbitrary request lines, with a clock that moves by the input, checking
 * that every reply is one well-formed line. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "failover/witness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fo_lease_table *t;
	char line[300], reply[256];
	uint64_t now = 1000;
	size_t i = 0;

	if (fo_lease_table_new(now, 5000, 0, &t) < 0)
		return 0;
	/* Lines split at '\n'; the octet before each advances the clock. */
	while (i < size) {
		size_t n = 0;

		now += (uint64_t)data[i++] * 50;
		while (i < size && data[i] != '\n' && n < sizeof(line) - 1)
			line[n++] = (char)data[i++];
		i++;
		line[n] = '\0';
		int what = fo_lease_handle(t, line, now, reply, sizeof(reply));
		size_t len = strnlen(reply, sizeof(reply));

		if (what < FO_LEASE_ERROR || what > FO_LEASE_DENIED || !len ||
		    reply[len - 1] != '\n' || memchr(reply, '\n', len - 1))
			abort();
	}
	fo_lease_table_free(t);
	return 0;
}
