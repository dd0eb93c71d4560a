/* store.c: the SQLite database: open and migrate, the prepared statements,
 * and the writer thread that commits queued jobs in groups (one transaction
 * per batch, one savepoint per job) and hands completions back to the loop.
 *
 * Threads: hl_store_open, hl_store_submit, hl_store_close, the async callback
 * and every done callback run on the loop thread. The connection is used by
 * the loop thread only inside hl_store_open (before the writer starts) and
 * hl_store_close (after it is joined); in between it belongs to the writer.
 * The two threads meet only under st->mu: the in queue (loop → writer), the
 * out queue (writer → loop), stopping and the counters. */
#include "store.h"
#include "common.h"
#include "conversation.h"
#include "log.h"
#include "walbuf.h"

#include <errno.h>
#include <stdatomic.h>
#include <assert.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define DEFAULT_BATCH_MAX 4096
#define DEFAULT_QUEUE_MAX 100000
#define DEFAULT_BUSY_TIMEOUT_MS 5000
/* At close another process (helplinectl) may hold a read lock; waiting the
 * full busy timeout for the final checkpoint would only delay shutdown. */
#define CLOSE_BUSY_TIMEOUT_MS 1000
/* Batches run one job each after a batch failed to commit: every job of a
 * failed batch gets HL_ESTORE, innocent or not, so while the fault lasts
 * (a full disk) each job takes its own chance. */
#define SOLO_AFTER_FAILURE 64
/* The writer's memory of client ids (dedupe.h): about 16 bytes per unit at
 * most 3/4 full, so up to ~24 MiB, e.g. 10,000 open chats of 100 messages. */
#define DEDUPE_MAX_UNITS (1u << 20)
/* The most of one transaction's WAL frames the writer holds before
 * writing them (walbuf.h): a bound, not an allocation (the buffer grows
 * as a transaction's frames need; past it they go straight down). */
#define WALBUF_MAX (16u << 20)

