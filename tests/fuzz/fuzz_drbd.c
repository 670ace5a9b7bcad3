/* libFuzzer harness: the /proc/drbd reader (diskrepl/drbd.c) on arbitrary
 * text, for the minor named by the first octet, checking that what it
 * returns is consistent: terminated fields, a protocol letter or none, a
 * resync share within 0..100%, and a state line that formats. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diskrepl/drbd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct drbd_state st;
	char line[200];
	char *text;
	int rc;

	if (size < 1)
		return 0;
	text = malloc(size);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	rc = drbd_parse_proc(text, data[0] % 4, &st);
	if (rc != 0 && rc != -ENODEV && rc != -EPROTONOSUPPORT && rc != -EBADMSG)
		abort();
	if (rc == 0) {
		if (!memchr(st.cs, 0, sizeof(st.cs)) || !memchr(st.role, 0, sizeof(st.role)) ||
		    !memchr(st.peer_role, 0, sizeof(st.peer_role)) ||
		    !memchr(st.disk, 0, sizeof(st.disk)) ||
		    !memchr(st.peer_disk, 0, sizeof(st.peer_disk)))
			abort();
		if (st.protocol && !strchr("ABC", st.protocol))
			abort();
		if (st.sync_permille < -1 || st.sync_permille > 1000)
			abort();
		drbd_state_str(&st, line, sizeof(line));
		(void)drbd_primary_unsafe(&st);
	}
	free(text);
	return 0;
}
