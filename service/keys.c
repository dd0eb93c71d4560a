/* keys.c: the server's key file, the subkeys derived from it, token hashing
 * and sealing at rest. Every buffer that held key material is wiped with
 * sodium_memzero before it goes out of scope, on success and failure alike. */
#include "keys.h"
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The on-disk and sealed formats depend on these sizes: a libsodium that
 * changed them would silently make existing files unreadable. */
_Static_assert(HL_KEY_BYTES == crypto_kdf_KEYBYTES, "kdf key size");
_Static_assert(HL_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
	       "aead key size");
_Static_assert(HL_SEAL_OVERHEAD ==
		       crypto_aead_xchacha20poly1305_ietf_NPUBBYTES +
			       crypto_aead_xchacha20poly1305_ietf_ABYTES,
	       "seal overhead");
_Static_assert(HL_TOKEN_HASH_BYTES >= crypto_generichash_BYTES_MIN &&
		       HL_TOKEN_HASH_BYTES <= crypto_generichash_BYTES_MAX,
	       "token hash size");
_Static_assert(HL_KEY_BYTES >= crypto_generichash_KEYBYTES_MIN &&
		       HL_KEY_BYTES <= crypto_generichash_KEYBYTES_MAX,
	       "generichash key size");

/* crypto_kdf context: exactly crypto_kdf_CONTEXTBYTES (8) characters. A new
 * context (or new ids) is how a future format would get unrelated keys. */
static const char kdf_context[] = "hlkeys01";
_Static_assert(sizeof(kdf_context) - 1 == crypto_kdf_CONTEXTBYTES,
	       "kdf context length");

enum { SUBKEY_TOKEN = 1, SUBKEY_SEAL = 2 };

#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES

/* Derives token_key and seal_key from keys->master. Returns 0 or HL_EINVAL
 * (libsodium refused, which only happens with impossible sizes). */
static int derive(struct hl_keys *keys)
{
	if (crypto_kdf_derive_from_key(keys->token_key, HL_KEY_BYTES,
				       SUBKEY_TOKEN, kdf_context,
				       keys->master) != 0 ||
	    crypto_kdf_derive_from_key(keys->seal_key, HL_KEY_BYTES,
				       SUBKEY_SEAL, kdf_context,
				       keys->master) != 0)
		return HL_EINVAL;
	return 0;
}

int hl_keys_from_master(struct hl_keys *keys,
			const unsigned char master[HL_KEY_BYTES])
{
	int rc;

	if (sodium_init() < 0) {
		sodium_memzero(keys, sizeof(*keys));
		return HL_EINVAL;
	}
	/* memmove: master may be keys->master itself. */
	memmove(keys->master, master, HL_KEY_BYTES);
	rc = derive(keys);
	if (rc != 0)
		sodium_memzero(keys, sizeof(*keys));
	return rc;
}

/* fsyncs the directory holding path, so the new file's directory entry is
 * durable too (a file fsynced into a directory that was not can vanish
 * after a power cut). Returns 0 or -1 with errno set. */
