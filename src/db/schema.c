/*
 * Which database is this, and bringing it to Buildbot 4.3 (alembic 067):
 * an empty database gets the whole schema; a Buildbot 3.x database (059,
 * or a legacy migrate_version at 58) gets migrations 060..067 in one
 * transaction, keeping every row and id; a newer or foreign database is
 * refused untouched.
 */
#include "db/db.h"
#include "db/schema_sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_version(struct db *db, char **version, char **cause)
{
    struct db_res *r = db_query(db, "SELECT version_num FROM alembic_version", NULL, 0, cause);
    if (r == NULL)
        return -1;
    *version = db_res_rows(r) > 0 ? xstrdup(db_res_text(r, 0, 0)) : NULL;
    db_res_free(r);
    return 0;
}

static int count_tables(struct db *db, char **cause)
{
    const char *sql = db_kind(db) == DB_SQLITE
                          ? "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                          : "SELECT count(*) FROM information_schema.tables "
                            "WHERE table_schema = current_schema()";
    struct db_res *r = db_query(db, sql, NULL, 0, cause);
    if (r == NULL)
        return -1;
    int n = (int)db_res_int(r, 0, 0);
    db_res_free(r);
    return n;
}

static int legacy_state(struct db *db, char **version, char **cause)
{
    struct db_res *r = db_query(db, "SELECT version FROM migrate_version", NULL, 0, cause);
    if (r == NULL)
        return -1;
    long long v = db_res_rows(r) > 0 ? db_res_int(r, 0, 0) : -1;
    db_res_free(r);
    if (v == 58) {
        *version = xstrdup("058");
        util_cause(cause, "database is a Buildbot 2.x/3.x database (migrate_version 58); run "
                          "`bbmaster upgrade-master DIR` to upgrade it to " DB_SCHEMA_HEAD);
        return DB_SCHEMA_OLD;
    }
    util_cause(cause,
               "database has sqlalchemy-migrate version %lld; only 58 can be upgraded "
               "(upgrade it with Buildbot 2.x first)",
               v);
    return DB_SCHEMA_FOREIGN;
}

int db_schema_check(struct db *db, char **version, char **cause)
{
    *version = NULL;
    int has = db_has_table(db, "alembic_version", cause);
    if (has < 0)
        return -1;
    if (!has) {
        int legacy = db_has_table(db, "migrate_version", cause);
        if (legacy != 0)
            return legacy < 0 ? -1 : legacy_state(db, version, cause);
        int n = count_tables(db, cause);
        if (n <= 0)
            return n < 0 ? -1 : DB_SCHEMA_EMPTY;
        util_cause(cause, "database has tables but is not a Buildbot database (no "
                          "alembic_version table); refusing to touch it");
        return DB_SCHEMA_FOREIGN;
    }
    if (read_version(db, version, cause) < 0)
        return -1;
    long v = -1;
    if (*version == NULL || util_parse_long(*version, 0, 999999, &v) != 0) {
        util_cause(cause, "database has an unknown schema revision \"%s\"; refusing it",
                   *version ? *version : "(none)");
        return DB_SCHEMA_FOREIGN;
    }
    if (v == atol(DB_SCHEMA_HEAD))
        return DB_SCHEMA_CURRENT;
    if (v > atol(DB_SCHEMA_HEAD)) {
        util_cause(cause,
                   "database is at schema revision %s, newer than this bbmaster knows "
                   "(" DB_SCHEMA_HEAD "); refusing to use it",
                   *version);
        return DB_SCHEMA_NEWER;
    }
    if (v < atol(DB_SCHEMA_OLDEST)) {
        util_cause(cause,
                   "database is at schema revision %s, older than Buildbot 3.x "
                   "(" DB_SCHEMA_OLDEST "); upgrade it with Buildbot first",
                   *version);
        return DB_SCHEMA_FOREIGN;
    }
    util_cause(cause,
               "database is at Buildbot schema revision %s; run `bbmaster upgrade-master "
               "DIR` to upgrade it to " DB_SCHEMA_HEAD " (Buildbot 4.3)",
               *version);
    return DB_SCHEMA_OLD;
}

/* One migration step: the revision it brings the database to, and its SQL per engine. */
struct migration {
    int to;
    const char *what;
    const char *sqlite;
    const char *pg;
};

