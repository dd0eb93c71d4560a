/* test_taxonomy.c: the shipped taxonomy file loads and says what DESIGN.md
 * §4 requires; malformed files are refused with a message naming the entry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "taxonomy.h"

static void test_shipped_file(void **state)
{
	static const char *const online[] = {
		"sextortion", "grooming", "image_shared", "self_generated_image",
		"cyberbullying", "pornography_exposure", "impersonation", "hacking",
	};
	static const char *const flags[] = {"danger_now", "threat_deadline",
					    "money_demanded", "self_harm_thoughts"};
	struct hl_taxonomy t;
	char path[4200], err[256];
	const char *schema = getenv("HL_SCHEMA_DIR");
	const char *ids[2], *bad = NULL;
	int risk;

	(void)state;
	assert_non_null(schema);
	snprintf(path, sizeof(path), "%s/../client-web/taxonomy.json", schema);
	assert_int_equal(hl_taxonomy_load(&t, path, err, sizeof(err)), 0);
	for (size_t i = 0; i < 8; i++) {
		const struct hl_tax_item *it = hl_taxonomy_find(&t, online[i], HL_TAX_TAG);
		assert_non_null(it);
		assert_string_equal(it->group, "online_harms");
	}
	for (size_t i = 0; i < 4; i++)
		assert_non_null(hl_taxonomy_find(&t, flags[i], HL_TAX_FLAG));
	assert_non_null(hl_taxonomy_find(&t, "u13", HL_TAX_AGE_BAND));
	assert_non_null(hl_taxonomy_find(&t, "18p", HL_TAX_AGE_BAND));
	assert_null(hl_taxonomy_find(&t, "sextortion", HL_TAX_FLAG));
	/* Risk is the highest implied. */
	ids[0] = "cyberbullying";
	ids[1] = "danger_now";
	assert_int_equal(hl_taxonomy_risk(&t, ids, 2, &risk, &bad), 0);
	assert_int_equal(risk, 3);
	assert_int_equal(hl_taxonomy_risk(&t, ids, 1, &risk, &bad), 0);
	assert_int_equal(risk, 0);
	ids[0] = "sextortion";
	assert_int_equal(hl_taxonomy_risk(&t, ids, 1, &risk, &bad), 0);
	assert_int_equal(risk, 2);
	ids[1] = "u13"; /* an age band is not a tag */
	assert_int_equal(hl_taxonomy_risk(&t, ids, 2, &risk, &bad), HL_EINVAL);
	assert_string_equal(bad, "u13");
	assert_int_equal(hl_taxonomy_risk(&t, NULL, 0, &risk, &bad), 0);
	assert_int_equal(risk, 0);
	hl_taxonomy_free(&t);
}

static void test_bad_files(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{"[1]", "one object"},
		{"{\"version\":2}", "version"},
		{"{\"version\":1,\"groups\":[]}", "groups"},
		{"{\"version\":1,\"groups\":[{\"id\":\"g\",\"tags\":[{\"id\":\"Bad Id\",\"label\":\"x\",\"chip\":\"x\",\"risk\":0}]}],\"age_bands\":[{\"id\":\"a\",\"label\":\"A\"}]}", "id of"},
		{"{\"version\":1,\"groups\":[{\"id\":\"g\",\"tags\":[{\"id\":\"t\",\"label\":\"x\",\"chip\":\"x\",\"risk\":4}]}],\"age_bands\":[{\"id\":\"a\",\"label\":\"A\"}]}", "risk from 0 to 3"},
		{"{\"version\":1,\"groups\":[{\"id\":\"g\",\"tags\":[{\"id\":\"t\",\"label\":\"x\",\"chip\":\"x\",\"risk\":0},{\"id\":\"t\",\"label\":\"y\",\"chip\":\"y\",\"risk\":0}]}],\"age_bands\":[{\"id\":\"a\",\"label\":\"A\"}]}", "used twice"},
		{"{\"version\":1,\"groups\":[{\"id\":\"g\",\"tags\":[]}]}", "age_bands"},
		{"{\"version\":1,\"version\":1}", "line"},
		{"{", "line"},
	};
	struct hl_taxonomy t;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		assert_int_equal(hl_taxonomy_parse(&t, cases[i].text,
						   strlen(cases[i].text), err,
						   sizeof(err)), HL_EINVAL);
		if (!strstr(err, cases[i].want))
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].want);
		assert_null(t.items);
	}
	assert_int_equal(hl_taxonomy_load(&t, "/nonexistent/taxonomy.json", err,
					  sizeof(err)), HL_EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shipped_file),
		cmocka_unit_test(test_bad_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
