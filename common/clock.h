/* Monotonic time in nanoseconds, and sleeping on it. */
#ifndef HA_COMMON_CLOCK_H
#define HA_COMMON_CLOCK_H

#include <stdint.h>

#define NSEC_PER_USEC UINT64_C(1000)
#define NSEC_PER_MSEC UINT64_C(1000000)
#define NSEC_PER_SEC UINT64_C(1000000000)

uint64_t clk_now_ns(void);
/* Sleeps until the monotonic clock reads deadline_ns (restarts after signals). */
void clk_sleep_until_ns(uint64_t deadline_ns);

#endif