/* The SQL of enum hl_stmt, indexed by it. Every entry must be present. */
static const char *const stmt_sql[HL_STMT__COUNT] = {
	[HL_STMT_META_GET] = "SELECT value FROM meta WHERE key=?1",
	[HL_STMT_META_PUT] =
		"INSERT OR REPLACE INTO meta(key,value) VALUES(?1,?2)",
	[HL_STMT_AUDIT_LAST] =
		"SELECT seq, entry_hash FROM audit ORDER BY seq DESC LIMIT 1",
	[HL_STMT_AUDIT_INSERT] =
		"INSERT INTO audit(seq, at, actor, action, target, detail, "
		"prev_hash, entry_hash) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[HL_STMT_DATA_VERSION] = "PRAGMA data_version",
	[HL_STMT_SESSION_ALL] =
		"SELECT token_hash, staff_id, created_at, last_seen, expires_at, "
		"reauth_at FROM staff_session",
	[HL_STMT_STAFF_INSERT] =
		"INSERT INTO staff(username, display_name, roles, languages, "
		"skills, capacity, state, enrol_hash, enrol_expires, created_at, "
		"updated_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8, "
		"?9, ?9) RETURNING id",
	[HL_STMT_STAFF_GET] =
		"SELECT id, username, display_name, roles, languages, skills, "
		"capacity, state, pw_hash, totp_sealed, totp_last_step, "
		"failed_logins, locked_until FROM staff WHERE id=?1",
	[HL_STMT_STAFF_GET_BY_USERNAME] =
		"SELECT id, username, display_name, roles, languages, skills, "
		"capacity, state, pw_hash, totp_sealed, totp_last_step, "
		"failed_logins, locked_until FROM staff WHERE username=?1",
	[HL_STMT_STAFF_ALL] =
		"SELECT id, username, display_name, roles, languages, skills, "
		"capacity, state, pw_hash, totp_sealed, totp_last_step, "
		"failed_logins, locked_until FROM staff ORDER BY id",
	[HL_STMT_STAFF_FIND_ENROL] =
		"SELECT id, username, display_name, roles, languages, skills, "
		"capacity, state, pw_hash, totp_sealed, totp_last_step, "
		"failed_logins, locked_until FROM staff WHERE enrol_hash=?1 "
		"AND enrol_expires>?2 AND state<>'disabled'",
	[HL_STMT_STAFF_ENROL] =
		"UPDATE staff SET pw_hash=?3, totp_sealed=?4, totp_last_step=?5, "
		"enrol_hash=NULL, enrol_expires=0, state=CASE state WHEN "
		"'disabled' THEN 'disabled' ELSE 'active' END, failed_logins=0, "
		"locked_until=0, updated_at=?6 WHERE id=?1 AND enrol_hash=?2 "
		"AND enrol_expires>?6 RETURNING state",
	[HL_STMT_STAFF_LOGIN_OK] =
		"UPDATE staff SET totp_last_step=?2, failed_logins=0, "
		"locked_until=0, pw_hash=coalesce(?3, pw_hash), updated_at=?4 "
		"WHERE id=?1 AND state='active' AND totp_last_step<?2 "
		"RETURNING id",
	[HL_STMT_STAFF_LOGIN_FAIL] =
		"UPDATE staff SET failed_logins=failed_logins+1, "
		"locked_until=CASE WHEN failed_logins+1>=?2 THEN ?3 "
		"ELSE locked_until END, updated_at=?4 WHERE id=?1 "
		"RETURNING failed_logins, locked_until",
	[HL_STMT_STAFF_SET_STATE] =
		"UPDATE staff SET state=CASE WHEN ?2='disabled' THEN 'disabled' "
		"WHEN pw_hash IS NOT NULL AND totp_sealed IS NOT NULL THEN "
		"'active' ELSE 'pending' END, updated_at=?3 WHERE id=?1 "
		"RETURNING state",
	[HL_STMT_STAFF_RESET] =
		"UPDATE staff SET pw_hash=CASE WHEN ?2 THEN NULL ELSE pw_hash END, "
		"totp_sealed=CASE WHEN ?3 THEN NULL ELSE totp_sealed END, "
		"enrol_hash=?4, enrol_expires=?5, state=CASE state WHEN "
		"'disabled' THEN 'disabled' ELSE 'pending' END, failed_logins=0, "
		"locked_until=0, updated_at=?6 WHERE id=?1 RETURNING id",
	[HL_STMT_STAFF_TOTP_USED] =
		"UPDATE staff SET totp_last_step=?2, updated_at=?3 WHERE id=?1 "
		"AND state='active' AND totp_last_step<?2 RETURNING id",
	[HL_STMT_SESSION_INSERT] =
		"INSERT INTO staff_session(token_hash, staff_id, created_at, "
		"last_seen, expires_at, reauth_at) VALUES(?1, ?2, ?3, ?3, ?4, 0)",
	[HL_STMT_SESSION_FIND] =
		"SELECT staff_id, expires_at, last_seen, reauth_at FROM "
		"staff_session WHERE token_hash=?1",
	[HL_STMT_SESSION_TOUCH] =
		"UPDATE staff_session SET last_seen=?2, reauth_at=CASE WHEN ?3>0 "
		"THEN ?3 ELSE reauth_at END WHERE token_hash=?1 RETURNING staff_id",
	[HL_STMT_SESSION_DELETE] =
		"DELETE FROM staff_session WHERE token_hash=?1 RETURNING staff_id",
	[HL_STMT_SESSION_DELETE_STAFF] =
		"DELETE FROM staff_session WHERE staff_id=?1 RETURNING staff_id",
	[HL_STMT_SESSION_LIST] =
		"SELECT token_hash, staff_id, created_at, last_seen, expires_at, "
		"reauth_at FROM staff_session WHERE ?1=0 OR staff_id=?1 "
		"ORDER BY created_at, token_hash",
	[HL_STMT_SESSION_EXPIRE] =
		"DELETE FROM staff_session WHERE expires_at<=?1 OR last_seen<?2 "
		"RETURNING staff_id",
	[HL_STMT_ORG_KEY_GET] = "SELECT value FROM org_key WHERE name=?1",
	[HL_STMT_ORG_KEY_PUT] =
		"INSERT INTO org_key(name, value, created_at) VALUES(?1, ?2, ?3)",
	[HL_STMT_CONV_INSERT] =
		"INSERT INTO conversation(created_at, state, state_at, risk, "
		"topics, age_band, danger_now, language) VALUES(?1, 'queued', "
		"?1, ?2, ?3, ?4, ?5, ?6)",
	[HL_STMT_CONV_GET] =
		"SELECT id, created_at, ended_at, state, state_at, risk, topics, "
		"age_band, danger_now, language, counsellor_id, last_seq, "
		"outcome, tags, accepted_at, supervisor_id, transfers, "
		"contact_delivered, contact_read, staff_delivered, staff_read "
		"FROM conversation WHERE id=?1",
	/* The WHERE is the partial index conversation_open's, word for word,
	 * so the planner uses it. */
	[HL_STMT_CONV_OPEN] =
		"SELECT id, created_at, ended_at, state, state_at, risk, topics, "
		"age_band, danger_now, language, counsellor_id, last_seq, "
		"outcome, tags, accepted_at, supervisor_id, transfers, "
		"contact_delivered, contact_read, staff_delivered, staff_read "
		"FROM conversation WHERE state IN ('queued', "
		"'offered', 'active') ORDER BY created_at, id",
	[HL_STMT_CONV_STATE] =
		"SELECT state, counsellor_id, last_seq, chain_head, e2e_hello, "
		"e2e_epoch, e2e_next_contact, e2e_next_staff FROM conversation "
		"WHERE id=?1",
	[HL_STMT_CONV_SET_STATE] =
		"UPDATE conversation SET state=?3, counsellor_id=?4, state_at=?5, "
		"ended_at=CASE WHEN ?3='ended' THEN ?5 ELSE ended_at END, "
		"accepted_at=CASE WHEN ?3='active' AND accepted_at IS NULL "
		"THEN ?5 ELSE accepted_at END "
		"WHERE id=?1 AND state=?2",
	[HL_STMT_CONV_WRAP] =
		"UPDATE conversation SET state='wrapped', outcome=?2, tags=?3, "
		"state_at=?4, wrapped_at=?4 WHERE id=?1 AND state='ended'",
	[HL_STMT_CONV_TRANSFER] =
		"UPDATE conversation SET counsellor_id=?3, transfers=transfers+1, "
		"state_at=?4 WHERE id=?1 AND state='active' AND counsellor_id=?2",
	[HL_STMT_CONV_SUPERVISOR] =
		"UPDATE conversation SET supervisor_id=?2 WHERE id=?1 AND "
		"state IN ('queued', 'offered', 'active')",
	/* Receipts only ever move up, and never past the last event. */
	[HL_STMT_CONV_RECEIPT_CONTACT] =
		"UPDATE conversation SET "
		"contact_delivered=max(contact_delivered, min(?2, last_seq)), "
		"contact_read=max(contact_read, min(?3, last_seq)) WHERE id=?1",
	[HL_STMT_CONV_RECEIPT_STAFF] =
		"UPDATE conversation SET "
		"staff_delivered=max(staff_delivered, min(?2, last_seq)), "
		"staff_read=max(staff_read, min(?3, last_seq)) WHERE id=?1",
	[HL_STMT_SHIFT_START] =
		"INSERT INTO shift(staff_id, started_at) VALUES(?1, ?2)",
	[HL_STMT_SHIFT_END] =
		"UPDATE shift SET ended_at=?2 WHERE staff_id=?1 AND ended_at IS NULL",
	[HL_STMT_SHIFT_OPEN] =
		"SELECT staff_id, started_at FROM shift WHERE ended_at IS NULL",
	[HL_STMT_ALERT_INSERT] =
		"INSERT INTO alert(at, kind, staff_id, conversation_id) "
		"VALUES(?1, ?2, ?3, ?4)",
	/* conversation.c uses no RETURNING: measured here, a RETURNING
	 * clause (an ephemeral table per run) cost 20-30 us a statement, as
	 * much as the rest of an append; sqlite3_changes() says as much. */
	[HL_STMT_CONV_SET_SEQ] =
		"UPDATE conversation SET last_seq=?2, chain_head=?3, e2e_hello=?4, "
		"e2e_epoch=?5, e2e_next_contact=?6, e2e_next_staff=?7 WHERE id=?1 "
		"AND last_seq=?8",
	[HL_STMT_EVENT_INSERT] =
		"INSERT INTO event(conversation_id, seq, at, kind, sender, "
		"visibility, client_id, payload, chain) VALUES(?1, ?2, ?3, ?4, ?5, "
		"?6, ?7, ?8, ?9)",
	/* Without an index on client ids (0008): what dedupe.h remembers is
	 * loaded with CLIENT_IDS and checked with CLIENT_AT; FIND_CLIENT,
	 * a walk of the conversation's events, is the way when it cannot
	 * be kept in memory. */
	[HL_STMT_EVENT_FIND_CLIENT] =
		"SELECT seq, at FROM event WHERE conversation_id=?1 AND "
		"sender=?2 AND client_id=?3",
	[HL_STMT_EVENT_CLIENT_IDS] =
		"SELECT seq, sender, client_id FROM event WHERE "
		"conversation_id=?1 AND seq>?2 AND client_id IS NOT NULL",
	[HL_STMT_EVENT_CLIENT_AT] =
		"SELECT at FROM event WHERE conversation_id=?1 AND seq=?2 AND "
		"sender=?3 AND client_id=?4",
	[HL_STMT_EVENT_SINCE] =
		"SELECT seq, at, kind, sender, visibility, client_id, payload, "
		"chain FROM event WHERE conversation_id=?1 AND seq>?2 AND "
		"(?3=0 OR visibility='all') ORDER BY seq LIMIT ?4",
	[HL_STMT_EVENT_AT] =
		"SELECT payload, chain FROM event WHERE conversation_id=?1 AND "
		"seq=?2",
	[HL_STMT_REVOKED] =
		"SELECT 1 FROM revocation WHERE cert_hash=?1",
	[HL_STMT_CONV_SET_RETURN] =
		"UPDATE conversation SET return_sign_pk=?2, return_box_pk=?3 "
		"WHERE id=?1 AND return_sign_pk IS NULL",
	[HL_STMT_CONV_BY_RETURN] =
		"SELECT id FROM conversation WHERE return_sign_pk=?1",
	[HL_STMT_CONTACT_DROP_CONV] =
		"DELETE FROM contact_session WHERE conversation_id=?1",
	[HL_STMT_CHECKPOINT_PUT] =
		"INSERT OR REPLACE INTO checkpoint(conversation_id, seq, at, head, "
		"signature) VALUES(?1, ?2, ?3, ?4, ?5)",
	[HL_STMT_DEVICE_BY_CERT] =
		"SELECT id, staff_id FROM device WHERE cert_hash=?1 AND "
		"revoked_at IS NULL",
	[HL_STMT_CONTACT_PUT] =
		"INSERT INTO contact_session(resume_hash, conversation_id, "
		"created_at, last_seen, expires_at) VALUES(?1, ?2, ?3, ?3, ?4) "
		"ON CONFLICT(resume_hash) DO UPDATE SET last_seen=excluded."
		"last_seen, expires_at=excluded.expires_at WHERE "
		"conversation_id=excluded.conversation_id",
	[HL_STMT_CONTACT_FIND] =
		"SELECT conversation_id FROM contact_session WHERE "
		"resume_hash=?1 AND expires_at>?2",
	[HL_STMT_CONTACT_TOUCH] =
		"UPDATE contact_session SET last_seen=?2, expires_at=CASE WHEN "
		"?3>0 THEN ?3 ELSE expires_at END WHERE resume_hash=?1 AND "
		"expires_at>?2",
	[HL_STMT_CONTACT_DELETE] =
		"DELETE FROM contact_session WHERE resume_hash=?1",
	[HL_STMT_CONTACT_EXPIRE] =
		"DELETE FROM contact_session WHERE expires_at<=?1",
};

/* The store's own transaction control, prepared once like the rest: at 200k
 * jobs a second, parsing "SAVEPOINT" twice per job would cost real time. */
enum txn {
	TXN_BEGIN,
	TXN_COMMIT,
	TXN_ROLLBACK,
	TXN_SAVEPOINT,
	TXN_RELEASE,
	TXN_ROLLBACK_TO,
	TXN__COUNT
};

_Static_assert((int)TXN__COUNT == (int)HL_STORE_TXN__COUNT,
	       "store.h's HL_STORE_TXN__COUNT must match enum txn");

static const char *const txn_sql[TXN__COUNT] = {
	[TXN_BEGIN] = "BEGIN IMMEDIATE",
	[TXN_COMMIT] = "COMMIT",
	[TXN_ROLLBACK] = "ROLLBACK",
	[TXN_SAVEPOINT] = "SAVEPOINT job",
	[TXN_RELEASE] = "RELEASE job",
	[TXN_ROLLBACK_TO] = "ROLLBACK TO job",
};