static const struct migration migrations[] = {
    {60, "projects",
     /* SQLite: tables that gain a named constraint are rebuilt, in the order and with
        the text of Buildbot's batch migrations, so that the schema reads as Buildbot's. */
     "CREATE TABLE projects (\n"
     "\tid INTEGER NOT NULL, \n"
     "\tname TEXT NOT NULL, \n"
     "\tname_hash VARCHAR(40) NOT NULL, \n"
     "\tslug VARCHAR(50) NOT NULL, \n"
     "\tdescription TEXT, \n"
     "\tPRIMARY KEY (id)\n"
     ");"
     "CREATE TABLE _bbm_tmp_builders (\n"
     "\tid INTEGER NOT NULL, \n"
     "\tname TEXT NOT NULL, \n"
     "\tdescription TEXT, \n"
     "\tname_hash VARCHAR(40) NOT NULL, \n"
     "\tprojectid INTEGER, \n"
     "\tPRIMARY KEY (id), \n"
     "\tCONSTRAINT fk_builders_projectid FOREIGN KEY(projectid) REFERENCES projects (id) ON "
     "DELETE SET NULL\n"
     ");"
     "INSERT INTO _bbm_tmp_builders SELECT id, name, description, name_hash, NULL FROM builders;"
     "DROP TABLE builders;"
     "ALTER TABLE _bbm_tmp_builders RENAME TO builders;"
     "CREATE UNIQUE INDEX builder_name_hash ON builders (name_hash);"
     "CREATE INDEX builders_projectid ON builders (projectid);"
     "CREATE UNIQUE INDEX projects_name_hash ON projects (name_hash);",
     "CREATE TABLE projects (id SERIAL NOT NULL, name TEXT NOT NULL, name_hash VARCHAR(40) NOT "
     "NULL, slug VARCHAR(50) NOT NULL, description TEXT, CONSTRAINT projects_pkey PRIMARY KEY "
     "(id));"
     "CREATE UNIQUE INDEX projects_name_hash ON projects (name_hash);"
     "ALTER TABLE builders ADD COLUMN projectid INTEGER;"
     "ALTER TABLE builders ADD CONSTRAINT fk_builders_projectid FOREIGN KEY (projectid) "
     "REFERENCES projects (id) ON DELETE SET NULL;"
     "CREATE INDEX builders_projectid ON builders (projectid);"},
    {61, "builders.description_format, description_html",
     "ALTER TABLE builders ADD COLUMN description_format TEXT;"
     "ALTER TABLE builders ADD COLUMN description_html TEXT;",
     NULL},
    {62, "projects.description_format, description_html",
     "ALTER TABLE projects ADD COLUMN description_format TEXT;"
     "ALTER TABLE projects ADD COLUMN description_html TEXT;",
     NULL},
    {63, "steps.locks_acquired_at",
     "ALTER TABLE steps ADD COLUMN locks_acquired_at INTEGER;"
     "UPDATE steps SET locks_acquired_at = started_at;",
     NULL},
    {64, "workers.pause_reason", "ALTER TABLE workers ADD COLUMN pause_reason TEXT;", NULL},
    {65, "buildsets.rebuilt_buildid",
     "CREATE TABLE _bbm_tmp_buildsets (\n"
     "\tid INTEGER NOT NULL, \n"
     "\texternal_idstring VARCHAR(256), \n"
     "\treason VARCHAR(256), \n"
     "\tsubmitted_at INTEGER NOT NULL, \n"
     "\tcomplete SMALLINT DEFAULT '0' NOT NULL, \n"
     "\tcomplete_at INTEGER, \n"
     "\tresults SMALLINT, \n"
     "\tparent_buildid INTEGER, \n"
     "\tparent_relationship TEXT, \n"
     "\trebuilt_buildid INTEGER, \n"
     "\tPRIMARY KEY (id), \n"
     "\tCONSTRAINT parent_buildid FOREIGN KEY(parent_buildid) REFERENCES builds (id) ON DELETE "
     "SET NULL, \n"
     "\tCONSTRAINT rebuilt_buildid FOREIGN KEY(rebuilt_buildid) REFERENCES builds (id) ON "
     "DELETE SET NULL\n"
     ");"
     "INSERT INTO _bbm_tmp_buildsets SELECT id, external_idstring, reason, submitted_at, "
     "complete, complete_at, results, parent_buildid, parent_relationship, NULL FROM buildsets;"
     "DROP TABLE buildsets;"
     "ALTER TABLE _bbm_tmp_buildsets RENAME TO buildsets;"
     "CREATE INDEX buildsets_submitted_at ON buildsets (submitted_at);"
     "CREATE INDEX buildsets_complete ON buildsets (complete);",
     "ALTER TABLE buildsets ADD COLUMN rebuilt_buildid INTEGER;"
     "ALTER TABLE buildsets ADD CONSTRAINT rebuilt_buildid FOREIGN KEY (rebuilt_buildid) "
     "REFERENCES builds (id) ON DELETE SET NULL;"},
    {66, "builds.locks_duration_s",
     /* SQLite cannot add a NOT NULL column without a default: rebuild the table as
        Buildbot's batch migration does, ending with no default. */
     "CREATE TABLE _bbm_tmp_builds (\n"
     "\tid INTEGER NOT NULL, \n"
     "\tnumber INTEGER NOT NULL, \n"
     "\tbuilderid INTEGER NOT NULL, \n"
     "\tbuildrequestid INTEGER NOT NULL, \n"
     "\tworkerid INTEGER, \n"
     "\tmasterid INTEGER NOT NULL, \n"
     "\tstarted_at INTEGER NOT NULL, \n"
     "\tcomplete_at INTEGER, \n"
     "\tstate_string TEXT NOT NULL, \n"
     "\tresults INTEGER, \n"
     "\tlocks_duration_s INTEGER NOT NULL, \n"
     "\tPRIMARY KEY (id), \n"
     "\tCONSTRAINT buildrequestid FOREIGN KEY(buildrequestid) REFERENCES buildrequests (id) "
     "ON DELETE CASCADE, \n"
     "\tFOREIGN KEY(masterid) REFERENCES masters (id) ON DELETE CASCADE, \n"
     "\tFOREIGN KEY(workerid) REFERENCES workers (id) ON DELETE SET NULL, \n"
     "\tFOREIGN KEY(builderid) REFERENCES builders (id) ON DELETE CASCADE\n"
     ");"
     "INSERT INTO _bbm_tmp_builds SELECT id, number, builderid, buildrequestid, workerid, "
     "masterid, started_at, complete_at, state_string, results, 0 FROM builds;"
     "DROP TABLE builds;"
     "ALTER TABLE _bbm_tmp_builds RENAME TO builds;"
     "CREATE INDEX builds_workerid ON builds (workerid);"
     "CREATE INDEX builds_masterid ON builds (masterid);"
     "CREATE UNIQUE INDEX builds_number ON builds (builderid, number);"
     "CREATE INDEX builds_buildrequestid ON builds (buildrequestid);",
     "ALTER TABLE builds ADD COLUMN locks_duration_s INTEGER;"
     "UPDATE builds SET locks_duration_s = 0;"
     "ALTER TABLE builds ALTER COLUMN locks_duration_s SET NOT NULL;"},
    {67, "codebases, codebase_commits, codebase_branches", db_sql_sqlite_067, db_sql_pg_067},
};

