/* counter: the UDP counter service of svc.h on port 7000. The failover
 * tests judge by it: every increment a client saw acknowledged must survive.
 * With a disk, it also writes sequence-numbered blocks there, one every
 * 10 ms, and checks disk against memory after every move (diskseq.h):
 * acknowledged increments and the disk are then judged in one run. */
#include "vmm/guest/diskseq.h"
#include "vmm/guest/netsvc.h"
#include "vmm/guest/rt.h"
#include "vmm/guest/svc.h"

static struct svc_counter counter;
static struct diskseq disk;

static size_t handle(void *ctx, const void *req, size_t len, char *reply, size_t cap)
{
	return svc_counter_handle(&counter, req, len, reply, cap);
}

static void report(void *ctx)
{
	rt_printf("counter: value %llu after %llu requests\n", (unsigned long long)counter.value,
		  (unsigned long long)counter.requests);
}

/* One block every 10 ms (the disk guest writes one a millisecond): the
 * disk is a side line here, and its blocks stay distinguishable for a
 * while after a move. */
static void tick(void *ctx, bool moved)
{
	static unsigned n;

	if (moved || ++n % 10 == 0)
		diskseq_step(&disk, moved);
}

int guest_main(void)
{
	svc_counter_init(&counter);
	netsvc_run(SVC_COUNTER_PORT, handle, NULL, report, diskseq_init(&disk, false) ? tick : NULL);
}