/* ---- test builds: injected store faults ------------------------------------ */

#ifdef HL_TEST_HOOKS
/*
 * Test builds only (cmake -DHL_TEST_HOOKS=ON). When the environment variable
 * HL_TEST_STORE_FAULT names a file, the store opens its database through a
 * shim VFS over the default one, and the writer reads that file before every
 * batch: "full" makes every write to the database, its WAL or journal fail
 * as a full disk does (SQLITE_FULL, what the unix VFS returns on ENOSPC);
 * "ioerr" makes writes, truncates and fsyncs fail with an I/O error; anything
 * else (or no file) turns the fault off again. Reads are never touched, so a
 * test can fill the "disk" deterministically, check what the daemon does,
 * and give the space back without a restart.
 */
enum fault_mode { FAULT_OFF, FAULT_FULL, FAULT_IOERR };

struct hl_store_fault {
	sqlite3_vfs vfs;        /* the shim, registered under name */
	sqlite3_vfs *real;      /* the default VFS it forwards to */
	char name[48];
	char path[1024];        /* the control file */
	_Atomic int mode;       /* enum fault_mode */
};

/* One open file: ours, followed in memory by the real VFS's. */
struct fault_file {
	sqlite3_file base;
	struct hl_store_fault *f;
	sqlite3_file *real;
	bool faulty;            /* main database, WAL or journal */
};

static int fault_mode_of(sqlite3_file *file)
{
	struct fault_file *ff = (struct fault_file *)file;

	return ff->faulty ? atomic_load(&ff->f->mode) : FAULT_OFF;
}

static int ff_close(sqlite3_file *file)
{
	struct fault_file *ff = (struct fault_file *)file;

	return ff->real->pMethods->xClose(ff->real);
}

static int ff_read(sqlite3_file *file, void *buf, int n, sqlite3_int64 off)
{
	struct fault_file *ff = (struct fault_file *)file;

	return ff->real->pMethods->xRead(ff->real, buf, n, off);
}

static int ff_write(sqlite3_file *file, const void *buf, int n,
		    sqlite3_int64 off)
{
	struct fault_file *ff = (struct fault_file *)file;

	switch (fault_mode_of(file)) {
	case FAULT_FULL: return SQLITE_FULL;
	case FAULT_IOERR: return SQLITE_IOERR_WRITE;
	}
	return ff->real->pMethods->xWrite(ff->real, buf, n, off);
}

static int ff_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct fault_file *ff = (struct fault_file *)file;

	if (fault_mode_of(file) == FAULT_IOERR)
		return SQLITE_IOERR_TRUNCATE;
	return ff->real->pMethods->xTruncate(ff->real, size);
}

static int ff_sync(sqlite3_file *file, int flags)
{
	struct fault_file *ff = (struct fault_file *)file;

	if (fault_mode_of(file) == FAULT_IOERR)
		return SQLITE_IOERR_FSYNC;
	return ff->real->pMethods->xSync(ff->real, flags);
}

static int ff_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	struct fault_file *ff = (struct fault_file *)file;

	return ff->real->pMethods->xFileSize(ff->real, size);
}

static int ff_lock(sqlite3_file *file, int lock)
{
	struct fault_file *ff = (struct fault_file *)file;

	return ff->real->pMethods->xLock(ff->real, lock);
}

static int ff_unlock(sqlite3_file *file, int lock)
{
	struct fault_file *ff = (struct fault_file *)file;

	return ff->real->pMethods->xUnlock(ff->real, lock);
}

static int ff_check_reserved(sqlite3_file *file, int *out)
{
	struct fault_file *ff = (struct fault_file *)file;

	return ff->real->pMethods->xCheckReservedLock(ff->real, out);
}

static int ff_file_control(sqlite3_file *file, int op, void *arg)
{
	struct fault_file *ff = (struct fault_file *)file;

	return ff->real->pMethods->xFileControl(ff->real, op, arg);
}

static int ff_sector_size(sqlite3_file *file)
{
	struct fault_file *ff = (struct fault_file *)file;

	return ff->real->pMethods->xSectorSize(ff->real);
}

static int ff_device_chars(sqlite3_file *file)
{
	struct fault_file *ff = (struct fault_file *)file;

	return ff->real->pMethods->xDeviceCharacteristics(ff->real);
}

static int ff_shm_map(sqlite3_file *file, int pg, int pgsz, int extend,
		      void volatile **pp)
{
	struct fault_file *ff = (struct fault_file *)file;

	return ff->real->pMethods->xShmMap(ff->real, pg, pgsz, extend, pp);
}

static int ff_shm_lock(sqlite3_file *file, int off, int n, int flags)
{
	struct fault_file *ff = (struct fault_file *)file;

	return ff->real->pMethods->xShmLock(ff->real, off, n, flags);
}

static void ff_shm_barrier(sqlite3_file *file)
{
	struct fault_file *ff = (struct fault_file *)file;

	ff->real->pMethods->xShmBarrier(ff->real);
}

static int ff_shm_unmap(sqlite3_file *file, int del)
{
	struct fault_file *ff = (struct fault_file *)file;

	return ff->real->pMethods->xShmUnmap(ff->real, del);
}

static int ff_fetch(sqlite3_file *file, sqlite3_int64 off, int n, void **pp)
{
	struct fault_file *ff = (struct fault_file *)file;

	return ff->real->pMethods->xFetch(ff->real, off, n, pp);
}

static int ff_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
	struct fault_file *ff = (struct fault_file *)file;

	return ff->real->pMethods->xUnfetch(ff->real, off, p);
}

static const sqlite3_io_methods fault_io = {
	.iVersion = 3,
	.xClose = ff_close,
	.xRead = ff_read,
	.xWrite = ff_write,
	.xTruncate = ff_truncate,
	.xSync = ff_sync,
	.xFileSize = ff_file_size,
	.xLock = ff_lock,
	.xUnlock = ff_unlock,
	.xCheckReservedLock = ff_check_reserved,
	.xFileControl = ff_file_control,
	.xSectorSize = ff_sector_size,
	.xDeviceCharacteristics = ff_device_chars,
	.xShmMap = ff_shm_map,
	.xShmLock = ff_shm_lock,
	.xShmBarrier = ff_shm_barrier,
	.xShmUnmap = ff_shm_unmap,
	.xFetch = ff_fetch,
	.xUnfetch = ff_unfetch,
};

static int fault_open(sqlite3_vfs *vfs, sqlite3_filename name,
		      sqlite3_file *file, int flags, int *out_flags)
{
	struct hl_store_fault *f = vfs->pAppData;
	struct fault_file *ff = (struct fault_file *)file;
	int rc;

	memset(ff, 0, sizeof(*ff));
	ff->f = f;
	ff->real = (sqlite3_file *)(ff + 1);
	ff->faulty = (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL |
			       SQLITE_OPEN_MAIN_JOURNAL)) != 0;
	rc = f->real->xOpen(f->real, name, ff->real, flags, out_flags);
	/* SQLite calls xClose only on a file whose pMethods is set. */
	ff->base.pMethods = ff->real->pMethods ? &fault_io : NULL;
	return rc;
}

static int fault_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
	struct hl_store_fault *f = vfs->pAppData;

	return f->real->xDelete(f->real, name, sync);
}

static int fault_access(sqlite3_vfs *vfs, const char *name, int flags,
			int *out)
{
	struct hl_store_fault *f = vfs->pAppData;

	return f->real->xAccess(f->real, name, flags, out);
}

static int fault_full_pathname(sqlite3_vfs *vfs, const char *name, int n,
			       char *out)
{
	struct hl_store_fault *f = vfs->pAppData;

	return f->real->xFullPathname(f->real, name, n, out);
}

/* Reads the control file: the mode it names (no file: off). Writer thread
 * (and the loop thread in open). Logs every change of mode. */
static void fault_poll(struct hl_store *st)
{
	static const char *const names[] = {"off", "full", "ioerr"};
	struct hl_store_fault *f = st->fault;
	char buf[16] = "";
	int fd, mode = FAULT_OFF;
	ssize_t n;

	if (!f)
		return;
	fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	if (strncmp(buf, "full", 4) == 0)
		mode = FAULT_FULL;
	else if (strncmp(buf, "ioerr", 5) == 0)
		mode = FAULT_IOERR;
	if (atomic_exchange(&f->mode, mode) != mode)
		hl_warn("store.test_fault", "mode=%s", names[mode]);
}

