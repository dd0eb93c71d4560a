/* test_keys.c: the key file (creation with mode 0600, reload, refusal of
 * loose modes, wrong sizes, non-files and missing directories), subkey
 * derivation and token hashing against vectors computed independently
 * (Python hashlib.blake2b with salt/person, as crypto_kdf_derive_from_key
 * is specified), and sealing: round trips, a fixed sealed value made outside
 * libsodium (HChaCha20 + IETF ChaCha20-Poly1305), and every way a sealed
 * value can fail to open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "keys.h"
#include "log.h"
#include "testutil.h"

static int group_setup(void **state)
{
	(void)state;
	return hl_test_group_begin("keys", HL_LOG_ERROR);
}

/* Master key 00 01 02 ... 1f, the input of every known-answer vector. */
static void kat_master(unsigned char m[HL_KEY_BYTES])
{
	for (int i = 0; i < HL_KEY_BYTES; i++)
		m[i] = (unsigned char)i;
}

static const unsigned char kat_token_key[32] = {
	0x53, 0xaa, 0xb1, 0xc9, 0xd5, 0x77, 0x67, 0x99, 0xd4, 0xd4, 0x81,
	0x0b, 0x4f, 0xdd, 0x50, 0x74, 0x1c, 0x3f, 0xc0, 0x22, 0x50, 0x38,
	0x45, 0x1e, 0x8b, 0x2a, 0x91, 0x5a, 0x94, 0x94, 0x15, 0x59};
static const unsigned char kat_seal_key[32] = {
	0x0d, 0x96, 0xd2, 0x30, 0xb0, 0xef, 0xab, 0x63, 0xd6, 0xc3, 0xda,
	0xb6, 0x49, 0x89, 0xde, 0xe8, 0xe0, 0xf8, 0x38, 0xe6, 0x0f, 0x47,
	0xaf, 0x57, 0xd5, 0x97, 0x85, 0x84, 0xd5, 0x81, 0x15, 0x32};
/* keyed BLAKE2b-256(token_key, "tok" || "abc") */
static const unsigned char kat_hash_abc[32] = {
	0x5f, 0x99, 0x93, 0x01, 0x26, 0x81, 0x82, 0xf5, 0x8a, 0x68, 0x08,
	0xb0, 0xd2, 0xcb, 0xc2, 0x3c, 0xf5, 0x25, 0x4e, 0x39, 0x76, 0xc3,
	0x53, 0x4f, 0x64, 0x27, 0x5f, 0x48, 0xaa, 0xbd, 0xeb, 0x60};
/* keyed BLAKE2b-256(token_key, "tok") */
static const unsigned char kat_hash_empty[32] = {
	0x4d, 0x3e, 0x59, 0x87, 0x84, 0x46, 0x60, 0x3b, 0x95, 0x53, 0xc1,
	0xb0, 0x9f, 0x1b, 0x00, 0xae, 0x04, 0x13, 0xa8, 0xa1, 0xfb, 0xba,
	0xf9, 0xb6, 0x54, 0x5a, 0xd4, 0xe1, 0xa3, 0xe1, 0xfe, 0x5b};
/* "secret value" sealed with ad "totp:7" and nonce 40 41 ... 57, built
 * outside libsodium: proves the layout nonce || ciphertext || tag. */
static const unsigned char kat_sealed[52] = {
	0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a,
	0x4b, 0x4c, 0x4d, 0x4e, 0x4f, 0x50, 0x51, 0x52, 0x53, 0x54, 0x55,
	0x56, 0x57, 0x2f, 0xf7, 0xa0, 0x18, 0x29, 0x43, 0x65, 0xa8, 0x92,
	0xb7, 0xdb, 0x2e, 0x23, 0x88, 0x42, 0x5d, 0x4d, 0x65, 0x2d, 0x3a,
	0x01, 0x71, 0x4c, 0x56, 0x0a, 0x4b, 0x21, 0xd6};

