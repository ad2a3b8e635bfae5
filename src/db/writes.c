/*
 * Which tables this process has written, for readers that keep answers (the
 * web's cache): a counter per Buildbot table, bumped once a write is done.
 * A statement counts against the table it names (INSERT INTO t, UPDATE t,
 * DELETE FROM t), anything else against every table.  In a transaction the
 * tables are counted again at COMMIT or ROLLBACK, when the change becomes
 * visible, so an answer computed in between cannot outlive it.
 */
#include "db/internal.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const tables[] = {
    "alembic_version",
    "build_data",
    "build_properties",
    "builder_masters",
    "builders",
    "builders_tags",
    "buildrequest_claims",
    "buildrequests",
    "builds",
    "buildset_properties",
    "buildset_sourcestamps",
    "buildsets",
    "change_files",
    "change_properties",
    "change_users",
    "changes",
    "changesource_masters",
    "changesources",
    "codebase_branches",
    "codebase_commits",
    "codebases",
    "configured_workers",
    "connected_workers",
    "logchunks",
    "logs",
    "masters",
    "object_state",
    "objects",
    "patches",
    "projects",
    "scheduler_changes",
    "scheduler_masters",
    "schedulers",
    "sourcestamps",
    "steps",
    "tags",
    "test_code_paths",
    "test_names",
    "test_result_sets",
    "test_results",
    "users",
    "users_info",
    "workers",
};
#define N_TABLES (sizeof tables / sizeof *tables)
#define ALL N_TABLES /* the counter of writes that name no known table */

_Static_assert(N_TABLES + 1 <= 64, "a transaction's tables are a 64-bit mask");
static atomic_ulong counts[N_TABLES + 1];

static int cmp_name(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *)elem);
}

static size_t table_index(const char *name)
{
    const char *const *t = bsearch(name, tables, N_TABLES, sizeof *tables, cmp_name);
    return t != NULL ? (size_t)(t - tables) : ALL;
}

static const char *skip_word(const char *s, const char *word)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(word);
    if (strncasecmp(s, word, n) != 0 || isalnum((unsigned char)s[n]))
        return NULL;
    return s + n;
}

/* The table a statement writes, or ALL. */
static size_t written_table(const char *sql)
{
    const char *p = skip_word(sql, "INSERT");
    p = p != NULL ? skip_word(p, "INTO") : NULL;
    if (p == NULL && (p = skip_word(sql, "DELETE")) != NULL)
        p = skip_word(p, "FROM");
    if (p == NULL)
        p = skip_word(sql, "UPDATE");
    if (p == NULL)
        return ALL;
    while (isspace((unsigned char)*p) || *p == '"')
        p++;
    char name[32];
    size_t n = 0;
    while ((isalnum((unsigned char)p[n]) || p[n] == '_') && n < sizeof name - 1) {
        name[n] = (char)tolower((unsigned char)p[n]);
        n++;
    }
    name[n] = '\0';
    return table_index(name);
}

void db_note_write(struct db *db, const char *sql)
{
    size_t t = sql != NULL ? written_table(sql) : ALL;
    atomic_fetch_add(&counts[t], 1);
    if (db->depth > 0)
        db->touched |= 1ULL << t;
}

void db_note_end(struct db *db)
{
    for (size_t t = 0; t <= ALL; t++)
        if (db->touched & (1ULL << t))
            atomic_fetch_add(&counts[t], 1);
    db->touched = 0;
}

unsigned long db_writes(const char *const *names)
{
    unsigned long sum = atomic_load(&counts[ALL]);
    if (names == NULL) {
        for (size_t t = 0; t < ALL; t++)
            sum += atomic_load(&counts[t]);
        return sum;
    }
    for (; *names != NULL; names++) {
        size_t t = table_index(*names);
        if (t != ALL)
            sum += atomic_load(&counts[t]);
    }
    return sum;
}