/* With HL_TEST_STORE_FAULT set, registers the shim and sets *vfs_name to
 * it; otherwise leaves *vfs_name NULL (the default VFS). */
static int fault_setup(struct hl_store *st, const char **vfs_name, char *err,
		       size_t errlen)
{
	const char *path = getenv("HL_TEST_STORE_FAULT");
	sqlite3_vfs *real;
	struct hl_store_fault *f;

	*vfs_name = NULL;
	if (!path || !*path)
		return 0;
	real = sqlite3_vfs_find(NULL);
	f = calloc(1, sizeof(*f));
	if (!real || !f || strlen(path) >= sizeof(f->path)) {
		free(f);
		hl_set_err(err, errlen, "HL_TEST_STORE_FAULT: cannot set up");
		return HL_EINVAL;
	}
	snprintf(f->path, sizeof(f->path), "%s", path);
	snprintf(f->name, sizeof(f->name), "hl-fault-%p", (void *)st);
	f->real = real;
	/* Everything but files and names is the real VFS's own. */
	f->vfs = *real;
	f->vfs.pNext = NULL;
	f->vfs.zName = f->name;
	f->vfs.pAppData = f;
	f->vfs.szOsFile = (int)sizeof(struct fault_file) + real->szOsFile;
	f->vfs.xOpen = fault_open;
	f->vfs.xDelete = fault_delete;
	f->vfs.xAccess = fault_access;
	f->vfs.xFullPathname = fault_full_pathname;
	atomic_init(&f->mode, FAULT_OFF);
	if (sqlite3_vfs_register(&f->vfs, 0) != SQLITE_OK) {
		free(f);
		hl_set_err(err, errlen, "HL_TEST_STORE_FAULT: cannot register");
		return HL_ESTORE;
	}
	st->fault = f;
	*vfs_name = f->name;
	hl_warn("store.test_fault", "control=%s (test build: injected faults)",
		f->path);
	fault_poll(st);
	return 0;
}

/* After the connection is closed. */
static void fault_teardown(struct hl_store *st)
{
	if (!st->fault)
		return;
	sqlite3_vfs_unregister(&st->fault->vfs);
	free(st->fault);
	st->fault = NULL;
}
#else
static void fault_poll(struct hl_store *st)
{
	(void)st;
}

static int fault_setup(struct hl_store *st, const char **vfs_name, char *err,
		       size_t errlen)
{
	(void)st;
	(void)err;
	(void)errlen;
	*vfs_name = NULL;
	return 0;
}

static void fault_teardown(struct hl_store *st)
{
	(void)st;
}
#endif

/* The file name SQLite resolved for db's main database, for messages. */
static const char *db_path(sqlite3 *db)
{
	const char *f = sqlite3_db_filename(db, "main");

	return f && *f ? f : ":memory:";
}

int hl_store_step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	return rc == SQLITE_DONE ? 0 : hl_store_sqlite_status(rc);
}

int hl_store_sqlite_status(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_CONSTRAINT:
		return HL_ECONSTRAINT;
	case SQLITE_NOMEM:
		return HL_ENOMEM;
	default:
		return HL_ESTORE;
	}
}

/* Runs a statement that returns at most one row (a PRAGMA) and copies the
 * first column of that row as an int. Returns an SQLite code. */
static int query_int(sqlite3 *db, const char *sql, int *out)
{
	sqlite3_stmt *s = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		goto out;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int(s, 0);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_ERROR; /* no row: the pragma is unsupported */
	}
out:
	sqlite3_finalize(s);
	return rc;
}

/* As query_int, copying the first column as text into buf (cap bytes). */
static int query_text(sqlite3 *db, const char *sql, char *buf, size_t cap)
{
	sqlite3_stmt *s = NULL;
	const unsigned char *t;
	int rc;

	buf[0] = '\0';
	rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		goto out;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		t = sqlite3_column_text(s, 0);
		snprintf(buf, cap, "%s", t ? (const char *)t : "");
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_ERROR;
	}
out:
	sqlite3_finalize(s);
	return rc;
}

/* Steps a statement that returns no data we need, then resets it. Returns
 * SQLITE_OK or the step's error. */
static int step_once(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Checks that a migration list is usable: versions positive and strictly
 * increasing, every entry with a name and SQL. */
static int check_migrations(const struct hl_migration *m, size_t n,
			    char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		if (!m[i].name || !m[i].sql || m[i].version <= 0 ||
		    (i > 0 && m[i].version <= m[i - 1].version)) {
			hl_set_err(err, errlen,
				"migration list is invalid at entry %zu "
				"(version %d): versions must be positive and "
				"strictly increasing, each with a name and SQL",
				i, m[i].version);
			return HL_EINVAL;
		}
	}
	return 0;
}

/* HL_ESCHEMA with the message operators will see, when the database was
 * written by a newer helplined than this one. */
static int check_not_newer(sqlite3 *db, int have, int newest, char *err,
			   size_t errlen)
{
	if (have <= newest)
		return 0;
	hl_set_err(err, errlen,
		"database %s has schema version %d, newer than this helplined "
		"supports (%d): refusing to open; upgrade helplined",
		db_path(db), have, newest);
	return HL_ESCHEMA;
}

/*
 * Looks for rows that break a foreign key: table (cap bytes) receives the
 * first such table's name, or "" when there is none. Migrations run with
 * enforcement off (see hl_store_migrate), so this is where a bad one is
 * caught. Returns an SQLite code.
 */
static int find_fk_violation(sqlite3 *db, char *table, size_t cap)
{
	sqlite3_stmt *s = NULL;
	const unsigned char *t;
	int rc;

	table[0] = '\0';
	rc = sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &s, NULL);
	if (rc != SQLITE_OK)
		goto out;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		t = sqlite3_column_text(s, 0);
		snprintf(table, cap, "%s", t ? (const char *)t : "?");
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	}
out:
	sqlite3_finalize(s);
	return rc;
}

int hl_store_migrate(sqlite3 *db, const struct hl_migration *m, size_t n,
		     char *err, size_t errlen)
{
	char sql[64], bad_table[128];
	char *emsg = NULL;
	int have = 0, newest, rc, status, fk_was = 0;

	hl_set_err(err, errlen, "%s", "");
	if (!db || (n > 0 && !m)) {
		hl_set_err(err, errlen, "hl_store_migrate: invalid arguments");
		return HL_EINVAL;
	}
	status = check_migrations(m, n, err, errlen);
	if (status != 0)
		return status;
	newest = n > 0 ? m[n - 1].version : 0;

	rc = query_int(db, "PRAGMA user_version", &have);
	if (rc != SQLITE_OK)
		goto sqlite_fail;
	status = check_not_newer(db, have, newest, err, errlen);
	if (status != 0 || have == newest)
		return status;

	/* SQLite's procedure for schema changes: foreign keys off (it cannot
	 * change inside a transaction), so a migration may rebuild a table
	 * others refer to; foreign_key_check before COMMIT instead. */
	rc = query_int(db, "PRAGMA foreign_keys", &fk_was);
	if (rc == SQLITE_OK && fk_was)
		rc = sqlite3_exec(db, "PRAGMA foreign_keys=OFF", NULL, NULL,
				  NULL);
	if (rc != SQLITE_OK)
		goto sqlite_fail;
	rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto sqlite_fail;
	/* Another process may have migrated between the read above and our
	 * write lock: decide again under the lock. */
	rc = query_int(db, "PRAGMA user_version", &have);
	if (rc != SQLITE_OK)
		goto sqlite_fail;
	status = check_not_newer(db, have, newest, err, errlen);
	if (status != 0 || have == newest)
		goto out;

	for (size_t i = 0; i < n; i++) {
		if (m[i].version <= have)
			continue;
		rc = sqlite3_exec(db, m[i].sql, NULL, NULL, &emsg);
		if (rc != SQLITE_OK) {
			hl_set_err(err, errlen,
				"database %s: migration %04d_%s failed: %s; "
				"no migration was applied", db_path(db),
				m[i].version, m[i].name,
				emsg ? emsg : sqlite3_errstr(rc));
			status = HL_ESTORE;
			goto out;
		}
		if (sqlite3_get_autocommit(db)) {
			hl_set_err(err, errlen,
				"database %s: migration %04d_%s ended the "
				"migration transaction: migrations must not "
				"contain BEGIN, COMMIT or ROLLBACK",
				db_path(db), m[i].version, m[i].name);
			status = HL_ESTORE;
			goto out;
		}
	}
	rc = find_fk_violation(db, bad_table, sizeof(bad_table));
	if (rc != SQLITE_OK)
		goto sqlite_fail;
	if (bad_table[0]) {
		hl_set_err(err, errlen,
			"database %s: migrations to version %d leave rows in "
			"table %s that break a foreign key; no migration was "
			"applied", db_path(db), newest, bad_table);
		status = HL_ESTORE;
		goto out;
	}
	/* PRAGMA takes no parameters; an int formatted by us is safe. */
	snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", newest);
	rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto sqlite_fail;
	hl_info("store.migrated", "from=%d to=%d", have, newest);
	goto out;

sqlite_fail:
	hl_set_err(err, errlen, "database %s: migration failed: %s", db_path(db),
		sqlite3_errmsg(db));
	status = HL_ESTORE;
out:
	sqlite3_free(emsg);
	if (status != 0 && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	if (fk_was)
		sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL);
	return status;
}

