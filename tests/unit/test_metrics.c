/* test_metrics.c: histograms count into the right buckets and the
 * exposition is well-formed Prometheus text (HELP and TYPE before samples,
 * cumulative buckets ending in +Inf equal to _count). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "metrics.h"

static void test_histogram(void **state)
{
	static const double le[] = {1, 5, 10};
	struct hl_histogram h;

	(void)state;
	hl_histogram_init(&h, le, 3);
	hl_histogram_observe(&h, 0.5);
	hl_histogram_observe(&h, 1);   /* le is inclusive */
	hl_histogram_observe(&h, 7);
	hl_histogram_observe(&h, 11);
	hl_histogram_observe(&h, -3);  /* counts as 0 */
	assert_int_equal(h.bucket[0], 3);
	assert_int_equal(h.bucket[1], 0);
	assert_int_equal(h.bucket[2], 1);
	assert_int_equal(h.bucket[3], 1);
	assert_int_equal(h.count, 5);
	assert_true(h.sum > 19.49 && h.sum < 19.51);
}

/* The value of the sample line starting with prefix (followed by ' '). */
static double sample(const char *text, const char *prefix)
{
	const char *p = text;
	size_t n = strlen(prefix);

	while ((p = strstr(p, prefix)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p += n;
	}
	fail_msg("no sample %s", prefix);
	return -1;
}

static void test_format(void **state)
{
	struct hl_metrics m;
	struct hl_metrics_gauges g;
	char *buf = malloc(65536);
	size_t n, small;

	(void)state;
	hl_metrics_init(&m);
	memset(&g, 0, sizeof(g));
	m.errors[HL_ERR_BAD_JSON] = 3;
	m.ws_current[1] = 2;
	g.queue_by_risk[2] = 4;
	g.store.batches = 9;
	g.store.checkpoints = 7;
	g.store.checkpoints_inline = 2;
	g.store.wal_bytes = 123456;
	for (int i = 0; i < 5; i++)
		hl_histogram_observe(&m.queue_wait, 20.0 * i);
	n = hl_metrics_format(&m, &g, buf, 65536);
	assert_true(n < 65536);
	assert_int_equal(strlen(buf), n);
	assert_true(sample(buf, "helpline_errors_total{code=\"bad_json\"}") == 3);
	assert_true(sample(buf, "helpline_ws_connections{protocol=\"helpline.staff.v1\"}") == 2);
	assert_true(sample(buf, "helpline_queue_length{risk=\"high\"}") == 4);
	assert_true(sample(buf, "helpline_store_batches_total") == 9);
	assert_true(sample(buf, "helpline_store_checkpoints_total") == 7);
	assert_true(sample(buf, "helpline_store_writer_checkpoints_total") == 2);
	assert_true(sample(buf, "helpline_store_checkpoint_failures_total") == 0);
	assert_true(sample(buf, "helpline_store_wal_bytes_total") == 123456);
	/* 0, 20, 40, 60, 80: cumulative buckets. */
	assert_true(sample(buf, "helpline_queue_wait_seconds_bucket{le=\"5\"}") == 1);
	assert_true(sample(buf, "helpline_queue_wait_seconds_bucket{le=\"30\"}") == 2);
	assert_true(sample(buf, "helpline_queue_wait_seconds_bucket{le=\"60\"}") == 4);
	assert_true(sample(buf, "helpline_queue_wait_seconds_bucket{le=\"+Inf\"}") == 5);
	assert_true(sample(buf, "helpline_queue_wait_seconds_count") == 5);
	assert_true(sample(buf, "helpline_queue_wait_seconds_sum") == 200);
	assert_non_null(strstr(buf, "# HELP helpline_queue_wait_seconds "));
	assert_non_null(strstr(buf, "# TYPE helpline_queue_wait_seconds histogram\n"));
	/* Every TYPE line is preceded by its HELP line. */
	for (const char *p = strstr(buf, "# TYPE "); p; p = strstr(p + 1, "# TYPE ")) {
		const char *name = p + 7, *sp = strchr(name, ' ');
		char help[128];

		snprintf(help, sizeof(help), "# HELP %.*s ", (int)(sp - name), name);
		assert_non_null(strstr(buf, help));
	}
	/* A small buffer: the length needed is returned, and it is NUL-ended. */
	small = hl_metrics_format(&m, &g, buf, 100);
	assert_int_equal(small, n);
	assert_true(strlen(buf) < 100);
	/* Without gauges (NULL) the counters still come out. */
	n = hl_metrics_format(&m, NULL, buf, 65536);
	assert_true(n < 65536);
	assert_true(sample(buf, "helpline_errors_total{code=\"bad_json\"}") == 3);
	hl_metrics_free(&m);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
