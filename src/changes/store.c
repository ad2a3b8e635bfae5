/*
 * A change stored as Buildbot 4.3's addChange stores it: the source stamp
 * of its branch, revision, repository, project and codebase (found or
 * made), the changes row with its parent (the newest earlier change of the
 * same branch, repository, project and codebase), change_files,
 * change_properties as JSON [value, "Change"], and, for a change from a
 * version-control system, the user object of its author (users, users_info,
 * change_users).  Column lengths are checked first, as Buildbot's
 * checkLength does, so that a change too long for its columns is refused
 * whole.
 */
#include "changes/changes.h"

#include <stdlib.h>
#include <string.h>

#include "util/util.h"

/* Buildbot's user-object sources. */
static const char *const vcs[] = {"git", "svn", "hg", "cvs", "darcs", "bzr", NULL};

static const char *text(const json_t *change, const char *key)
{
    return json_string_value(json_object_get(change, key));
}

int changes_check(const json_t *change, char **cause)
{
    static const struct {
        const char *key;
        size_t max;
    } cols[] = {{"author", 255},     {"committer", 255}, {"branch", 255},
                {"revision", 255},   {"revlink", 256},   {"category", 255},
                {"repository", 512}, {"project", 512},   {"codebase", 256}};
    for (size_t i = 0; i < UTIL_NELEM(cols); i++) {
        const json_t *j = json_object_get(change, cols[i].key);
        const char *v = json_string_value(j);
        if (j != NULL && !json_is_null(j) && v == NULL)
            return util_cause(cause, "%s must be text", cols[i].key);
        if (v != NULL && strlen(v) > cols[i].max)
            return util_cause(cause, "value for column %s is greater than max of %zu characters",
                              cols[i].key, cols[i].max);
    }
    const json_t *files = json_object_get(change, "files");
    if (json_array_size(files) > CHG_MAX_FILES)
        return util_cause(cause, "a change may list at most %d files", CHG_MAX_FILES);
    size_t i;
    const json_t *f;
    json_array_foreach(files, i, f)
    {
        if (!json_is_string(f) || strlen(json_string_value(f)) > 1024)
            return util_cause(cause, "each file must be a string of at most 1024 characters");
    }
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)json_object_get(change, "properties"), k, v)
    {
        if (strlen(k) > 256)
            return util_cause(cause, "a property name is longer than 256 characters");
    }
    return 0;
}

/* Buildbot's findUserByAttr: the user whose `src` identity is `author`, made if new. */
static long long user_id(struct db *db, const char *author, const char *src, char **cause)
{
    struct db_param p[] = {DB_TEXT(src), DB_TEXT(author)};
    struct db_res *r = db_query(
        db, "SELECT uid FROM users_info WHERE attr_type = ? AND attr_data = ?", p, 2, cause);
    if (r == NULL)
        return -1;
    long long uid = db_res_rows(r) > 0 ? db_res_int(r, 0, 0) : -1;
    db_res_free(r);
    if (uid > 0)
        return uid;
    /* an identifier taken by another user gets a suffix, as incrementIdentifier does */
    for (int n = 1; n < 100; n++) {
        char *ident = n == 1 ? xstrdup(author) : xasprintf("%.250s_%d", author, n);
        struct db_param q[] = {DB_TEXT(ident)};
        r = db_query(db, "SELECT uid FROM users WHERE identifier = ?", q, 1, cause);
        bool taken = r != NULL && db_res_rows(r) > 0;
        db_res_free(r);
        int rc = r == NULL ? -1
                 : taken   ? 1
                           : db_insert_key(db, "INSERT INTO users (identifier) VALUES (?)", q, 1,
                                           "uid", &uid, cause);
        free(ident);
        if (rc < 0)
            return -1;
        if (rc == 0)
            break;
    }
    if (uid <= 0)
        return util_cause(cause, "no free user identifier for '%s'", author);
    struct db_param i[] = {DB_INT(uid), DB_TEXT(src), DB_TEXT(author)};
    if (db_exec(db, "INSERT INTO users_info (uid, attr_type, attr_data) VALUES (?, ?, ?)", i, 3,
                cause) < 0)
        return -1;
    return uid;
}

static bool is_vcs(const char *src)
{
    for (size_t i = 0; src != NULL && vcs[i] != NULL; i++)
        if (strcmp(src, vcs[i]) == 0)
            return true;
    return false;
}

/* The newest change of the same branch, repository, project and codebase (0: none). */
static long long parent_id(struct db *db, const json_t *change, char **cause)
{
    const char *branch = text(change, "branch");
    struct db_param p[] = {DB_TEXT(branch), DB_TEXT(text(change, "repository")),
                           DB_TEXT(text(change, "project")), DB_TEXT(text(change, "codebase"))};
    /* the newest first, through the index on branch: the cost does not grow with history */
    const char *sql = branch != NULL
                          ? "SELECT changeid FROM changes WHERE branch = ? AND repository = ? "
                            "AND project = ? AND codebase = ? ORDER BY changeid DESC LIMIT 1"
                          : "SELECT changeid FROM changes WHERE branch IS NULL AND "
                            "repository = ? AND project = ? AND codebase = ? "
                            "ORDER BY changeid DESC LIMIT 1";
    struct db_res *r = db_query(db, sql, branch != NULL ? p : p + 1, branch != NULL ? 4 : 3, cause);
    if (r == NULL)
        return -1;
    long long id = db_res_rows(r) > 0 && !db_res_null(r, 0, 0) ? db_res_int(r, 0, 0) : 0;
    db_res_free(r);
    return id;
}

