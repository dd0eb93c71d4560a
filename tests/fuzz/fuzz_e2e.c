/* fuzz_e2e.c: libFuzzer driver for everything the server parses of
 * end-to-end encryption (e2e.h): envelope headers, accept payloads (and the
 * whole accept check against a fixed trust chain), revocations, and the
 * hash chain over arbitrary kinds and payloads. Arbitrary bytes must be
 * refused cleanly; an accept or revocation can only verify with a signature
 * by the fuzzer-unknown test keys, so acceptance means a bug. A parsed
 * envelope must re-describe itself consistently. */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "e2e.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char root_pk[32], young[32], signer_pk[32];
	static struct hl_e2e_chains chains;
	static int ready;
	struct hl_e2e_header h;
	struct hl_e2e_accept a;
	unsigned char head[32], hash[32];
	char kind[40];
	int64_t at;

	if (!ready) {
		unsigned char seed[32] = {7}, sk[64];

		if (sodium_init() < 0)
			abort();
		crypto_sign_seed_keypair(root_pk, sk, seed);
		seed[0] = 8;
		crypto_sign_seed_keypair(signer_pk, sk, seed);
		memset(young, 9, sizeof(young));
		ready = 1;
	}
	if (hl_e2e_header_parse(data, size, &h) == 0) {
		if (h.ct + h.ct_len != data + size || h.ct_len < HL_E2E_CT_MIN ||
		    (h.dir != 1 && h.dir != 2) || h.version != 1)
			abort();
	}
	if (hl_e2e_accept_parse(data, size, &a) == 0) {
		if (a.cert_len == 0 || a.cert_len > HL_CERT_MAX ||
		    a.issuer_len == 0 || a.issuer_len > HL_CERT_MAX ||
		    a.sig + HL_E2E_SIG != data + size)
			abort();
	}
	/* With and without the cache of chains (its lookups run only once
	 * both certificates parse). */
	if (hl_e2e_accept_verify(data, size, 1, young, root_pk, 1700000000,
				 ~0u, NULL, NULL, NULL, NULL, &a, NULL) == 0 ||
	    hl_e2e_accept_verify(data, size, 1, young, root_pk, 1700000000,
				 ~0u, NULL, NULL, NULL, &chains, &a, NULL) == 0)
		abort();
	if (hl_e2e_revocation_verify(data, size, signer_pk, hash, &at) == 0)
		abort();
	(void)hl_e2e_kx_pk_ok(size >= 32 ? data : young);
	/* The chain accepts any kind and payload up to its length limits. */
	memset(kind, 0, sizeof(kind));
	memcpy(kind, data, size < sizeof(kind) - 1 ? size : sizeof(kind) - 1);
	if (hl_e2e_chain_head(NULL, 1, 2, 3, kind, "contact", false, data, size,
			      head) != 0)
		abort();
	return 0;
}
