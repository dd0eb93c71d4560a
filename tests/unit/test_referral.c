/* test_referral.c: the pure rules of referral.c — field validation (the
 * child's identity only with consent or risk to life), the two-person
 * approval slots, the classification of a partner's answer and the
 * back-off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "referral.h"

static struct hl_msg_referral base(void)
{
	struct hl_msg_referral x;

	memset(&x, 0, sizeof(x));
	x.legal_basis = "vital_interests";
	x.urgency = "immediate";
	x.identity_reason = "not_needed";
	return x;
}

static void test_check_ok(void **state)
{
	struct hl_msg_referral x = base();
	struct hl_ref_fields f;
	const char *field = NULL;

	(void)state;
	assert_null(hl_ref_check(&x, &f, &field));
	assert_false(f.consent_asked);
	assert_int_equal(f.consent_answer, -1);
	x.consent_asked = 1;
	x.consent_answer = "yes";
	x.consent_seq = 7;
	x.identity_included = 1;
	x.identity_reason = "consent";
	assert_null(hl_ref_check(&x, &f, &field));
	assert_int_equal(f.consent_seq, 7);
	assert_true(f.identity_included);
	x = base();
	x.identity_included = 1;
	x.identity_reason = "life_at_risk";
	assert_null(hl_ref_check(&x, &f, &field));
}

static void expect_bad(struct hl_msg_referral x, const char *want_field)
{
	struct hl_ref_fields f;
	const char *field = NULL;

	assert_non_null(hl_ref_check(&x, &f, &field));
	assert_string_equal(field, want_field);
}

static void test_check_refusals(void **state)
{
	struct hl_msg_referral x;

	(void)state;
	x = base(); x.legal_basis = "because"; expect_bad(x, "legal_basis");
	x = base(); x.legal_basis = NULL; expect_bad(x, "legal_basis");
	x = base(); x.urgency = "now"; expect_bad(x, "urgency");
	/* Consent asked: an answer and the question's seq. */
	x = base(); x.consent_asked = 1; expect_bad(x, "consent_answer");
	x = base(); x.consent_asked = 1; x.consent_answer = "maybe"; expect_bad(x, "consent_answer");
	x = base(); x.consent_asked = 1; x.consent_answer = "yes"; expect_bad(x, "consent_seq");
	x = base(); x.consent_answer = "yes"; expect_bad(x, "consent_answer");
	x = base(); x.consent_seq = 3; expect_bad(x, "consent_seq");
	/* The child's identity: only with consent (answered yes) or life at risk. */
	x = base(); x.identity_included = 1; x.identity_reason = "no_consent"; expect_bad(x, "identity_reason");
	x = base(); x.identity_included = 1; x.identity_reason = "not_known"; expect_bad(x, "identity_reason");
	x = base(); x.identity_included = 1; x.identity_reason = "consent"; expect_bad(x, "identity_reason");
	x = base(); x.identity_included = 1; x.identity_reason = "consent";
	x.consent_asked = 1; x.consent_answer = "no"; x.consent_seq = 2; expect_bad(x, "identity_reason");
	x = base(); x.identity_included = 1; x.identity_reason = "consent";
	x.consent_asked = 1; x.consent_answer = "no_answer"; x.consent_seq = 2; expect_bad(x, "identity_reason");
	x = base(); x.identity_reason = "life_at_risk"; expect_bad(x, "identity_reason");
	x = base(); x.identity_reason = "whatever"; expect_bad(x, "identity_reason");
	x = base(); x.identity_reason = NULL; expect_bad(x, "identity_reason");
}

static void test_slots(void **state)
{
	/* claimer 10, raiser 20, holder 30 */
	(void)state;
	assert_int_equal(hl_ref_approval_slot(10, 10, 20, 30, 0, 0), HL_REF_SLOT_SUPERVISOR);
	assert_int_equal(hl_ref_approval_slot(20, 10, 20, 30, 0, 0), HL_REF_SLOT_COUNSELLOR);
	assert_int_equal(hl_ref_approval_slot(30, 10, 20, 30, 0, 0), HL_REF_SLOT_COUNSELLOR);
	assert_int_equal(hl_ref_approval_slot(40, 10, 20, 30, 0, 0), HL_REF_SLOT_NONE);
	assert_int_equal(hl_ref_approval_slot(0, 10, 20, 0, 0, 0), HL_REF_SLOT_NONE);
	/* No one twice, on either side. */
	assert_int_equal(hl_ref_approval_slot(10, 10, 20, 30, 0, 10), HL_REF_SLOT_TWICE);
	assert_int_equal(hl_ref_approval_slot(20, 10, 20, 30, 20, 0), HL_REF_SLOT_TWICE);
	/* A claimer who also raised it: supervisor side only, then twice. */
	assert_int_equal(hl_ref_approval_slot(10, 10, 10, 30, 0, 0), HL_REF_SLOT_SUPERVISOR);
	assert_int_equal(hl_ref_approval_slot(10, 10, 10, 30, 0, 10), HL_REF_SLOT_TWICE);
	assert_int_equal(hl_ref_approval_slot(30, 10, 10, 30, 0, 10), HL_REF_SLOT_COUNSELLOR);
	/* The other counsellor when one already approved. */
	assert_int_equal(hl_ref_approval_slot(30, 10, 20, 30, 20, 0), HL_REF_SLOT_TAKEN);
	assert_int_equal(hl_ref_approval_slot(10, 10, 20, 30, 20, 0), HL_REF_SLOT_SUPERVISOR);
}