static int add_rows(struct db *db, long long changeid, const json_t *change, long long uid,
                    char **cause)
{
    size_t i;
    const json_t *f;
    json_array_foreach(json_object_get(change, "files"), i, f)
    {
        struct db_param p[] = {DB_INT(changeid), DB_TEXT(json_string_value(f))};
        if (db_exec(db, "INSERT INTO change_files (changeid, filename) VALUES (?, ?)", p, 2,
                    cause) < 0)
            return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)json_object_get(change, "properties"), k, v)
    {
        json_t *pair = json_pack("[Os]", v, "Change");
        char *value = json_dumps(pair, JSON_ENCODE_ANY | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
        json_decref(pair);
        struct db_param p[] = {DB_INT(changeid), DB_TEXT(k), DB_TEXT(value)};
        int rc = db_exec(db,
                         "INSERT INTO change_properties (changeid, property_name, property_value) "
                         "VALUES (?, ?, ?)",
                         p, 3, cause);
        free(value);
        if (rc < 0)
            return -1;
    }
    if (uid > 0) {
        struct db_param p[] = {DB_INT(changeid), DB_INT(uid)};
        if (db_exec(db, "INSERT INTO change_users (changeid, uid) VALUES (?, ?)", p, 2, cause) < 0)
            return -1;
    }
    return 0;
}

/* Fills in what Buildbot defaults: author, comments, repository, project, codebase and
   revlink "", no files, no properties, now. */
static void defaults(json_t *change)
{
    static const char *const empty[] = {"author",  "comments", "repository",
                                        "project", "codebase", "revlink"};
    for (size_t i = 0; i < UTIL_NELEM(empty); i++)
        if (!json_is_string(json_object_get(change, empty[i])))
            json_object_set_new(change, empty[i], json_string(""));
    if (!json_is_array(json_object_get(change, "files")))
        json_object_set_new(change, "files", json_array());
    if (!json_is_object(json_object_get(change, "properties")))
        json_object_set_new(change, "properties", json_object());
    if (!json_is_integer(json_object_get(change, "when_timestamp")))
        json_object_set_new(change, "when_timestamp", json_integer((json_int_t)util_now()));
}

long long changes_add(struct db *db, json_t *change, const char *src, char **cause)
{
    defaults(change);
    if (changes_check(change, cause) < 0)
        return -1;
    long long now = (long long)util_now(), changeid = -1;
    if (db_begin(db, cause) < 0)
        return -1;
    const char *author = text(change, "author");
    long long uid = is_vcs(src) && strlen(author) <= 128 ? user_id(db, author, src, cause) : 0;
    long long ssid = uid < 0
                         ? -1
                         : db_sourcestamp_id(db, text(change, "branch"), text(change, "revision"),
                                             text(change, "repository"), text(change, "project"),
                                             text(change, "codebase"), now, cause);
    long long parent = ssid < 0 ? -1 : parent_id(db, change, cause);
    if (parent < 0)
        goto fail;
    struct db_param p[] = {
        DB_TEXT(author),
        DB_TEXT(text(change, "committer")),
        DB_TEXT(text(change, "comments")),
        DB_TEXT(text(change, "branch")),
        DB_TEXT(text(change, "revision")),
        DB_TEXT(text(change, "revlink")),
        DB_INT((long long)json_integer_value(json_object_get(change, "when_timestamp"))),
        DB_TEXT(text(change, "category")),
        DB_TEXT(text(change, "repository")),
        DB_TEXT(text(change, "codebase")),
        DB_TEXT(text(change, "project")),
        DB_INT(ssid),
        parent > 0 ? DB_INT(parent) : DB_NULL};
    if (db_insert_key(db,
                      "INSERT INTO changes (author, committer, comments, branch, revision, "
                      "revlink, when_timestamp, category, repository, codebase, project, "
                      "sourcestampid, parent_changeids) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      p, UTIL_NELEM(p), "changeid", &changeid, cause) < 0 ||
        add_rows(db, changeid, change, uid, cause) < 0 || db_commit(db, cause) < 0)
        goto fail;
    json_object_set_new(change, "changeid", json_integer(changeid));
    json_object_set_new(change, "sourcestampid", json_integer(ssid));
    json_object_set_new(change, "parent_changeids",
                        parent > 0 ? json_pack("[I]", (json_int_t)parent) : json_array());
    return changeid;
fail:
    db_rollback(db);
    return -1;
}