/*
 * Creates the database file with mode 0600 if it does not exist yet, so it
 * is never readable by others (SQLite gives the -wal and -shm files the mode
 * of the database file), without touching the process-wide umask that other
 * threads may rely on. An existing file is left as it is.
 */
static int create_file(const char *path, char *err, size_t errlen)
{
	struct stat sb;
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		hl_set_err(err, errlen, "cannot open database %s: %s", path,
			strerror(errno));
		return HL_EIO;
	}
	if (fstat(fd, &sb) == 0 && (sb.st_mode & 077))
		hl_warn("store.file_mode", "mode=%03o expected=600",
			(unsigned)(sb.st_mode & 0777));
	/* Closed before SQLite opens the file: closing any descriptor of a
	 * file drops the process's POSIX locks on it. */
	close(fd);
	return 0;
}

/* Sets the connection's durability and safety settings and checks that they
 * took. Returns 0 or HL_ESTORE with a message. */
static int configure(sqlite3 *db, int busy_ms, char *err, size_t errlen)
{
	char mode[16];
	int rc, on = 0;

	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, busy_ms);
	/* Hardening: no schema tampering through writable_schema, no SQL
	 * functions run from the schema, no "double-quoted" string literals. */
	sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DDL, 0, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DML, 0, NULL);

	rc = query_text(db, "PRAGMA journal_mode=WAL", mode, sizeof(mode));
	if (rc != SQLITE_OK)
		goto fail;
	if (strcasecmp(mode, "wal") != 0) {
		hl_set_err(err, errlen,
			"database %s: cannot use WAL journal mode (got \"%s\"); "
			"the database must be a file on a local file system",
			db_path(db), mode);
		return HL_ESTORE;
	}
	rc = sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	/* A page cache of up to 64 MiB (SQLite's default is 2 MiB, grown on
	 * use): a group commit of a few hundred messages dirties a few
	 * hundred pages, and with the default cache SQLite spilled them to
	 * the WAL mid-transaction and read evicted index pages back. */
	rc = sqlite3_exec(db, "PRAGMA cache_size=-65536", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	rc = sqlite3_exec(db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = query_int(db, "PRAGMA foreign_keys", &on);
	if (rc != SQLITE_OK)
		goto fail;
	if (!on) {
		hl_set_err(err, errlen, "database %s: foreign keys unsupported",
			db_path(db));
		return HL_ESTORE;
	}
	return 0;
fail:
	hl_set_err(err, errlen, "database %s: cannot configure: %s", db_path(db),
		sqlite3_errmsg(db));
	return HL_ESTORE;
}

/* Prepares n statements from sql[] into out[] for the life of the store. */
static int prepare_all(sqlite3 *db, const char *const *sql, size_t n,
		       sqlite3_stmt **out, const char *what, char *err,
		       size_t errlen)
{
	int rc;

	for (size_t i = 0; i < n; i++) {
		if (!sql[i]) {
			hl_set_err(err, errlen, "%s statement %zu has no SQL "
				"(add it to the table in store.c)", what, i);
			return HL_EINVAL;
		}
		rc = sqlite3_prepare_v3(db, sql[i], -1,
					SQLITE_PREPARE_PERSISTENT, &out[i],
					NULL);
		if (rc != SQLITE_OK) {
			hl_set_err(err, errlen,
				"database %s: cannot prepare %s statement %zu: "
				"%s", db_path(db), what, i, sqlite3_errmsg(db));
			return HL_ESTORE;
		}
	}
	return 0;
}

/*
 * Resets the statements a job stepped and clears their bindings, so a job
 * that returned early (mid-step) cannot keep a read open or block COMMIT,
 * and no value it bound reaches the next job. With all, every statement.
 *
 * Why not simply all of them after every job: with a few dozen statements
 * that costs over a microsecond per job (measured), a large share of the
 * writer's budget at 100k+ jobs a second. A statement's VM step counter,
 * which reset does not clear, moves whenever it was stepped: comparing it is
 * a few nanoseconds. A statement bound but never stepped is missed here and
 * cleared at the end of the batch (all).
 */
static void reset_job_stmts(struct hl_store *st, bool all)
{
	sqlite3_stmt *s;
	uint32_t steps;

	for (size_t i = 0; i < HL_STMT__COUNT; i++) {
		s = st->stmts[i];
		steps = (uint32_t)sqlite3_stmt_status(s,
						      SQLITE_STMTSTATUS_VM_STEP,
						      0);
		if (!all && steps == st->stmt_steps[i])
			continue;
		st->stmt_steps[i] = steps;
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
}

/* Writes the conversation rows the last run of append-only jobs changed
 * (convtail.h), inside the batch's transaction but outside any job's
 * savepoint: they belong to jobs that succeeded. Returns 0, or a status
 * after which the batch must not commit. */
static int flush_tails(struct hl_store *st)
{
	int status;

	if (st->tails.n == 0)
		return 0;
	status = hl_conv_tails_flush(st->stmts);
	if (status != 0)
		hl_error("store.tails_failed", "status=%d", status);
	return status;
}

/*
 * Runs one job inside its own savepoint and sets its status. Returns
 * SQLITE_OK, or the SQLite code of a failure that broke the batch's
 * transaction (which then cannot commit).
 */
/* In debug builds: that an append-only job left no statement stepped and
 * not reset (conversation.c resets each one it steps), since run_job does
 * not look for one after such a job. */
static void assert_none_busy(struct hl_store *st)
{
#ifndef NDEBUG
	for (size_t i = 0; i < HL_STMT__COUNT; i++)
		assert(!sqlite3_stmt_busy(st->stmts[i]));
#else
	(void)st;
#endif
}

/* Opens the running job's savepoint unless it has one: the SQLite code. */
static int open_savepoint(struct hl_store *st)
{
	int rc;

	if (st->job_savepoint)
		return SQLITE_OK;
	rc = step_once(st->txn[TXN_SAVEPOINT]);
	st->job_savepoint = rc == SQLITE_OK;
	return rc;
}

int hl_store_job_savepoint(sqlite3_stmt *const *stmts)
{
	struct hl_store *st = hl_container_of(stmts, struct hl_store, stmts[0]);

	return open_savepoint(st) == SQLITE_OK ? 0 : HL_ESTORE;
}

static int run_job(struct hl_store *st, struct hl_store_job *job)
{
	int rc, status, cur = 0, hi = 0;
	int64_t changes = 0;

	/* Any other job may read or write the rows the appends before it
	 * changed only in memory: they are written first. */
	if (!job->append_only && flush_tails(st) != 0)
		return SQLITE_ERROR;
	/* An append-only job opens its savepoint itself if it needs one
	 * (hl_store_job_savepoint); most write one row and need none. */
	st->job_savepoint = false;
	if (job->append_only) {
		changes = sqlite3_total_changes64(st->db);
		hl_convtail_begin_job(&st->tails);
	} else {
		rc = open_savepoint(st);
		if (rc != SQLITE_OK)
			return rc;
	}
	st->tails.active = job->append_only;
	status = job->exec(job, st->db, st->stmts);
	st->tails.active = false;
	/* A job's statements, reset; an append-only job's are already (and
	 * the batch resets them all at its end): checking every statement
	 * after each message was ~0.35 us of it (hl-store-bench). */
	if (job->append_only)
		assert_none_busy(st);
	else
		reset_job_stmts(st, false);
	if (status > 0)
		status = 0;
	if (sqlite3_get_autocommit(st->db)) {
		/* The transaction is gone: SQLite rolled it back (SQLITE_FULL,
		 * IOERR, ...), or the job ended it itself. */
		rc = sqlite3_extended_errcode(st->db);
		return rc != SQLITE_OK ? rc : SQLITE_ABORT;
	}
	/* A deferred foreign key left unresolved would only fail at COMMIT,
	 * taking the whole batch with it: charge it to this job instead. */
	if (status == 0 &&
	    sqlite3_db_status(st->db, SQLITE_DBSTATUS_DEFERRED_FKS, &cur, &hi,
			      0) == SQLITE_OK && cur > 0)
		status = HL_ECONSTRAINT;
	if (status < 0 && !st->job_savepoint &&
	    sqlite3_total_changes64(st->db) != changes) {
		/* Written, then failed, with nothing to take it back: only
		 * the whole batch can be. */
		hl_error("store.job_unsaved", "status=%d", status);
		return SQLITE_ABORT;
	}
	if (status < 0 && st->job_savepoint) {
		rc = step_once(st->txn[TXN_ROLLBACK_TO]);
		if (rc != SQLITE_OK)
			return rc;
	}
	if (status < 0 && job->append_only)
		hl_convtail_undo_job(&st->tails);
	if (st->job_savepoint) {
		st->job_savepoint = false;
		rc = step_once(st->txn[TXN_RELEASE]);
		if (rc != SQLITE_OK)
			return rc;
	}
	job->status = status;
	return SQLITE_OK;
}

/*
 * Runs a batch (a NULL-terminated list of n jobs) in one transaction and sets
 * every job's status. If the transaction cannot begin or commit, every job of
 * the batch gets HL_ESTORE, even those whose exec succeeded: nothing is
 * acknowledged unless it committed. Returns true when it committed.
 */
static bool run_batch(struct hl_store *st, struct hl_store_job *head,
		      uint32_t n)
{
	const char *stage = "begin";
	int rc;

	rc = step_once(st->txn[TXN_BEGIN]);
	if (rc != SQLITE_OK)
		goto fail;
	stage = "job";
	for (struct hl_store_job *j = head; j; j = j->next) {
		rc = run_job(st, j);
		if (rc != SQLITE_OK)
			goto fail;
	}
	stage = "tails";
	if (flush_tails(st) != 0) {
		rc = SQLITE_ERROR;
		goto fail;
	}
	reset_job_stmts(st, true);
	stage = "commit";
	rc = step_once(st->txn[TXN_COMMIT]);
	if (rc != SQLITE_OK)
		goto fail;
	return true;

fail:
	/* What the tails held is rolled back with the rows. */
	hl_convtail_clear(&st->tails);
	/* A failed COMMIT may leave the transaction open (SQLITE_BUSY) or
	 * have rolled it back already (SQLITE_FULL, a commit hook). */
	reset_job_stmts(st, true);
	if (!sqlite3_get_autocommit(st->db))
		step_once(st->txn[TXN_ROLLBACK]);
	for (struct hl_store_job *j = head; j; j = j->next)
		j->status = HL_ESTORE;
	hl_error("store.commit_failed", "rc=%d batch=%u stage=%s", rc, n,
		 stage);
	return false;
}

const double hl_store_commit_le[HL_STORE_COMMIT_LE_N] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
const double hl_store_size_le[HL_STORE_SIZE_LE_N] = {
	1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};

/* Seconds on the monotonic clock (writer thread: no uv_now there). */
static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Counts v in the first bucket whose bound is >= v (bucket[n]: above all).
 * Under st->mu. */
static void bucket_add(uint64_t *bucket, const double *le, uint32_t n,
		       double v)
{
	uint32_t i = 0;

	while (i < n && v > le[i])
		i++;
	bucket[i]++;
}

/* The writer's commit hook: remembers how big the WAL is (in frames). */
static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
	(void)db;
	(void)name;
	((struct hl_store *)arg)->wal_frames = frames;
	return SQLITE_OK;
}

/* One PASSIVE checkpoint on db, counted (by the checkpointer thread, or
 * the writer itself) and a failure other than busy logged. Returns the
 * SQLite code. */
static int checkpoint(struct hl_store *st, sqlite3 *db, bool by_writer)
{
	int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE,
					   NULL, NULL);
	bool failed = rc != SQLITE_OK && rc != SQLITE_BUSY;

	pthread_mutex_lock(&st->mu);
	if (by_writer)
		st->stats.checkpoints_inline++;
	else
		st->stats.checkpoints++;
	st->stats.checkpoint_failures += failed;
	pthread_mutex_unlock(&st->mu);
	if (failed)
		hl_warn("store.checkpoint_failed", "rc=%d by=%s", rc,
			by_writer ? "writer" : "checkpointer");
	return rc;
}

