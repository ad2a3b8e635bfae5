/*
 * Rows found or added by name, for the writes a reconfig makes for a thousand
 * builders at once: every row of a named table (builders, workers, tags,
 * projects) is read in one query and kept sorted by name, a missing one is
 * added and put in its place; and statements over many rows are written in
 * batches, one statement for DB_BATCH rows (a statement is a round trip on
 * PostgreSQL).
 */
#include "db/internal.h"

#include <stdlib.h>
#include <string.h>

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct db_name_id *)a)->name, ((const struct db_name_id *)b)->name);
}

int db_names_load(struct db *db, const struct db_named *table, struct db_names *t, char **cause)
{
    struct db_res *r = db_query(db, table->load, NULL, 0, cause);
    if (r == NULL)
        return -1;
    t->v = xgrow(t->v, &t->cap, t->n + db_res_rows(r), sizeof *t->v);
    for (size_t i = 0; i < db_res_rows(r); i++)
        t->v[t->n++] = (struct db_name_id){xstrdup(db_res_text(r, i, 1)), db_res_int(r, i, 0)};
    db_res_free(r);
    if (t->n > 1) /* qsort wants a pointer even for nothing */
        qsort(t->v, t->n, sizeof *t->v, by_name);
    return 0;
}

void db_names_free(struct db_names *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].name);
    free(t->v);
    *t = (struct db_names){0};
}

/* Where `name` is in `t`, or where it would go. */
static size_t lower_bound(const struct db_names *t, const char *name)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(t->v[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

long long db_names_id(struct db *db, struct db_names *t, const struct db_named *table,
                      const char *name, char **cause)
{
    size_t at = lower_bound(t, name);
    if (at < t->n && strcmp(t->v[at].name, name) == 0)
        return t->v[at].id;
    char hash[41];
    db_hash(&name, 1, hash);
    struct db_param p[] = {DB_TEXT(name), DB_TEXT(hash), DB_TEXT(name)};
    long long id;
    if (db_insert(db, table->add, p, table->n_add, &id, cause) < 0)
        return -1;
    t->v = xgrow(t->v, &t->cap, t->n + 1, sizeof *t->v);
    memmove(t->v + at + 1, t->v + at, (t->n - at) * sizeof *t->v);
    t->v[at] = (struct db_name_id){xstrdup(name), id};
    t->n++;
    return id;
}

int db_exec_batched(struct db *db, const char *head, const char *group, const char *tail,
                    size_t per, const struct db_param *p, size_t n, char **cause)
{
    for (size_t at = 0; at < n; at += DB_BATCH * per) {
        size_t k = n - at < DB_BATCH * per ? n - at : DB_BATCH * per;
        struct buf sql = {0};
        buf_addstr(&sql, head);
        for (size_t i = 0; i < k / per; i++)
            buf_printf(&sql, "%s%s", i > 0 ? ", " : "", group);
        buf_addstr(&sql, tail);
        int rc = db_exec(db, sql.data, p + at, k, cause);
        buf_free(&sql);
        if (rc < 0)
            return -1;
    }
    return 0;
}