static int say_line(void (*say)(const char *, void *), void *arg, const char *fmt, const char *s)
{
    if (say != NULL) {
        char *line = xasprintf(fmt, s);
        say(line, arg);
        free(line);
    }
    return 0;
}

static int migrate(struct db *db, long from, void (*say)(const char *, void *), void *arg,
                   char **cause)
{
    if (from == 58) {
        if (db_exec_script(db,
                           "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                           "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));"
                           "INSERT INTO alembic_version (version_num) VALUES ('059');"
                           "DROP TABLE migrate_version;",
                           cause) < 0)
            return -1;
        from = 59;
    }
    for (size_t i = 0; i < UTIL_NELEM(migrations); i++) {
        const struct migration *m = &migrations[i];
        if (m->to <= from)
            continue;
        const char *sql = db_kind(db) == DB_PG && m->pg != NULL ? m->pg : m->sqlite;
        char line[128];
        snprintf(line, sizeof line, "migration %03d: %%s", m->to);
        say_line(say, arg, line, m->what);
        if (db_exec_script(db, sql, cause) < 0)
            return -1;
    }
    return db_exec_script(db, "UPDATE alembic_version SET version_num = '" DB_SCHEMA_HEAD "'",
                          cause);
}

static int create(struct db *db, void (*say)(const char *, void *), void *arg, char **cause)
{
    say_line(say, arg, "%s", "creating Buildbot 4.3 schema (43 tables)");
    const char *sql = db_kind(db) == DB_PG ? db_sql_pg_create : db_sql_sqlite_create;
    if (db_exec_script(db, sql, cause) < 0)
        return -1;
    return db_exec_script(
        db, "INSERT INTO alembic_version (version_num) VALUES ('" DB_SCHEMA_HEAD "')", cause);
}

int db_schema_upgrade(struct db *db, void (*say)(const char *, void *), void *arg, char **cause)
{
    char *version = NULL;
    int state = db_schema_check(db, &version, cause);
    long from = version != NULL ? atol(version) : 0;
    free(version);
    if (state == DB_SCHEMA_CURRENT) {
        say_line(say, arg, "%s", "database is already at revision " DB_SCHEMA_HEAD);
        return 0;
    }
    if (state != DB_SCHEMA_EMPTY && state != DB_SCHEMA_OLD)
        return -1;
    if (db_begin(db, cause) < 0)
        return -1;
    int rc =
        state == DB_SCHEMA_EMPTY ? create(db, say, arg, cause) : migrate(db, from, say, arg, cause);
    if (rc == 0)
        return db_commit(db, cause);
    db_rollback(db);
    return -1;
}