/*
 * The checkpointer thread: on each wake-up copies what the WAL holds into
 * the database file (PASSIVE: it never waits for, nor blocks, the writer),
 * then sleeps. Exits when ckpt_stopping is set.
 */
static void *checkpointer_main(void *arg)
{
	struct hl_store *st = arg;

#ifdef __linux__
	prctl(PR_SET_NAME, "hl-checkpoint", 0, 0, 0);
#endif
	for (;;) {
		pthread_mutex_lock(&st->mu);
		while (!st->ckpt_wanted && !st->ckpt_stopping)
			pthread_cond_wait(&st->ckpt_cv, &st->mu);
		if (st->ckpt_stopping) {
			pthread_mutex_unlock(&st->mu);
			break;
		}
		st->ckpt_wanted = false;
		pthread_mutex_unlock(&st->mu);
		checkpoint(st, st->ckpt_db, false);
	}
	return NULL;
}

/*
 * After a batch's jobs are on their way to the loop: wakes the checkpointer
 * when the WAL has grown past HL_STORE_WAL_SOFT frames. Under steady load
 * the WAL cannot restart while the checkpointer trails the writer, so past
 * HL_STORE_WAL_HARD frames the writer checkpoints itself (between batches:
 * most frames are already copied, and the next transaction then restarts
 * the WAL from its beginning). Writer thread.
 */
static void checkpoint_after_batch(struct hl_store *st)
{
	if (st->wal_frames < st->wal_kicked)
		st->wal_kicked = 0; /* the WAL restarted from its beginning */
	if (st->wal_frames - st->wal_kicked < HL_STORE_WAL_SOFT)
		return;
	if (st->wal_frames < HL_STORE_WAL_HARD && st->ckpt_db) {
		/* Once per HL_STORE_WAL_SOFT new frames: each checkpoint
		 * copies every page the WAL holds, hot ones again and again. */
		st->wal_kicked = st->wal_frames;
		pthread_mutex_lock(&st->mu);
		st->ckpt_wanted = true;
		pthread_cond_signal(&st->ckpt_cv);
		pthread_mutex_unlock(&st->mu);
		return;
	}
	if (checkpoint(st, st->db, true) == SQLITE_OK)
		st->wal_frames = st->wal_kicked = 0;
}

/* The writer thread: takes up to batch_max jobs at a time off the in queue,
 * commits them as one transaction, and queues them for the loop. Exits when
 * stopping is set and the in queue is empty. */
