/* counter: the UDP counter service of svc.h on port 7000. The failover
 * tests judge by it: every increment a client saw acknowledged must survive. */
#include "vmm/guest/netsvc.h"
#include "vmm/guest/rt.h"
#include "vmm/guest/svc.h"

static struct svc_counter counter;

static size_t handle(void *ctx, const void *req, size_t len, char *reply, size_t cap)
{
	return svc_counter_handle(&counter, req, len, reply, cap);
}

static void report(void *ctx)
{
	rt_printf("counter: value %llu after %llu requests\n", (unsigned long long)counter.value,
		  (unsigned long long)counter.requests);
}

int guest_main(void)
{
	svc_counter_init(&counter);
	netsvc_run(SVC_COUNTER_PORT, handle, NULL, report);
}
