/* The xen backend's host-testable parts: the restore image a secondary
 * writes on failover (xl save file = xl header + libxl stream + libxc
 * stream), read back octet by octet and through the stream reader; and the
 * "no Xen here" refusal on a host without privcmd. The backend's running
 * side is tested against real Xen in the lab (tests/lab/tests/40-*). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/stream.h"
#include "common/log.h"
#include "hv/hv.h"
#include "hv/xen.h"

static const char config[] = "{\"c_info\": {\"type\": \"pvh\", \"name\": \"web\"}}";
static const uint64_t pfns[] = {0, 1, 5, 1023, 1024, 4095};

static void fill_page(uint8_t *p, uint64_t seed)
{
	for (unsigned i = 0; i < CKPT_PAGE_SIZE; i++)
		p[i] = (uint8_t)(seed * 13 + i * 7 + (i >> 9));
}

static struct hv_xen_image *make_image(void)
{
	struct hv_info info = {.nr_pages = 4096, .vcpus = 1, .xen_major = 4, .xen_minor = 17};
	struct hv_xen_image *im;

	snprintf(info.name, sizeof(info.name), "web");
	assert_int_equal(hv_xen_image_new(&info, &im), 0);
	for (size_t i = 0; i < sizeof(pfns) / sizeof(pfns[0]); i++)
		fill_page(hv_xen_image_page(im, pfns[i]), pfns[i]);
	assert_null(hv_xen_image_page(im, 4096));
	return im;
}

static void make_state(struct hv_state *st, bool with_context)
{
	struct ckpt_tsc_info tsc = {.mode = 0, .khz = 2000000, .nsec = 123456789, .incarnation = 2};
	struct {
		struct ckpt_hvm_params_hdr h;
		uint64_t e[2];
	} params = {.h = {.count = 1}, .e = {1 /* HVM_PARAM_STORE_PFN */, 0xfeffc}};
	uint8_t ctx[100];

	memset(ctx, 0xab, sizeof(ctx));
	assert_int_equal(hv_state_add(st, CKPT_REC_X86_TSC_INFO, &tsc, sizeof(tsc)), 0);
	if (with_context)
		assert_int_equal(hv_state_add(st, CKPT_REC_HVM_CONTEXT, ctx, sizeof(ctx)), 0);
	assert_int_equal(hv_state_add(st, CKPT_REC_HVM_PARAMS, &params, sizeof(params)), 0);
	assert_int_equal(hv_state_add(st, CKPT_REC_HA_XEN_CONFIG, config, sizeof(config)), 0);
}