static void *writer_main(void *arg)
{
	struct hl_store *st = arg;
	struct hl_store_job *head, *tail;
	uint64_t ok;
	uint32_t n, max;
	bool committed;
	double t0, t1;
	struct hl_walbuf_stats wal;

#ifdef __linux__
	prctl(PR_SET_NAME, "hl-store", 0, 0, 0);
#endif
	for (;;) {
		pthread_mutex_lock(&st->mu);
		while (!st->in_head && !st->stopping)
			pthread_cond_wait(&st->cv, &st->mu);
		if (!st->in_head) {
			pthread_mutex_unlock(&st->mu);
			break;
		}
		head = st->in_head;
		/* After a failed batch, one job per transaction for a while:
		 * a job that cannot be stored (disk full, I/O error) then
		 * fails alone, and reads and jobs that fit still succeed. */
		max = st->solo ? 1 : (uint32_t)st->batch_max;
		if (st->in_count <= max) {
			tail = st->in_tail;
			n = st->in_count;
		} else {
			tail = head;
			for (n = 1; n < max; n++)
				tail = tail->next;
		}
		st->in_head = tail->next;
		if (!st->in_head)
			st->in_tail = NULL;
		tail->next = NULL;
		st->in_count -= n;
		st->stats.queued = st->in_count;
		pthread_mutex_unlock(&st->mu);

		fault_poll(st);
		t0 = mono_s();
		committed = run_batch(st, head, n);
		t1 = mono_s();
		ok = 0;
		for (struct hl_store_job *j = head; j; j = j->next)
			ok += j->status == 0;
		if (!committed)
			st->solo = SOLO_AFTER_FAILURE;
		else if (st->solo)
			st->solo--;

		hl_walbuf_stats(st->walbuf, &wal);
		pthread_mutex_lock(&st->mu);
		st->stats.wal_bytes = wal.bytes;
		st->stats.wal_writes = wal.flushes;
		st->stats.batches++;
		st->stats.commit_failures += !committed;
		st->stats.jobs_committed += ok;
		st->stats.jobs_failed += n - ok;
		if (n > st->stats.max_batch)
			st->stats.max_batch = n;
		bucket_add(st->stats.commit_bucket, hl_store_commit_le,
			   HL_STORE_COMMIT_LE_N, t1 - t0);
		st->stats.commit_seconds_sum += t1 > t0 ? t1 - t0 : 0;
		bucket_add(st->stats.size_bucket, hl_store_size_le,
			   HL_STORE_SIZE_LE_N, (double)n);
		st->stats.size_jobs_sum += n;
		if (st->out_tail)
			st->out_tail->next = head;
		else
			st->out_head = head;
		st->out_tail = tail;
		pthread_mutex_unlock(&st->mu);
		/* Coalesces: one callback may deliver several batches. */
		uv_async_send(&st->async);
		checkpoint_after_batch(st);
	}
	return NULL;
}

/*
 * Calls done for finished jobs, in submission order, on the loop thread. With
 * all false it delivers what the writer had finished when called (so a busy
 * writer cannot hold the loop here); with all true, until both queues are
 * empty (only after the writer is joined). A done callback may submit, or
 * even close the store: jobs being delivered stay in st->dl_head, so a nested
 * call carries on in order.
 */
static void deliver(struct hl_store *st, bool all)
{
	struct hl_store_job *job;
	bool took = false;

	for (;;) {
		if (!st->dl_head) {
			if ((took && !all) || !st->sync_init)
				break;
			pthread_mutex_lock(&st->mu);
			st->dl_head = st->out_head;
			st->out_head = st->out_tail = NULL;
			pthread_mutex_unlock(&st->mu);
			took = true;
			if (!st->dl_head)
				break;
		}
		job = st->dl_head;
		st->dl_head = job->next;
		job->next = NULL;
		job->done(job, job->status);
	}
}

static void on_async(uv_async_t *handle)
{
	deliver(hl_container_of(handle, struct hl_store, async), false);
}

/* Stops and joins the writer. Loop thread. */
static void stop_writer(struct hl_store *st)
{
	if (!st->thread_started)
		return;
	pthread_mutex_lock(&st->mu);
	st->stopping = true;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
	pthread_join(st->thread, NULL);
	st->thread_started = false;
}

/* Opens the checkpointer's connection and starts its thread, then turns
 * the writer's automatic checkpoints (which run inside COMMIT) into a
 * commit hook. Needs mu and ckpt_cv; before the writer starts. */
static int start_checkpointer(struct hl_store *st, const char *path,
			      const char *vfs, int busy_ms, char *err,
			      size_t errlen)
{
	int rc, status;

	rc = sqlite3_open_v2(path, &st->ckpt_db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, vfs);
	if (rc != SQLITE_OK) {
		hl_set_err(err, errlen, "cannot open database %s for "
			   "checkpoints: %s", path,
			   st->ckpt_db ? sqlite3_errmsg(st->ckpt_db)
				       : sqlite3_errstr(rc));
		status = HL_ESTORE;
		goto fail;
	}
	status = configure(st->ckpt_db, busy_ms, err, errlen);
	if (status != 0)
		goto fail;
	sqlite3_wal_autocheckpoint(st->ckpt_db, 0);
	rc = pthread_create(&st->ckpt_thread, NULL, checkpointer_main, st);
	if (rc != 0) {
		hl_set_err(err, errlen, "database %s: cannot start the "
			   "checkpointer: %s", path, strerror(rc));
		status = HL_EIO;
		goto fail;
	}
	st->ckpt_started = true;
	/* Replaces SQLite's autocheckpoint, which is itself a WAL hook. */
	sqlite3_wal_hook(st->db, on_wal_commit, st);
	return 0;
fail:
	sqlite3_close(st->ckpt_db);
	st->ckpt_db = NULL;
	return status;
}

/* Stops and joins the checkpointer and closes its connection. */
static void stop_checkpointer(struct hl_store *st)
{
	if (st->ckpt_started) {
		pthread_mutex_lock(&st->mu);
		st->ckpt_stopping = true;
		pthread_cond_signal(&st->ckpt_cv);
		pthread_mutex_unlock(&st->mu);
		pthread_join(st->ckpt_thread, NULL);
		st->ckpt_started = false;
	}
	if (st->ckpt_db) {
		if (sqlite3_close(st->ckpt_db) != SQLITE_OK)
			hl_error("store.close_failed", "rc=%d by=checkpointer",
				 sqlite3_errcode(st->ckpt_db));
		st->ckpt_db = NULL;
	}
}

/* After the writer's connection is closed: its VFS, then the one below. */
static void vfs_teardown(struct hl_store *st)
{
	hl_walbuf_close(st->walbuf);
	st->walbuf = NULL;
	fault_teardown(st);
}

/* Finalizes the statements, checkpoints and closes the connection. */
static void close_db(struct hl_store *st)
{
	int rc;

	for (size_t i = 0; i < HL_STMT__COUNT; i++) {
		sqlite3_finalize(st->stmts[i]);
		st->stmts[i] = NULL;
	}
	for (size_t i = 0; i < TXN__COUNT; i++) {
		sqlite3_finalize(st->txn[i]);
		st->txn[i] = NULL;
	}
	if (!st->db) {
		vfs_teardown(st);
		return;
	}
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	/* Leave an empty WAL behind, so a copy of the main file alone is
	 * complete. (A no-op on a database not in WAL mode.) */
	sqlite3_busy_timeout(st->db, CLOSE_BUSY_TIMEOUT_MS);
	rc = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
				       NULL, NULL);
	if (rc != SQLITE_OK)
		hl_warn("store.checkpoint_failed", "rc=%d", rc);
	rc = sqlite3_close(st->db);
	if (rc != SQLITE_OK)
		hl_error("store.close_failed", "rc=%d", rc);
	st->db = NULL;
	vfs_teardown(st);
}

