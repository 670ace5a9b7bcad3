/* The guests' runtime: port I/O, the console, time, and the four memory
 * functions the compiler may call. Freestanding: no libc. */
#ifndef HA_VMM_GUEST_RT_H
#define HA_VMM_GUEST_RT_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/guest/abi.h"

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

#define BOOTINFO ((const volatile struct havm_bootinfo *)(uintptr_t)HAVM_GPA_BOOTINFO)

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

void rt_puts(const char *s);
/* printf subset: %s %c %d %u %x %llu %lld %llx %% */
void rt_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t rt_now_us(void);
void rt_idle_us(uint32_t us);
_Noreturn void rt_exit(uint32_t code);

/* Each guest defines it. */
int guest_main(void);

#endif