static void test_restore_image(void **unused)
{
	struct hv_xen_image *im = make_image();
	struct hv_state st = {0};
	int fd = memfd_create("image", MFD_CLOEXEC);
	uint8_t *b, expect[CKPT_PAGE_SIZE];
	off_t len;
	size_t off = 0;
	uint32_t u32;
	struct ckpt_reader *r;
	struct ckpt_record rec;
	uint32_t types[16], ntypes = 0, pages = 0;

	assert_true(fd >= 0);
	make_state(&st, true);
	assert_int_equal(hv_xen_image_write(im, &st, fd), 0);
	len = lseek(fd, 0, SEEK_END);
	b = malloc((size_t)len);
	assert_int_equal(pread(fd, b, (size_t)len, 0), len);

	/* xl's save file header and its optional data: the JSON configuration. */
	assert_memory_equal(b, "Xen saved domain, xl format\n \0 \r", 32);
	memcpy(&u32, b + 32, 4);
	assert_int_equal(u32, 0x01020304u);
	memcpy(&u32, b + 36, 4);
	assert_int_equal(u32, 0x3u); /* STREAMv2 | JSON */
	memcpy(&u32, b + 40, 4);
	assert_int_equal(u32, 0);
	memcpy(&u32, b + 44, 4);
	assert_int_equal(u32, 4 + sizeof(config));
	memcpy(&u32, b + 48, 4);
	assert_int_equal(u32, sizeof(config));
	assert_memory_equal(b + 52, config, sizeof(config));
	off = 52 + sizeof(config);

	/* libxl's header (big-endian) and LIBXC_CONTEXT. */
	assert_memory_equal(b + off, "LibxlFmt", 8);
	assert_memory_equal(b + off + 8, "\0\0\0\x02\0\0\0\0", 8);
	assert_memory_equal(b + off + 16, "\x01\0\0\0\0\0\0\0", 8);
	off += 24;

	/* libxc's stream, through our reader: every Xen rule it checks. */
	assert_int_equal(ckpt_reader_new_mem(b + off, (size_t)len - off, &r), 0);
	assert_int_equal(ckpt_reader_headers(r, CKPT_IHDR_ID_XEN), 0);
	assert_int_equal(ckpt_reader_info(r)->version, 3);
	assert_int_equal(ckpt_reader_info(r)->domain_type, CKPT_DHDR_X86_HVM);
	assert_int_equal(ckpt_reader_info(r)->xen_major, 4);
	assert_int_equal(ckpt_reader_info(r)->xen_minor, 17);
	do {
		struct ckpt_pages_view v;
		struct ckpt_page_iter it;
		struct ckpt_page pg;

		assert_int_equal(ckpt_reader_next(r, &rec), 0);
		if (rec.type != CKPT_REC_PAGE_DATA && ntypes < 16)
			types[ntypes++] = rec.type;
		if (rec.type != CKPT_REC_PAGE_DATA)
			continue;
		assert_int_equal(ckpt_pages_view(&rec, &v), 0);
		ckpt_page_iter_init(&it, &v);
		while (ckpt_page_iter_next(&it, &pg)) {
			assert_int_equal(pg.pfn, pfns[pages]);
			fill_page(expect, pg.pfn);
			assert_memory_equal(pg.payload, expect, CKPT_PAGE_SIZE);
			pages++;
		}
	} while (rec.type != CKPT_REC_END);
	assert_int_equal(pages, sizeof(pfns) / sizeof(pfns[0]));
	/* STATIC_DATA_END before the pages; state in libxc's order; no private
	 * records (xl restore gets a plain stream). */
	assert_int_equal(ntypes, 5);
	assert_int_equal(types[0], CKPT_REC_STATIC_DATA_END);
	assert_int_equal(types[1], CKPT_REC_X86_TSC_INFO);
	assert_int_equal(types[2], CKPT_REC_HVM_CONTEXT);
	assert_int_equal(types[3], CKPT_REC_HVM_PARAMS);
	assert_int_equal(types[4], CKPT_REC_END);

	/* libxl's END closes the file. */
	off += (size_t)ckpt_reader_offset(r);
	assert_int_equal((size_t)len - off, 8);
	assert_memory_equal(b + off, "\0\0\0\0\0\0\0\0", 8);

	ckpt_reader_free(r);
	free(b);
	close(fd);
	hv_state_free(&st);
	hv_xen_image_free(im);
}

static void test_image_needs_context(void **unused)
{
	struct hv_xen_image *im = make_image();
	struct hv_state st = {0};
	int fd = memfd_create("image", MFD_CLOEXEC);

	make_state(&st, false);
	assert_int_equal(hv_xen_image_write(im, &st, fd), -EBADMSG);
	close(fd);
	hv_state_free(&st);
	hv_xen_image_free(im);
}

/* The failover plumbing with a stand-in for `xl restore` that records
 * what it reads (the real xl restores in the lab): the image reaches it
 * whole through the FIFO; when it refuses the FIFO, through a file. */
