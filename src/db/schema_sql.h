/* The schema texts of schema_sql.c. */
#ifndef BBM_DB_SCHEMA_SQL_H
#define BBM_DB_SCHEMA_SQL_H

extern const char db_sql_sqlite_create[], db_sql_pg_create[];
/* Migration 067: the codebase tables. */
extern const char db_sql_sqlite_067[], db_sql_pg_067[];

#endif