static int all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

/* 1 when needle (n bytes) occurs in hay (len bytes). */
static int contains(const unsigned char *hay, size_t len, const char *needle,
		    size_t n)
{
	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(hay + i, needle, n) == 0)
			return 1;
	return 0;
}

/* Writes len bytes of value v to a new file at path with mode. */
static void write_file(const char *path, size_t len, int v, mode_t mode)
{
	unsigned char buf[64];
	int fd;

	assert_true(len <= sizeof(buf));
	memset(buf, v, sizeof(buf));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_create_then_load(void **state)
{
	struct hl_keys a, b;
	struct stat sb;
	char path[4200], err[256];

	(void)state;
	hl_test_path(path, sizeof(path), "key");
	assert_int_equal(hl_keys_load(&a, path, 1, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(sb.st_size, HL_KEY_BYTES);
	assert_false(all_zero(a.master, HL_KEY_BYTES));
	assert_false(all_zero(a.token_key, HL_KEY_BYTES));
	assert_false(all_zero(a.seal_key, HL_KEY_BYTES));
	assert_memory_not_equal(a.token_key, a.seal_key, HL_KEY_BYTES);

	/* Loading again, with or without create, gives the same keys: an
	 * existing file is never replaced. */
	assert_int_equal(hl_keys_load(&b, path, 0, err, sizeof(err)), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	hl_keys_wipe(&b);
	assert_int_equal(hl_keys_load(&b, path, 1, err, sizeof(err)), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	hl_keys_wipe(&a);
	hl_keys_wipe(&b);
}

static void test_created_mode_ignores_umask(void **state)
{
	struct hl_keys k;
	struct stat sb;
	char path[4200], err[256];
	mode_t old = umask(0);

	(void)state;
	/* With umask 0 the file must still be 0600, not 0666. */
	hl_test_path(path, sizeof(path), "key");
	assert_int_equal(hl_keys_load(&k, path, 1, err, sizeof(err)), 0);
	umask(old);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	hl_keys_wipe(&k);
}

static void test_two_files_differ(void **state)
{
	struct hl_keys a, b;
	char p1[4200], p2[4200], err[256];

	(void)state;
	hl_test_path(p1, sizeof(p1), "key");
	hl_test_path(p2, sizeof(p2), "key");
	assert_int_equal(hl_keys_load(&a, p1, 1, err, sizeof(err)), 0);
	assert_int_equal(hl_keys_load(&b, p2, 1, err, sizeof(err)), 0);
	assert_memory_not_equal(a.master, b.master, HL_KEY_BYTES);
	hl_keys_wipe(&a);
	hl_keys_wipe(&b);
}

static void test_missing_without_create(void **state)
{
	struct hl_keys k;
	char path[4200], err[256] = "";

	(void)state;
	hl_test_path(path, sizeof(path), "absent");
	assert_int_equal(hl_keys_load(&k, path, 0, err, sizeof(err)),
			 HL_ENOTFOUND);
	assert_non_null(strstr(err, path));
	assert_true(all_zero(&k, sizeof(k)));
	assert_int_equal(access(path, F_OK), -1);
}

static void test_missing_directory(void **state)
{
	struct hl_keys k;
	char path[4200], err[256] = "";

	(void)state;
	snprintf(path, sizeof(path), "%s/no/such/dir/key", hl_test_tmpdir());
	assert_int_equal(hl_keys_load(&k, path, 1, err, sizeof(err)), HL_EIO);
	assert_true(err[0] != '\0');
	assert_true(all_zero(&k, sizeof(k)));
}

static void test_loose_modes_refused(void **state)
{
	static const mode_t modes[] = {0640, 0604, 0660, 0644, 0610, 0601,
				       0602, 0620, 0700 | 0007};
	struct hl_keys k;
	char path[4200], err[512];

	(void)state;
	for (size_t i = 0; i < HL_ARRAY_LEN(modes); i++) {
		hl_test_path(path, sizeof(path), "loose");
		write_file(path, HL_KEY_BYTES, 0x5a, modes[i]);
		err[0] = '\0';
		assert_int_equal(hl_keys_load(&k, path, 1, err, sizeof(err)),
				 HL_EINVAL);
		assert_non_null(strstr(err, "chmod 600"));
		assert_true(all_zero(&k, sizeof(k)));
	}
	/* 0400 (read-only owner) is fine. */
	hl_test_path(path, sizeof(path), "ro");
	write_file(path, HL_KEY_BYTES, 0x5a, 0400);
	assert_int_equal(hl_keys_load(&k, path, 0, err, sizeof(err)), 0);
	hl_keys_wipe(&k);
}

static void test_wrong_sizes_refused(void **state)
{
	static const size_t sizes[] = {0, 1, 31, 33, 64};
	struct hl_keys k;
	char path[4200], err[512];

	(void)state;
	for (size_t i = 0; i < HL_ARRAY_LEN(sizes); i++) {
		hl_test_path(path, sizeof(path), "size");
		write_file(path, sizes[i], 0x5a, 0600);
		err[0] = '\0';
		/* create must not overwrite a bad file either. */
		assert_int_equal(hl_keys_load(&k, path, 1, err, sizeof(err)),
				 HL_EINVAL);
		assert_non_null(strstr(err, "bytes"));
		assert_true(all_zero(&k, sizeof(k)));
	}
}

static void test_directory_refused(void **state)
{
	struct hl_keys k;
	char path[4200], err[512];

	(void)state;
	hl_test_path(path, sizeof(path), "dir");
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(hl_keys_load(&k, path, 1, err, sizeof(err)),
			 HL_EINVAL);
	assert_non_null(strstr(err, "regular file"));
	rmdir(path);
}

static void test_null_err_ok(void **state)
{
	struct hl_keys k;
	char path[4200];

	(void)state;
	hl_test_path(path, sizeof(path), "noerr");
	assert_int_equal(hl_keys_load(&k, path, 0, NULL, 0), HL_ENOTFOUND);
}

static void test_file_contents_are_master(void **state)
{
	struct hl_keys k, m;
	char path[4200], err[256];

	(void)state;
	hl_test_path(path, sizeof(path), "fixed");
	write_file(path, HL_KEY_BYTES, 0, 0600);
	{
		unsigned char master[HL_KEY_BYTES];
		int fd = open(path, O_WRONLY | O_TRUNC);

		kat_master(master);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, master, sizeof(master)),
				 (ssize_t)sizeof(master));
		close(fd);
	}
	assert_int_equal(hl_keys_load(&k, path, 0, err, sizeof(err)), 0);
	assert_memory_equal(k.token_key, kat_token_key, 32);
	assert_memory_equal(k.seal_key, kat_seal_key, 32);
	kat_master(m.master);
	assert_int_equal(hl_keys_from_master(&m, m.master), 0);
	assert_memory_equal(&k, &m, sizeof(k));
	hl_keys_wipe(&k);
	hl_keys_wipe(&m);
}

static void test_kdf_vectors(void **state)
{
	unsigned char master[HL_KEY_BYTES];
	struct hl_keys k;

	(void)state;
	kat_master(master);
	assert_int_equal(hl_keys_from_master(&k, master), 0);
	assert_memory_equal(k.master, master, HL_KEY_BYTES);
	assert_memory_equal(k.token_key, kat_token_key, 32);
	assert_memory_equal(k.seal_key, kat_seal_key, 32);
	hl_keys_wipe(&k);
}

static void test_hash_token_vectors(void **state)
{
	unsigned char master[HL_KEY_BYTES], out[HL_TOKEN_HASH_BYTES];
	unsigned char out2[HL_TOKEN_HASH_BYTES];
	struct hl_keys k, other;

	(void)state;
	kat_master(master);
	assert_int_equal(hl_keys_from_master(&k, master), 0);
	hl_keys_hash_token(&k, "abc", 3, out);
	assert_memory_equal(out, kat_hash_abc, 32);
	hl_keys_hash_token(&k, "", 0, out);
	assert_memory_equal(out, kat_hash_empty, 32);

	/* A different server key gives an unrelated hash. */
	master[0] ^= 1;
	assert_int_equal(hl_keys_from_master(&other, master), 0);
	hl_keys_hash_token(&other, "abc", 3, out2);
	assert_memory_not_equal(out2, kat_hash_abc, 32);
	/* Hashing is deterministic (the database looks tokens up by it). */
	hl_keys_hash_token(&k, "abc", 3, out);
	hl_keys_hash_token(&k, "abc", 3, out2);
	assert_memory_equal(out, out2, 32);
	hl_keys_wipe(&k);
	hl_keys_wipe(&other);
}

static void test_open_fixed_vector(void **state)
{
	unsigned char master[HL_KEY_BYTES], out[sizeof(kat_sealed)];
	struct hl_keys k;

	(void)state;
	kat_master(master);
	assert_int_equal(hl_keys_from_master(&k, master), 0);
	assert_int_equal(hl_keys_open(&k, kat_sealed, sizeof(kat_sealed),
				      "totp:7", out), 0);
	assert_memory_equal(out, "secret value", 12);
	assert_int_equal(hl_keys_open(&k, kat_sealed, sizeof(kat_sealed),
				      "totp:8", out), HL_EINVAL);
	assert_true(all_zero(out, 12));
	hl_keys_wipe(&k);
}

static void test_seal_round_trip(void **state)
{
	static const char plain[] = "JBSWY3DPEHPK3PXP secret";
	unsigned char sealed[sizeof(plain) + HL_SEAL_OVERHEAD];
	unsigned char sealed2[sizeof(plain) + HL_SEAL_OVERHEAD];
	unsigned char out[sizeof(plain)];
	struct hl_keys k;
	char path[4200], err[256];

	(void)state;
	hl_test_path(path, sizeof(path), "seal");
	assert_int_equal(hl_keys_load(&k, path, 1, err, sizeof(err)), 0);
	hl_keys_seal(&k, plain, sizeof(plain), "totp:1", sealed);
	assert_int_equal(hl_keys_open(&k, sealed, sizeof(sealed), "totp:1",
				      out), 0);
	assert_memory_equal(out, plain, sizeof(plain));
	/* A fresh nonce each time: no two seals are alike. */
	hl_keys_seal(&k, plain, sizeof(plain), "totp:1", sealed2);
	assert_memory_not_equal(sealed, sealed2, sizeof(sealed));
	assert_memory_not_equal(sealed, sealed2, 24);
	/* The plaintext does not appear in the sealed bytes. */
	assert_false(contains(sealed, sizeof(sealed), "JBSWY3DP", 8));
	hl_keys_wipe(&k);
}

static void test_seal_empty_and_null_ad(void **state)
{
	unsigned char master[HL_KEY_BYTES], sealed[HL_SEAL_OVERHEAD + 3];
	unsigned char out[4];
	struct hl_keys k;

	(void)state;
	kat_master(master);
	assert_int_equal(hl_keys_from_master(&k, master), 0);
	hl_keys_seal(&k, "", 0, "x", sealed);
	assert_int_equal(hl_keys_open(&k, sealed, HL_SEAL_OVERHEAD, "x", out),
			 0);
	/* NULL ad is the same as "". */
	hl_keys_seal(&k, "abc", 3, NULL, sealed);
	assert_int_equal(hl_keys_open(&k, sealed, sizeof(sealed), "", out), 0);
	assert_memory_equal(out, "abc", 3);
	assert_int_equal(hl_keys_open(&k, sealed, sizeof(sealed), NULL, out),
			 0);
	hl_keys_wipe(&k);
}

static void test_open_rejects_tampering(void **state)
{
	static const char plain[] = "0123456789abcdefghij";
	unsigned char sealed[sizeof(plain) + HL_SEAL_OVERHEAD];
	unsigned char bad[sizeof(sealed)];
	unsigned char out[sizeof(plain)];
	unsigned char master[HL_KEY_BYTES];
	struct hl_keys k, other;

	(void)state;
	kat_master(master);
	assert_int_equal(hl_keys_from_master(&k, master), 0);
	hl_keys_seal(&k, plain, sizeof(plain), "totp:3", sealed);

	/* Every single-bit flip, in nonce, ciphertext and tag. */
	for (size_t i = 0; i < sizeof(sealed); i++) {
		memcpy(bad, sealed, sizeof(sealed));
		bad[i] ^= (unsigned char)(1u << (i % 8));
		memset(out, 0xee, sizeof(out));
		assert_int_equal(hl_keys_open(&k, bad, sizeof(bad), "totp:3",
					      out), HL_EINVAL);
		assert_true(all_zero(out, sizeof(out)));
	}
	/* Moved to another row (other ad). */
	memset(out, 0xee, sizeof(out));
	assert_int_equal(hl_keys_open(&k, sealed, sizeof(sealed), "totp:4",
				      out), HL_EINVAL);
	assert_true(all_zero(out, sizeof(out)));
	assert_int_equal(hl_keys_open(&k, sealed, sizeof(sealed), "totp:3 ",
				      out), HL_EINVAL);
	/* Truncated: one byte short, and shorter than the overhead. */
	assert_int_equal(hl_keys_open(&k, sealed, sizeof(sealed) - 1, "totp:3",
				      out), HL_EINVAL);
	assert_int_equal(hl_keys_open(&k, sealed, HL_SEAL_OVERHEAD - 1,
				      "totp:3", out), HL_EINVAL);
	assert_int_equal(hl_keys_open(&k, sealed, 0, "totp:3", out),
			 HL_EINVAL);
	/* Another server's key. */
	master[31] ^= 0x80;
	assert_int_equal(hl_keys_from_master(&other, master), 0);
	assert_int_equal(hl_keys_open(&other, sealed, sizeof(sealed), "totp:3",
				      out), HL_EINVAL);
	/* The original still opens. */
	assert_int_equal(hl_keys_open(&k, sealed, sizeof(sealed), "totp:3",
				      out), 0);
	assert_memory_equal(out, plain, sizeof(plain));
	hl_keys_wipe(&k);
	hl_keys_wipe(&other);
}

static void test_wipe(void **state)
{
	unsigned char master[HL_KEY_BYTES];
	struct hl_keys k;

	(void)state;
	kat_master(master);
	assert_int_equal(hl_keys_from_master(&k, master), 0);
	hl_keys_wipe(&k);
	assert_true(all_zero(&k, sizeof(k)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_then_load),
		cmocka_unit_test(test_created_mode_ignores_umask),
		cmocka_unit_test(test_two_files_differ),
		cmocka_unit_test(test_missing_without_create),
		cmocka_unit_test(test_missing_directory),
		cmocka_unit_test(test_loose_modes_refused),
		cmocka_unit_test(test_wrong_sizes_refused),
		cmocka_unit_test(test_directory_refused),
		cmocka_unit_test(test_null_err_ok),
		cmocka_unit_test(test_file_contents_are_master),
		cmocka_unit_test(test_kdf_vectors),
		cmocka_unit_test(test_hash_token_vectors),
		cmocka_unit_test(test_open_fixed_vector),
		cmocka_unit_test(test_seal_round_trip),
		cmocka_unit_test(test_seal_empty_and_null_ad),
		cmocka_unit_test(test_open_rejects_tampering),
		cmocka_unit_test(test_wipe),
	};

	return cmocka_run_group_tests(tests, group_setup, hl_test_group_teardown);
}