static void restore_with(const char *script, const char *dir, const char *want_kind)
{
	struct hv_xen_image *im = make_image();
	struct hv_state st = {0};
	char xl[600], out[600], kind[600], cmd[1400];
	int fd = memfd_create("image", MFD_CLOEXEC);
	off_t len;
	uint8_t *want, *got;
	FILE *f;

	snprintf(xl, sizeof(xl), "%s/xl", dir);
	snprintf(out, sizeof(out), "%s/restored", dir);
	snprintf(kind, sizeof(kind), "%s/kind", dir);
	f = fopen(xl, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s\n", script);
	fclose(f);
	assert_int_equal(chmod(xl, 0755), 0);
	setenv("HA_XEN_XL", xl, 1);
	setenv("HA_XEN_SAVE_DIR", dir, 1);
	make_state(&st, true);
	assert_int_equal(hv_xen_image_restore(im, &st), 0);

	assert_int_equal(hv_xen_image_write(im, &st, fd), 0);
	len = lseek(fd, 0, SEEK_END);
	want = malloc((size_t)len);
	got = malloc((size_t)len + 1);
	assert_int_equal(pread(fd, want, (size_t)len, 0), len);
	f = fopen(out, "r");
	assert_non_null(f);
	assert_int_equal(fread(got, 1, (size_t)len + 1, f), (size_t)len);
	fclose(f);
	assert_memory_equal(got, want, (size_t)len);
	f = fopen(kind, "r");
	assert_non_null(f);
	assert_non_null(fgets(cmd, sizeof(cmd), f));
	fclose(f);
	assert_string_equal(cmd, want_kind);
	free(want);
	free(got);
	close(fd);
	unlink(xl);
	unlink(out);
	unlink(kind);
	unsetenv("HA_XEN_XL");
	unsetenv("HA_XEN_SAVE_DIR");
	hv_state_free(&st);
	hv_xen_image_free(im);
}

static void test_restore_plumbing(void **unused)
{
	char dir[] = "/tmp/test_xen_image.XXXXXX", script[1200];

	assert_non_null(mkdtemp(dir));
	/* $1 = restore, $2 = the image; no config argument. */
	snprintf(script, sizeof(script),
		 "[ \"$1\" = restore ] && [ $# = 2 ] || exit 3\n"
		 "if [ -p \"$2\" ]; then echo fifo >%s/kind; else echo file >%s/kind; fi\n"
		 "cat \"$2\" >%s/restored",
		 dir, dir, dir);
	restore_with(script, dir, "fifo\n");
	/* An xl that cannot read from a FIFO: the file route follows. */
	snprintf(script, sizeof(script),
		 "[ -p \"$2\" ] && exit 1\n"
		 "echo file >%s/kind; cat \"$2\" >%s/restored",
		 dir, dir);
	restore_with(script, dir, "file\n");
	assert_int_equal(rmdir(dir), 0); /* nothing left behind */
}

static void test_lookup_and_no_xen(void **unused)
{
	const char *name;
	const struct hv_ops *ops = hv_lookup("xen:web", &name);
	struct hv_dom *d = NULL;

	assert_non_null(ops);
	assert_string_equal(ops->prefix, "xen");
	assert_string_equal(name, "web");
	assert_string_equal(hv_lookup("web", &name)->prefix, "kvm");
	if (access("/dev/xen/privcmd", F_OK) == 0 || access("/proc/xen/privcmd", F_OK) == 0) {
		print_message("privcmd present: the no-Xen refusal is not checked here\n");
		return;
	}
	assert_false(hv_xen_present("test"));
	assert_int_equal(ops->save->open("web", &d), -ENODEV);
	assert_null(d);
}

/* The first disk's device, read from and rewritten in libxl's JSON: the
 * secondary restores a DRBD-backed domain on its own minor. */
static void test_config_disk(void **unused)
{
	static const char two[] = "{\"disks\": [\n  {\"pdev_path\": \"/dev/drbd0\", \"vdev\": "
				  "\"xvda\"},\n  {\"pdev_path\": \"/srv/b\\\"q.img\"}]}";
	struct hv_info info = {.nr_pages = 4096, .vcpus = 1, .xen_major = 4, .xen_minor = 17};
	struct hv_xen_image *im;
	struct hv_state st = {0};
	char dev[64], *b;
	int fd = memfd_create("image", MFD_CLOEXEC);
	uint32_t u32;
	off_t len;

	(void)unused;
	assert_int_equal(hv_xen_config_disk(two, sizeof(two), dev, sizeof(dev)), 0);
	assert_string_equal(dev, "/dev/drbd0");
	assert_int_equal(hv_xen_config_disk(config, sizeof(config), dev, sizeof(dev)), -ENOENT);
	assert_string_equal(dev, "");
	/* Any string key: the shutdown actions ha-protect checks. */
	static const char acts[] = "{\"c_info\": {\"name\": \"web\"}, \"on_reboot\": \"restart\",\n"
				   "  \"on_crash\":\"preserve\"}";
	assert_int_equal(hv_xen_config_string(acts, sizeof(acts), "on_reboot", dev, sizeof(dev)), 0);
	assert_string_equal(dev, "restart");
	assert_int_equal(hv_xen_config_string(acts, sizeof(acts), "on_crash", dev, sizeof(dev)), 0);
	assert_string_equal(dev, "preserve");
	assert_int_equal(hv_xen_config_string(acts, sizeof(acts), "on_poweroff", dev, sizeof(dev)),
			 -ENOENT);
	assert_string_equal(dev, "");
	assert_int_equal(hv_xen_config_string(acts, sizeof(acts), "on_reboot", dev, 4),
			 -ENAMETOOLONG);
	assert_string_equal(dev, "");
	assert_int_equal(hv_xen_config_disk(two, sizeof(two), dev, 5), -ENAMETOOLONG);
	assert_int_equal(hv_xen_config_disk("{\"pdev_path\": \"/dev/x", 21, dev, sizeof(dev)),
			 -ENOENT);

	/* The image's configuration names this host's device instead. */
	snprintf(info.name, sizeof(info.name), "web");
	snprintf(info.disk, sizeof(info.disk), "/dev/drbd1");
	assert_int_equal(hv_xen_image_new(&info, &im), 0);
	assert_true(fd >= 0);
	make_state(&st, true);
	for (uint32_t i = 0; i < st.nrecs; i++)
		if (st.recs[i].type == CKPT_REC_HA_XEN_CONFIG)
			st.recs[i].type = CKPT_REC_HVM_PARAMS + 0x1000; /* not found any more */
	assert_int_equal(hv_state_add(&st, CKPT_REC_HA_XEN_CONFIG, two, sizeof(two)), 0);
	assert_int_equal(hv_xen_image_write(im, &st, fd), 0);
	len = lseek(fd, 0, SEEK_END);
	b = malloc((size_t)len);
	assert_int_equal(pread(fd, b, (size_t)len, 0), len);
	memcpy(&u32, b + 48, 4);
	assert_int_equal(u32, sizeof(two));
	assert_int_equal(hv_xen_config_disk(b + 52, u32, dev, sizeof(dev)), 0);
	assert_string_equal(dev, "/dev/drbd1");
	const char *keep1 = "\"vdev\": \"xvda\"", *keep2 = "\"/srv/b\\\"q.img\"";
	assert_non_null(memmem(b + 52, u32, keep1, strlen(keep1)));
	assert_non_null(memmem(b + 52, u32, keep2, strlen(keep2)));
	free(b);
	close(fd);
	hv_state_free(&st);
	hv_xen_image_free(im);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_restore_image),
		cmocka_unit_test(test_image_needs_context),
		cmocka_unit_test(test_restore_plumbing),
		cmocka_unit_test(test_lookup_and_no_xen),
		cmocka_unit_test(test_config_disk),
	};

	log_init("test_xen_image");
	log_set_level(LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
