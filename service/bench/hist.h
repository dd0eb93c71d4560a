/* hist.h: a log-linear latency histogram (64 sub-buckets per power of two,
 * so any value is reported within 1.6% of its true value), in nanoseconds. */
#ifndef HL_BENCH_HIST_H
#define HL_BENCH_HIST_H

#include <stdint.h>
#include <string.h>

#define HIST_SUB 64
#define HIST_BUCKETS (HIST_SUB * 60)

struct hist {
	uint64_t count, max;
	uint64_t b[HIST_BUCKETS];
};

static inline unsigned hist_index(uint64_t v)
{
	unsigned e;

	if (v < HIST_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v); /* >= 6 */
	return (e - 5) * HIST_SUB + (unsigned)((v >> (e - 6)) & (HIST_SUB - 1));
}

/* The largest value that falls in bucket i. */
static inline uint64_t hist_upper(unsigned i)
{
	unsigned e, sub;

	if (i < HIST_SUB)
		return i;
	e = i / HIST_SUB + 5;
	sub = i % HIST_SUB;
	return (((uint64_t)(HIST_SUB + sub) + 1) << (e - 6)) - 1;
}

static inline void hist_add(struct hist *h, uint64_t v)
{
	unsigned i = hist_index(v);

	if (i >= HIST_BUCKETS)
		i = HIST_BUCKETS - 1;
	h->b[i]++;
	h->count++;
	if (v > h->max)
		h->max = v;
}

/* Value at quantile q (0..1): the upper bound of its bucket, capped at max. */
static inline uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0;

	if (!h->count)
		return 0;
	want = (uint64_t)(q * (double)h->count + 0.999999);
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			uint64_t u = hist_upper(i);
			return u < h->max ? u : h->max;
		}
	}
	return h->max;
}

#endif
