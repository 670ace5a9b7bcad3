/* Guest runtime (see rt.h). */
#include <stdarg.h>

#include "vmm/guest/rt.h"

void *memcpy(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;

	while (n >= 8) {
		uint64_t v;
		__builtin_memcpy(&v, s, 8); /* inlined: a single load */
		__builtin_memcpy(d, &v, 8);
		d += 8;
		s += 8;
		n -= 8;
	}
	while (n--)
		*d++ = *s++;
	return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;

	if (d <= s || d >= s + n)
		return memcpy(dst, src, n);
	while (n--)
		d[n] = s[n];
	return dst;
}

void *memset(void *dst, int c, size_t n)
{
	uint8_t *d = dst;

	while (n--)
		*d++ = (uint8_t)c;
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;

	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

void rt_puts(const char *s)
{
	while (*s)
		outb(HAVM_PORT_CONSOLE, (uint8_t)*s++);
}

static void put_num(unsigned long long v, unsigned base, int neg)
{
	char buf[24];
	int i = 0;

	if (neg)
		outb(HAVM_PORT_CONSOLE, '-');
	do {
		buf[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (i--)
		outb(HAVM_PORT_CONSOLE, (uint8_t)buf[i]);
}

void rt_printf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	for (; *fmt; fmt++) {
		int ll = 0;

		if (*fmt != '%') {
			outb(HAVM_PORT_CONSOLE, (uint8_t)*fmt);
			continue;
		}
		fmt++;
		while (*fmt == 'l') {
			ll++;
			fmt++;
		}
		switch (*fmt) {
		case 's':
			rt_puts(va_arg(ap, const char *));
			break;
		case 'c':
			outb(HAVM_PORT_CONSOLE, (uint8_t)va_arg(ap, int));
			break;
		case 'd': {
			long long v = ll ? va_arg(ap, long long) : va_arg(ap, int);
			put_num(v < 0 ? (unsigned long long)-v : (unsigned long long)v, 10, v < 0);
			break;
		}
		case 'u':
			put_num(ll ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned), 10, 0);
			break;
		case 'x':
			put_num(ll ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned), 16, 0);
			break;
		case '%':
			outb(HAVM_PORT_CONSOLE, '%');
			break;
		default:
			break;
		}
		if (!*fmt)
			break;
	}
	va_end(ap);
}

uint64_t rt_now_us(void)
{
	uint64_t khz = BOOTINFO->tsc_khz;

	return khz ? rdtsc() * 1000 / khz : 0;
}

void rt_idle_us(uint32_t us)
{
	outl(HAVM_PORT_IDLE, us);
}

void rt_exit(uint32_t code)
{
	for (;;)
		outl(HAVM_PORT_EXIT, code);
}

/* Entry: the VMM sets rsp to the top of the stack and rip here. */
__attribute__((section(".text.start"), used, noreturn)) void _start(void);
void _start(void)
{
	rt_exit((uint32_t)guest_main());
}