static void test_classify(void **state)
{
	char ack[130], why[300];
	static const char ok[] = "{\"ack_id\":\"POL-1\"}";

	(void)state;
	assert_int_equal(hl_ref_classify(true, NULL, 200, ok, strlen(ok), ack, sizeof(ack), why, sizeof(why)), HL_REF_OUT_ACK);
	assert_string_equal(ack, "POL-1");
	assert_int_equal(hl_ref_classify(true, NULL, 202, ok, strlen(ok), ack, sizeof(ack), why, sizeof(why)), HL_REF_OUT_ACK);
	assert_int_equal(hl_ref_classify(true, NULL, 200, "{}", 2, ack, sizeof(ack), why, sizeof(why)), HL_REF_OUT_RETRY);
	assert_int_equal(hl_ref_classify(true, NULL, 200, "nope", 4, ack, sizeof(ack), why, sizeof(why)), HL_REF_OUT_RETRY);
	assert_int_equal(hl_ref_classify(true, NULL, 200, "{\"ack_id\":\"\"}", 13, ack, sizeof(ack), why, sizeof(why)), HL_REF_OUT_RETRY);
	assert_int_equal(hl_ref_classify(true, NULL, 200, "{\"ack_id\":\"a\\nb\"}", 17, ack, sizeof(ack), why, sizeof(why)), HL_REF_OUT_RETRY);
	assert_int_equal(hl_ref_classify(true, NULL, 503, "x", 1, ack, sizeof(ack), why, sizeof(why)), HL_REF_OUT_RETRY);
	assert_int_equal(hl_ref_classify(true, NULL, 429, "", 0, ack, sizeof(ack), why, sizeof(why)), HL_REF_OUT_RETRY);
	assert_int_equal(hl_ref_classify(true, NULL, 408, "", 0, ack, sizeof(ack), why, sizeof(why)), HL_REF_OUT_RETRY);
	assert_int_equal(hl_ref_classify(true, NULL, 400, "bad\x01", 4, ack, sizeof(ack), why, sizeof(why)), HL_REF_OUT_FAIL);
	assert_string_equal(why, "the partner refused it (400): bad?");
	assert_int_equal(hl_ref_classify(true, NULL, 404, "", 0, ack, sizeof(ack), why, sizeof(why)), HL_REF_OUT_FAIL);
	assert_int_equal(hl_ref_classify(true, NULL, 302, "", 0, ack, sizeof(ack), why, sizeof(why)), HL_REF_OUT_FAIL);
	assert_int_equal(hl_ref_classify(false, "Couldn't connect to server", 0, NULL, 0, ack, sizeof(ack), why, sizeof(why)), HL_REF_OUT_RETRY);
	assert_string_equal(why, "no answer from the partner: Couldn't connect to server");
}

static void test_backoff(void **state)
{
	(void)state;
	/* base 1000, max 8000: 1000, 2000, 4000, 8000, 8000 with equal jitter. */
	assert_int_equal(hl_ref_backoff_ms(1, 1000, 8000, 0), 500);
	assert_int_equal(hl_ref_backoff_ms(1, 1000, 8000, 500), 1000);
	assert_int_equal(hl_ref_backoff_ms(2, 1000, 8000, 0), 1000);
	assert_int_equal(hl_ref_backoff_ms(3, 1000, 8000, 2000), 4000);
	assert_int_equal(hl_ref_backoff_ms(4, 1000, 8000, 0), 4000);
	assert_int_equal(hl_ref_backoff_ms(60, 1000, 8000, 4000), 8000);
	for (uint32_t r = 0; r < 100000; r += 997) {
		int64_t d = hl_ref_backoff_ms(5, 1000, 8000, r);

		assert_true(d >= 4000 && d <= 8000);
	}
	assert_int_equal(hl_ref_backoff_ms(1, 1, 1, 7), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_ok),
		cmocka_unit_test(test_check_refusals),
		cmocka_unit_test(test_slots),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
