/* fault-forge: writes a checkpoint stream whose last checkpoint commits on
 * the disk but not in memory, to standard output.
 *
 *   fault-forge > FILE
 *   fault-forge big > FILE
 *
 * An ha-vm domain of 1024 pages (4 MiB) with one replicated disk of 1 MiB:
 *
 *   epoch 0  disk: 4 KiB of 0xA0 at offset 0;      memory: page 0, state
 *   epoch 1  disk: 4 KiB of 0xB1 at offset 4096;   memory: page 1 as a
 *            zstd payload that is no zstd frame, so it cannot be decoded
 *
 * Every record is well formed and every trailer holds, so the secondary
 * reaches CHECKPOINT(1), commits the disk, and only then fails the memory
 * commit: the case where it must take the disk commit back. The stream
 * then stops without END (the primary is lost). The state record is no
 * valid ha-vm state: this stream is for a secondary that never activates
 * (its fence command fails).
 *
 * "big": no disk; epoch 0 commits (page 0 and state), then epoch 1 brings
 * BIG_PAGES raw pages (1.2 MiB) and no CHECKPOINT: more than a secondary
 * with --max-checkpoint 1 buffers, from a primary that is still connected.
 */
#include <endian.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "checkpoint/stream.h"
#include "checkpoint/stream_format.h"

#define NR_PAGES 1024u /* 4 MiB, the smallest ha-vm */
#define DISK_SIZE (1u << 20)
#define BIG_PAGES 300u

static uint8_t page[CKPT_PAGE_SIZE], block[4096];

static int disk_epoch(struct ckpt_writer *w, uint64_t epoch, uint64_t off, int fill)
{
	struct ckpt_ha_disk_write_hdr h = {.epoch = htole64(epoch), .offset = htole64(off),
					   .length = htole32(sizeof(block))};
	struct ckpt_ha_disk_barrier b = {.epoch = htole64(epoch), .writes = htole64(1)};
	struct iovec wv[2] = {{&h, sizeof(h)}, {block, sizeof(block)}};
	struct iovec bv = {&b, sizeof(b)};
	int rc;

	memset(block, fill, sizeof(block));
	rc = ckpt_writer_record(w, CKPT_REC_HA_DISK_WRITE, wv, 2);
	return rc < 0 ? rc : ckpt_writer_record(w, CKPT_REC_HA_DISK_BARRIER, &bv, 1);
}

/* Epoch 0 of the "big" stream, then BIG_PAGES pages of epoch 1. */
static int big(struct ckpt_writer *w, const struct iovec *dv, const struct iovec *sv)
{
	static uint64_t pfns[BIG_PAGES];
	static const void *pages[BIG_PAGES];
	uint64_t pfn0 = 0;
	const void *p0 = page;
	int rc;

	for (uint32_t i = 0; i < BIG_PAGES; i++) {
		pfns[i] = i;
		pages[i] = page;
	}
	rc = ckpt_writer_record(w, CKPT_REC_HA_DOMAIN_CONFIG, dv, 1);
	if (rc == 0)
		rc = ckpt_writer_page_data(w, &pfn0, &p0, 1);
	if (rc == 0)
		rc = ckpt_writer_record(w, CKPT_REC_HA_VMM_STATE, sv, 2);
	if (rc == 0)
		rc = ckpt_writer_checkpoint(w, 0);
	if (rc == 0)
		rc = ckpt_writer_page_data(w, pfns, pages, BIG_PAGES);
	return rc;
}

int main(int argc, char **argv)
{
	struct ckpt_ha_domain_config dc = {.nr_pages = htole64(NR_PAGES), .vcpus = htole32(1),
					   .flags = htole32(CKPT_CFG_TRAILERS | CKPT_CFG_COMPRESSED),
					   .name = "forge",
					   .mac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x42}};
	struct ckpt_ha_disk_config kc = {.flags = htole32(CKPT_DISKCFG_FULL),
					 .size = htole64(DISK_SIZE),
					 .source_id = "fault-forge disk"};
	struct ckpt_ha_vmm_state_hdr sh = {0};
	uint8_t state[64] = {0};
	struct iovec dv = {&dc, sizeof(dc)}, kv = {&kc, sizeof(kc)};
	struct iovec sv[2] = {{&sh, sizeof(sh)}, {state, sizeof(state)}};
	const void *pages[1] = {page};
	uint64_t pfn0 = 0;
	struct ckpt_page_data_hdr zh = {.count = htole32(1)};
	struct ckpt_page_z_desc zd = {.pfn = htole64(1), .encoding = htole32(CKPT_ENC_ZSTD),
				      .length = htole32(16)};
	uint8_t junk[16];
	struct iovec zv[3] = {{&zh, sizeof(zh)}, {&zd, sizeof(zd)}, {junk, sizeof(junk)}};
	struct ckpt_writer *w;
	int rc;

	if (isatty(STDOUT_FILENO) || argc > 2 || (argc == 2 && strcmp(argv[1], "big"))) {
		fprintf(stderr, "usage: fault-forge [big] > FILE\n");
		return 2;
	}
	if (ckpt_writer_new(STDOUT_FILENO, &w) < 0)
		return 1;
	memset(page, 0x5a, sizeof(page));
	memset(junk, 0xff, sizeof(junk));
	rc = ckpt_writer_headers(w, CKPT_IHDR_ID_XEN, CKPT_DHDR_HAVM, 0, 0);
	if (rc == 0 && argc == 2) {
		rc = big(w, &dv, sv);
		goto out;
	}
	if (rc == 0)
		rc = ckpt_writer_record(w, CKPT_REC_HA_DOMAIN_CONFIG, &dv, 1);
	if (rc == 0)
		rc = ckpt_writer_record(w, CKPT_REC_HA_DISK_CONFIG, &kv, 1);
	if (rc == 0)
		rc = disk_epoch(w, 0, 0, 0xa0);
	if (rc == 0)
		rc = ckpt_writer_page_data(w, &pfn0, pages, 1);
	if (rc == 0)
		rc = ckpt_writer_record(w, CKPT_REC_HA_VMM_STATE, sv, 2);
	if (rc == 0)
		rc = ckpt_writer_checkpoint(w, 0);
	if (rc == 0)
		rc = disk_epoch(w, 1, sizeof(block), 0xb1);
	if (rc == 0)
		rc = ckpt_writer_pages(w, CKPT_REC_HA_PAGE_DATA_Z, zv, 3, 1);
	if (rc == 0)
		rc = ckpt_writer_checkpoint(w, 1);
out:
	ckpt_writer_free(w);
	if (rc < 0) {
		fprintf(stderr, "fault-forge: cannot write the stream: %s\n", strerror(-rc));
		return 1;
	}
	return 0;
}
