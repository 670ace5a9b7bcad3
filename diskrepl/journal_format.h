/* The on-disk format of a replica's journal (diskrepl/replica.c): the
 * structs alone, so that tools and the fuzz harness read and write the
 * same octets. Host byte order: a journal never leaves its host.
 *
 *   header (64 octets): magic "HAJRNL01", version, flags, source id, size,
 *                       checksum of the header (XXH3-64 with csum = 0)
 *   entry  (40 octets): magic "HAJE", type, flags, epoch, offset, length,
 *                       header checksum (low 32 bits of XXH3-64 with
 *                       hcsum = 0), data checksum (XXH3-64 of the data);
 *                       then the data (WRITE only)
 */
#ifndef HA_DISKREPL_JOURNAL_FORMAT_H
#define HA_DISKREPL_JOURNAL_FORMAT_H

#include <stdint.h>

#define JRN_MAGIC UINT64_C(0x31304c4e524a4148) /* "HAJRNL01" */
#define JRN_VERSION 1u
#define JH_SOURCE_SET 0x1u
#define JH_BASE_COMPLETE 0x2u
#define JENT_MAGIC 0x454a4148u /* "HAJE" */

enum { JE_WRITE = 1, JE_ZERO = 2, JE_COMMIT = 3 };

struct jhdr {
	uint64_t magic;
	uint32_t version;
	uint32_t flags;
	uint8_t source_id[16];
	uint64_t size; /* of the disk; entries must lie inside it */
	uint64_t csum;
	uint8_t reserved[16];
};
_Static_assert(sizeof(struct jhdr) == 64, "journal header size");

struct jent {
	uint32_t magic;
	uint16_t type;
	uint16_t flags;
	uint64_t epoch;
	uint64_t offset;
	uint32_t length;
	uint32_t hcsum;
	uint64_t dcsum;
};
_Static_assert(sizeof(struct jent) == 40, "journal entry size");

#endif
