/* fuzz_bundle.c: libFuzzer driver for the offline evidence-bundle verifier
 * (service/bundle.c): arbitrary bytes must be reported on cleanly, without
 * a crash, a leak or undefined behaviour, whether checked against the root
 * the bundle carries or against a given one. A bundle can only verify
 * against a root key whose secret signed its certificates; the fuzzer
 * cannot forge those for the test root below, so a verdict of VERIFIED
 * against it means a bug. Whatever verifies at all must be in canonical
 * form, and the canonical encoder must be idempotent on what parses. */
#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* canonical(parse(x)) == x for x a canonical encoding. */
static void check_canonical(const uint8_t *data, size_t size)
{
	json_t *v = json_loadb((const char *)data, size,
			       JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
	char *a = NULL, *b = NULL, why[160];
	size_t al, bl;

	if (!v)
		return;
	if (hl_bundle_canonical(v, &a, &al, why, sizeof(why)) == 0) {
		json_t *w = json_loadb(a, al,
				       JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
				       NULL);

		if (!w)
			abort(); /* the encoder wrote something unparseable */
		if (hl_bundle_canonical(w, &b, &bl, why, sizeof(why)) != 0 ||
		    bl != al || memcmp(a, b, al) != 0)
			abort(); /* not idempotent */
		json_decref(w);
	}
	free(a);
	free(b);
	json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char test_root[crypto_sign_PUBLICKEYBYTES];
	static FILE *sink;
	struct hl_bundle_report r;
	int rc;

	if (!sink) {
		unsigned char seed[crypto_sign_SEEDBYTES] = {7};
		unsigned char sk[crypto_sign_SECRETKEYBYTES];

		if (sodium_init() < 0)
			abort();
		crypto_sign_seed_keypair(test_root, sk, seed);
		sink = fopen("/dev/null", "w");
		if (!sink)
			abort();
	}

	/* Against the root the bundle carries (verify-bundle without --root). */
	rc = hl_bundle_verify(data, size, NULL, &r);
	if (rc == 0 && (!r.verified || !r.parsed || r.failures ||
			size == 0 || data[size - 1] != '\n'))
		abort();
	if (rc != 0 && rc != HL_EINVAL && rc != HL_ENOMEM)
		abort();
	hl_bundle_report_print(&r, sink);
	hl_bundle_report_free(&r);

	/* Against a root nobody but this driver holds the secret of. */
	rc = hl_bundle_verify(data, size, test_root, &r);
	if (rc == 0 || r.verified)
		abort();
	hl_bundle_report_print(&r, sink);
	hl_bundle_report_free(&r);

	if (size <= 1 << 20)
		check_canonical(data, size);
	return 0;
}
