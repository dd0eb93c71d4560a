/* migrations.h: the schema migrations embedded from schema/ at build time. */
#ifndef HL_MIGRATIONS_H
#define HL_MIGRATIONS_H

#include <stddef.h>

/* One schema/NNNN_name.sql file: version NNNN, its name and its SQL text. */
struct hl_migration {
	int version;      /* NNNN from the file name; strictly increasing */
	const char *name; /* the part after the underscore */
	const char *sql;  /* the whole file */
};

/* Every migration, in ascending version order (generated). */
extern const struct hl_migration hl_migrations[];
/* Number of entries in hl_migrations. */
extern const size_t hl_migrations_count;

#endif
