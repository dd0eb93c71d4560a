/* fuzz_cert.c: libFuzzer driver for the certificate verifier and the
 * base32 / TOTP input paths: arbitrary bytes must be rejected cleanly; a
 * certificate is only accepted with a valid signature from the test issuer
 * (which the fuzzer cannot forge), so acceptance means a bug. */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cert.h"
#include "totp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	static int ready;
	struct hl_cert out;
	unsigned char buf[128];
	char text[256];
	uint64_t step;

	if (!ready) {
		unsigned char seed[crypto_sign_SEEDBYTES] = {1};
		unsigned char sk[crypto_sign_SECRETKEYBYTES];

		if (sodium_init() < 0)
			abort();
		crypto_sign_seed_keypair(pk, sk, seed);
		ready = 1;
	}
	for (int role = 1; role <= 4; role++)
		if (hl_cert_verify(data, size, pk, 1700000000, role, &out) == 0)
			abort();
	if (size < sizeof(text)) {
		memcpy(text, data, size);
		text[size] = '\0';
		(void)hl_base32_decode(text, buf, sizeof(buf));
		if (hl_totp_verify((const unsigned char *)"12345678901234567890",
				   20, text, 1700000000, 0, &step) == 0 &&
		    strlen(text) != 6)
			abort();
	}
	return 0;
}
