/* row.h: owns turning a column of an SQLite result row into a JSON value
 * for a reply: NULL becomes null, text a string, an integer a number, a
 * blob base64url (hl_proto_b64_json). Any thread that holds the
 * statement (the store's writer, in practice). */
#ifndef HL_ROW_H
#define HL_ROW_H

#include <jansson.h>
#include <sqlite3.h>

json_t *hl_row_text(sqlite3_stmt *st, int i);
json_t *hl_row_int(sqlite3_stmt *st, int i);
json_t *hl_row_b64(sqlite3_stmt *st, int i);

#endif
