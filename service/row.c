/* row.c: SQLite result columns as JSON values (row.h). */
#include "row.h"

#include <stddef.h>

#include "protocol.h"

json_t *hl_row_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? json_string((const char *)t) : json_null();
}

json_t *hl_row_int(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL
		       ? json_null() : json_integer(sqlite3_column_int64(st, i));
}

json_t *hl_row_b64(sqlite3_stmt *st, int i)
{
	json_t *j;

	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return json_null();
	j = hl_proto_b64_json(sqlite3_column_blob(st, i),
			      (size_t)sqlite3_column_bytes(st, i));
	return j ? j : json_null();
}