int hl_store_open(struct hl_store *st, uv_loop_t *loop, const char *path,
		  const struct hl_store_opts *opts, char *err, size_t errlen)
{
	struct hl_store_opts o;
	const struct hl_migration *mig;
	const char *vfs;
	size_t nmig;
	int rc, status, have = 0, newest;

	if (!st)
		return HL_EINVAL;
	memset(st, 0, sizeof(*st));
	memset(&o, 0, sizeof(o));
	hl_set_err(err, errlen, "%s", "");
	if (opts)
		o = *opts;
	if (!loop || !path || !*path || o.batch_max < 0 || o.queue_max < 0 ||
	    o.busy_timeout_ms < 0 || (o.migrations_count > 0 && !o.migrations)) {
		hl_set_err(err, errlen, "hl_store_open: invalid arguments");
		return HL_EINVAL;
	}
	status = hl_dedupe_init(&st->dedupe, DEDUPE_MAX_UNITS);
	if (status != 0)
		return status;
	st->batch_max = o.batch_max ? o.batch_max : DEFAULT_BATCH_MAX;
	st->queue_max = o.queue_max ? o.queue_max : DEFAULT_QUEUE_MAX;
	mig = o.migrations ? o.migrations : hl_migrations;
	nmig = o.migrations ? o.migrations_count : hl_migrations_count;
	newest = nmig > 0 ? mig[nmig - 1].version : 0;

	status = check_migrations(mig, nmig, err, errlen);
	if (status != 0)
		return status;
	/* No allocation statistics: with them SQLite takes a global mutex on
	 * every malloc (1.5% of the relay's CPU in its profile). Only
	 * possible before SQLite initialises; later calls (a second store in
	 * one process) are refused with SQLITE_MISUSE, harmlessly. */
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	status = create_file(path, err, errlen);
	if (status != 0)
		return status;

	status = fault_setup(st, &vfs, err, errlen);
	if (status != 0)
		return status;
	/* The writer's connection writes a commit's WAL frames in a few
	 * large writes (walbuf.h); the checkpointer's, which never writes the WAL, opens
	 * the VFS below. */
	status = hl_walbuf_open(&st->walbuf, vfs, WALBUF_MAX);
	if (status != 0) {
		hl_set_err(err, errlen, "database %s: cannot set up the WAL "
			   "write buffer", path);
		fault_teardown(st);
		return status;
	}
	rc = sqlite3_open_v2(path, &st->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			     SQLITE_OPEN_NOMUTEX, hl_walbuf_name(st->walbuf));
	if (rc != SQLITE_OK) {
		hl_set_err(err, errlen, "cannot open database %s: %s", path,
			st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		status = HL_ESTORE;
		goto fail;
	}
	/* Refuse a newer database before anything writes to it: even the
	 * switch to WAL rewrites its header. */
	sqlite3_busy_timeout(st->db, o.busy_timeout_ms ? o.busy_timeout_ms :
			     DEFAULT_BUSY_TIMEOUT_MS);
	rc = query_int(st->db, "PRAGMA user_version", &have);
	if (rc != SQLITE_OK) {
		hl_set_err(err, errlen, "cannot read database %s: %s", path,
			sqlite3_errmsg(st->db));
		status = HL_ESTORE;
		goto fail;
	}
	status = check_not_newer(st->db, have, newest, err, errlen);
	if (status != 0)
		goto fail;
	status = configure(st->db, o.busy_timeout_ms ? o.busy_timeout_ms :
			   DEFAULT_BUSY_TIMEOUT_MS, err, errlen);
	if (status != 0)
		goto fail;
	status = hl_store_migrate(st->db, mig, nmig, err, errlen);
	if (status != 0)
		goto fail;
	st->schema_version = newest;
	status = prepare_all(st->db, stmt_sql, HL_STMT__COUNT, st->stmts,
			     "store", err, errlen);
	if (status == 0)
		status = prepare_all(st->db, txn_sql, TXN__COUNT, st->txn,
				     "transaction", err, errlen);
	if (status != 0)
		goto fail;

	rc = pthread_mutex_init(&st->mu, NULL);
	if (rc != 0)
		goto fail_os;
	rc = pthread_cond_init(&st->cv, NULL);
	if (rc != 0) {
		pthread_mutex_destroy(&st->mu);
		goto fail_os;
	}
	rc = pthread_cond_init(&st->ckpt_cv, NULL);
	if (rc != 0) {
		pthread_cond_destroy(&st->cv);
		pthread_mutex_destroy(&st->mu);
		goto fail_os;
	}
	st->sync_init = true;
	status = start_checkpointer(st, path, vfs, o.busy_timeout_ms ?
				    o.busy_timeout_ms : DEFAULT_BUSY_TIMEOUT_MS,
				    err, errlen);
	if (status != 0)
		goto fail;
	st->loop = loop;
	/* The thread starts before the async handle exists, because a uv
	 * handle cannot be undone without running the loop; the writer only
	 * touches the handle after a batch, and no job can be submitted
	 * before this function returns. */
	rc = pthread_create(&st->thread, NULL, writer_main, st);
	if (rc != 0)
		goto fail_os;
	st->thread_started = true;
	rc = uv_async_init(loop, &st->async, on_async);
	if (rc != 0) {
		hl_set_err(err, errlen, "database %s: cannot start the writer: %s",
			path, uv_strerror(rc));
		status = HL_EIO;
		goto fail;
	}
	st->async_open = true;
	hl_info("store.open", "schema=%d batch_max=%d queue_max=%d",
		st->schema_version, st->batch_max, st->queue_max);
	return 0;

fail_os:
	/* pthread functions return the error number, they do not set errno. */
	hl_set_err(err, errlen, "database %s: cannot start the writer: %s", path,
		strerror(rc));
	status = HL_EIO;
fail:
	stop_writer(st);
	stop_checkpointer(st);
	if (st->sync_init) {
		pthread_cond_destroy(&st->cv);
		pthread_cond_destroy(&st->ckpt_cv);
		pthread_mutex_destroy(&st->mu);
	}
	close_db(st);
	hl_dedupe_free(&st->dedupe);
	hl_heads_free(&st->heads);
	hl_convtail_free(&st->tails);
	memset(st, 0, sizeof(*st));
	return status;
}

int hl_store_submit(struct hl_store *st, struct hl_store_job *job)
{
	int status = 0;

	if (!job || !job->exec || !job->done)
		return HL_EINVAL;
	if (!st->thread_started)
		return HL_ECLOSED;
	job->next = NULL;
	job->status = 0;
	pthread_mutex_lock(&st->mu);
	if (st->stopping) {
		status = HL_ECLOSED;
	} else if (st->in_count >= (uint32_t)st->queue_max) {
		status = HL_EFULL;
	} else {
		if (st->in_tail)
			st->in_tail->next = job;
		else
			st->in_head = job;
		st->in_tail = job;
		st->in_count++;
		st->stats.jobs_submitted++;
		st->stats.queued = st->in_count;
		/* The writer waits only on an empty queue. */
		if (st->in_count == 1)
			pthread_cond_signal(&st->cv);
	}
	pthread_mutex_unlock(&st->mu);
	return status;
}

void hl_store_close(struct hl_store *st)
{
	struct hl_store_job *j;

	if (!st)
		return;
	stop_writer(st);
	stop_checkpointer(st);
	if (st->sync_init) {
		/* The writer leaves only on an empty in queue; anything still
		 * there was never run. Answer it rather than drop it. */
		pthread_mutex_lock(&st->mu);
		st->stopping = true;
		while ((j = st->in_head) != NULL) {
			st->in_head = j->next;
			j->next = NULL;
			j->status = HL_ECLOSED;
			st->stats.jobs_failed++;
			if (st->out_tail)
				st->out_tail->next = j;
			else
				st->out_head = j;
			st->out_tail = j;
		}
		st->in_tail = NULL;
		st->in_count = 0;
		st->stats.queued = 0;
		pthread_mutex_unlock(&st->mu);
	}
	deliver(st, true);
	/* A done callback may have closed the store already. */
	if (st->sync_init) {
		st->sync_init = false;
		pthread_cond_destroy(&st->cv);
		pthread_cond_destroy(&st->ckpt_cv);
		pthread_mutex_destroy(&st->mu);
	}
	if (st->db) {
		close_db(st);
		hl_info("store.closed", "batches=%llu commit_failures=%llu",
			(unsigned long long)st->stats.batches,
			(unsigned long long)st->stats.commit_failures);
	}
	hl_dedupe_free(&st->dedupe);
	hl_heads_free(&st->heads);
	hl_convtail_free(&st->tails);
	if (st->async_open) {
		st->async_open = false;
		uv_close((uv_handle_t *)&st->async, NULL);
	}
}

void hl_store_stats(struct hl_store *st, struct hl_store_stats *out)
{
	if (!st->sync_init) {
		*out = st->stats;
		return;
	}
	pthread_mutex_lock(&st->mu);
	*out = st->stats;
	pthread_mutex_unlock(&st->mu);
}

struct hl_dedupe *hl_store_dedupe(sqlite3_stmt *const *stmts)
{
	/* Every statement array handed to a job is a store's own stmts. */
	return &hl_container_of(stmts, struct hl_store, stmts[0])->dedupe;
}

struct hl_heads *hl_store_heads(sqlite3_stmt *const *stmts)
{
	return &hl_container_of(stmts, struct hl_store, stmts[0])->heads;
}

struct hl_convtails *hl_store_tails(sqlite3_stmt *const *stmts)
{
	return &hl_container_of(stmts, struct hl_store, stmts[0])->tails;
}

int hl_store_ping(struct hl_store *st)
{
	bool up;

	if (!st->thread_started)
		return HL_ECLOSED;
	pthread_mutex_lock(&st->mu);
	up = !st->stopping;
	pthread_mutex_unlock(&st->mu);
	return up ? 0 : HL_ECLOSED;
}

int hl_store_column_text(sqlite3_stmt *s, int col, char *dst, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	size_t n = (size_t)sqlite3_column_bytes(s, col);

	if (!t) {
		dst[0] = '\0';
		return 0;
	}
	if (n >= cap || memchr(t, '\0', n))
		return HL_ESTORE;
	memcpy(dst, t, n);
	dst[n] = '\0';
	return 0;
}