static int fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t n;
	int fd, rc, saved;

	if (!slash) {
		strcpy(dir, ".");
	} else {
		n = slash == path ? 1 : (size_t)(slash - path);
		if (n >= sizeof(dir)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/*
 * Creates path with 32 fresh random bytes. O_EXCL: never replaces a file
 * (losing the key makes every sealed secret and token hash useless), and
 * fails with EEXIST when another process won a creation race, which the
 * caller handles by loading that file. Returns 0, or HL_EIO with errno set
 * (EEXIST included). A partly written file is removed, so a retry can
 * create it again rather than be refused for its size.
 */
static int create_file(struct hl_keys *keys, const char *path, char *err,
		       size_t errlen)
{
	int fd, saved;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		saved = errno;
		hl_set_err(err, errlen, "cannot create key file %s: %s", path,
			   strerror(saved));
		errno = saved;
		return HL_EIO;
	}
	randombytes_buf(keys->master, HL_KEY_BYTES);
	if (hl_write_full(fd, keys->master, HL_KEY_BYTES) != 0 ||
	    fsync(fd) != 0) {
		saved = errno;
		close(fd);
		unlink(path);
		hl_set_err(err, errlen, "cannot write key file %s: %s", path,
			   strerror(saved));
		errno = saved;
		return HL_EIO;
	}
	if (close(fd) != 0) {
		saved = errno;
		unlink(path);
		hl_set_err(err, errlen, "cannot write key file %s: %s", path,
			   strerror(saved));
		errno = saved;
		return HL_EIO;
	}
	if (fsync_parent(path) != 0) {
		/* The file itself is complete and fsynced: keep it, so a retry
		 * loads this key instead of making another. */
		saved = errno;
		hl_set_err(err, errlen, "cannot fsync the directory of key "
			   "file %s: %s", path, strerror(saved));
		errno = saved;
		return HL_EIO;
	}
	return 0;
}

/* Loads the master key from an existing file. Returns 0, HL_ENOTFOUND
 * (errno ENOENT), HL_EINVAL (not a regular file, wrong mode or size) or
 * HL_EIO. The checks use fstat on the opened descriptor, so the file that
 * was checked is the file that is read. */
static int load_file(struct hl_keys *keys, const char *path, char *err,
		     size_t errlen)
{
	struct stat sb;
	int fd, saved, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		saved = errno;
		hl_set_err(err, errlen, "cannot open key file %s: %s", path,
			   strerror(saved));
		errno = saved;
		return saved == ENOENT ? HL_ENOTFOUND : HL_EIO;
	}
	if (fstat(fd, &sb) != 0) {
		hl_set_err(err, errlen, "cannot stat key file %s: %s", path,
			   strerror(errno));
		rc = HL_EIO;
	} else if (!S_ISREG(sb.st_mode)) {
		hl_set_err(err, errlen, "key file %s is not a regular file",
			   path);
		rc = HL_EINVAL;
	} else if ((sb.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		hl_set_err(err, errlen, "key file %s has mode %03o: group and "
			   "others must have no access (chmod 600 %s)", path,
			   (unsigned)(sb.st_mode & 0777), path);
		rc = HL_EINVAL;
	} else if (sb.st_size != HL_KEY_BYTES) {
		hl_set_err(err, errlen, "key file %s is %lld bytes, expected "
			   "%d", path, (long long)sb.st_size, HL_KEY_BYTES);
		rc = HL_EINVAL;
	} else if (hl_read_full(fd, keys->master, HL_KEY_BYTES) != 0) {
		saved = errno;
		hl_set_err(err, errlen, "cannot read key file %s: %s", path,
			   saved ? strerror(saved) : "file shrank");
		rc = HL_EIO;
	}
	close(fd);
	return rc;
}

int hl_keys_load(struct hl_keys *keys, const char *path, int create,
		 char *err, size_t errlen)
{
	int rc;

	sodium_memzero(keys, sizeof(*keys));
	if (sodium_init() < 0) {
		hl_set_err(err, errlen, "libsodium failed to initialise");
		return HL_EINVAL;
	}
	rc = load_file(keys, path, err, errlen);
	if (rc == HL_ENOTFOUND && create) {
		rc = create_file(keys, path, err, errlen);
		/* Another process created it between our open and ours. */
		if (rc == HL_EIO && errno == EEXIST)
			rc = load_file(keys, path, err, errlen);
	}
	if (rc == 0)
		rc = derive(keys);
	if (rc != 0)
		sodium_memzero(keys, sizeof(*keys));
	return rc;
}

void hl_keys_wipe(struct hl_keys *keys)
{
	sodium_memzero(keys, sizeof(*keys));
}

void hl_keys_hash_token(const struct hl_keys *keys, const void *data,
			size_t len, unsigned char out[HL_TOKEN_HASH_BYTES])
{
	crypto_generichash_state st;

	/* The "tok" prefix separates this use of token_key from any later
	 * one (e.g. another kind of code hashed under the same subkey). */
	crypto_generichash_init(&st, keys->token_key, HL_KEY_BYTES,
				HL_TOKEN_HASH_BYTES);
	crypto_generichash_update(&st, (const unsigned char *)"tok", 3);
	crypto_generichash_update(&st, data, len);
	crypto_generichash_final(&st, out, HL_TOKEN_HASH_BYTES);
	/* The state holds the keyed chaining value. */
	sodium_memzero(&st, sizeof(st));
}

/* The associated data as bytes: ad's characters without the NUL; NULL is
 * the same as "". */
static size_t ad_len(const char *ad)
{
	return ad ? strlen(ad) : 0;
}

void hl_keys_seal(const struct hl_keys *keys, const void *plain, size_t len,
		  const char *ad, unsigned char *out)
{
	/* A random 192-bit nonce never repeats in practice, so no counter has
	 * to be kept (the reason for XChaCha20 rather than ChaCha20). */
	randombytes_buf(out, NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(
		out + NONCE_BYTES, NULL, plain, len,
		(const unsigned char *)ad, ad_len(ad), NULL, out,
		keys->seal_key);
}

int hl_keys_open(const struct hl_keys *keys, const unsigned char *sealed,
		 size_t sealed_len, const char *ad, unsigned char *out)
{
	size_t plain_len;

	if (sealed_len < HL_SEAL_OVERHEAD)
		return HL_EINVAL;
	plain_len = sealed_len - HL_SEAL_OVERHEAD;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		    out, NULL, NULL, sealed + NONCE_BYTES,
		    sealed_len - NONCE_BYTES, (const unsigned char *)ad,
		    ad_len(ad), sealed, keys->seal_key) != 0) {
		/* Never hand back anything of a value that did not
		 * authenticate, whatever libsodium left in out. */
		sodium_memzero(out, plain_len);
		return HL_EINVAL;
	}
	return 0;
}
