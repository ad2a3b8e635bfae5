/*
 * The `bbm` module that master.lua requires: constructors with Buildbot's
 * names and parameter names (bbm.worker, bbm.builder, bbm.factory,
 * bbm.steps.*, bbm.schedulers.*, bbm.change_filter, bbm.changes.*,
 * bbm.params.*, bbm.project, bbm.interpolate, bbm.yaml.load, bbm.log.msg and
 * bbm.log.err; bbm.locks.* are in locks.c).
 *
 * Each constructor checks its parameters against a table of names and types,
 * records every problem with the file and line of the call (so a config with
 * five mistakes shows five messages), and returns a plain Lua table holding
 * the parameters plus _kind, _file and _line for the later checks in
 * validate.c.
 */
#include "config/internal.h"
#include "reporters/reporters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum ptype {
    P_STR,    /* string */
    P_INT,    /* whole number */
    P_NUM,    /* number */
    P_BOOL,   /* boolean */
    P_FUNC,   /* function */
    P_TABLE,  /* table */
    P_STRS,   /* string or list of strings */
    P_BOOLFN, /* boolean or function */
    P_RENDER, /* string, number, boolean, bbm.interpolate or function */
    P_CMD,    /* string or list of strings / renderables (a command) */
    P_POLICY, /* boolean or list of result codes (updateBuildSummaryPolicy) */
    P_LOCKS,  /* list of lock:access(...) */
    P_ANY,
};

struct param {
    const char *name;
    enum ptype type;
    bool required;
};

#define END                                                                                        \
    {                                                                                              \
        NULL, P_ANY, false                                                                         \
    }

static const struct param worker_params[] = {
    {"max_builds", P_INT, false},         {"keepalive_interval", P_INT, false},
    {"notify_on_missing", P_STRS, false}, {"missing_timeout", P_INT, false},
    {"properties", P_TABLE, false},       {"defaultProperties", P_TABLE, false},
    {"machine_name", P_STR, false},       {"ping_interval", P_INT, false},
    {"ping_timeout", P_INT, false},       END};

static const struct param builder_params[] = {{"name", P_STR, true},
                                              {"workernames", P_STRS, false},
                                              {"workername", P_STR, false},
                                              {"factory", P_TABLE, true},
                                              {"tags", P_STRS, false},
                                              {"builddir", P_STR, false},
                                              {"workerbuilddir", P_STR, false},
                                              {"canStartBuild", P_FUNC, false},
                                              {"collapseRequests", P_BOOLFN, false},
                                              {"properties", P_TABLE, false},
                                              {"defaultProperties", P_TABLE, false},
                                              {"description", P_STR, false},
                                              {"description_format", P_STR, false},
                                              {"project", P_STR, false},
                                              {"env", P_TABLE, false},
                                              {"locks", P_LOCKS, false},
                                              {"nextWorker", P_FUNC, false},
                                              {"nextBuild", P_FUNC, false},
                                              END};

/* Parameters every step takes (Buildbot's BuildStep and ShellCommand). */
static const struct param step_params[] = {{"name", P_RENDER, false},
                                           {"description", P_STRS, false},
                                           {"descriptionDone", P_STRS, false},
                                           {"descriptionSuffix", P_STRS, false},
                                           {"haltOnFailure", P_BOOL, false},
                                           {"flunkOnFailure", P_BOOL, false},
                                           {"flunkOnWarnings", P_BOOL, false},
                                           {"warnOnFailure", P_BOOL, false},
                                           {"warnOnWarnings", P_BOOL, false},
                                           {"alwaysRun", P_BOOL, false},
                                           {"doStepIf", P_BOOLFN, false},
                                           {"hideStepIf", P_BOOLFN, false},
                                           {"locks", P_LOCKS, false},
                                           {"timeout", P_NUM, false},
                                           {"maxTime", P_NUM, false},
                                           {"sigtermTime", P_NUM, false},
                                           {"usePTY", P_BOOL, false},
                                           {"env", P_TABLE, false},
                                           {"workdir", P_RENDER, false},
                                           {"logEnviron", P_BOOL, false},
                                           {"logfiles", P_TABLE, false},
                                           {"lazylogfiles", P_BOOL, false},
                                           {"decodeRC", P_TABLE, false},
                                           {"warningPattern", P_STR, false},
                                           {"interruptSignal", P_STR, false},
                                           {"initialStdin", P_STR, false},
                                           {"want_stdout", P_BOOL, false},
                                           {"want_stderr", P_BOOL, false},
                                           {"max_lines", P_INT, false},
                                           {"updateBuildSummaryPolicy", P_POLICY, false},
                                           END};

/* Shell-like steps (the worker's shell command, its result decided by shell_done). */
static const struct param shell_params[] = {{"command", P_CMD, true},
                                            {"maxWarnCount", P_INT, false},
                                            {"evaluateCommand", P_FUNC, false},
                                            END};
static const struct param git_params[] = {{"repourl", P_RENDER, true},
                                          {"branch", P_RENDER, false},
                                          {"mode", P_STR, false},
                                          {"method", P_STR, false},
                                          {"filters", P_STRS, false},
                                          {"clobberOnFailure", P_BOOL, false},
                                          {"submodules", P_BOOL, false},
                                          {"shallow", P_ANY, false},
                                          {"progress", P_BOOL, false},
                                          {"retryFetch", P_BOOL, false},
                                          {"getDescription", P_ANY, false},
                                          {"alwaysUseLatest", P_BOOL, false},
                                          {"retry", P_TABLE, false},
                                          {"codebase", P_STR, false},
                                          {"sshPrivateKey", P_RENDER, false},
                                          {"origin", P_RENDER, false},
                                          {"config", P_TABLE, false},
                                          END};
static const struct param setprop_params[] = {{"command", P_CMD, true},
                                              {"maxWarnCount", P_INT, false},
                                              {"evaluateCommand", P_FUNC, false},
                                              {"property", P_STR, false},
                                              {"extract_fn", P_FUNC, false},
                                              {"strip", P_BOOL, false},
                                              END};
static const struct param upload_params[] = {
    {"workersrc", P_RENDER, true}, {"masterdest", P_RENDER, true}, {"mode", P_INT, false},
    {"keepstamp", P_BOOL, false},  {"blocksize", P_INT, false},    {"maxsize", P_INT, false},
    {"url", P_RENDER, false},      {"urlText", P_STR, false},      END};
static const struct param download_params[] = {
    {"mastersrc", P_RENDER, true}, {"workerdest", P_RENDER, true}, {"mode", P_INT, false},
    {"blocksize", P_INT, false},   {"maxsize", P_INT, false},      END};
static const struct param dirupload_params[] = {
    {"workersrc", P_RENDER, true}, {"masterdest", P_RENDER, true},
    {"compress", P_STR, false},    {"blocksize", P_INT, false},
    {"maxsize", P_INT, false},     {"url", P_RENDER, false},
    {"urlText", P_STR, false},     END};
static const struct param multiupload_params[] = {{"workersrcs", P_ANY, true},
                                                  {"masterdest", P_RENDER, true},
                                                  {"glob", P_BOOL, false},
                                                  {"mode", P_INT, false},
                                                  {"compress", P_STR, false},
                                                  {"blocksize", P_INT, false},
                                                  {"maxsize", P_INT, false},
                                                  {"keepstamp", P_BOOL, false},
                                                  {"url", P_RENDER, false},
                                                  {"urlText", P_STR, false},
                                                  END};
static const struct param stringdl_params[] = {
    {"s", P_RENDER, true},       {"workerdest", P_RENDER, true}, {"mode", P_INT, false},
    {"blocksize", P_INT, false}, {"maxsize", P_INT, false},      END};
static const struct param dir_params[] = {{"dir", P_RENDER, true}, END};
static const struct param cpdir_params[] = {{"src", P_RENDER, true}, {"dest", P_RENDER, true}, END};
static const struct param fileexists_params[] = {{"file", P_RENDER, true}, END};
static const struct param mastershell_params[] = {{"command", P_CMD, true}, END};
static const struct param rmsecret_params[] = {{"populated_secret_list", P_TABLE, true}, END};
static const struct param trigger_params[] = {
    {"schedulerNames", P_STRS, true},     {"waitForFinish", P_BOOL, false},
    {"updateSourceStamp", P_BOOL, false}, {"alwaysUseLatest", P_BOOL, false},
    {"set_properties", P_TABLE, false},   {"copy_properties", P_STRS, false},
    {"sourceStamps", P_TABLE, false},     END};

/* Parameters every scheduler takes. */
static const struct param sched_params[] = {{"name", P_STR, true},
                                            {"builderNames", P_STRS, true},
                                            {"properties", P_TABLE, false},
                                            {"codebases", P_TABLE, false},
                                            {"priority", P_RENDER, false},
                                            {"reason", P_ANY, false},
                                            END};
static const struct param branch_sched_params[] = {{"change_filter", P_TABLE, false},
                                                   {"treeStableTimer", P_NUM, false},
                                                   {"fileIsImportant", P_FUNC, false},
                                                   {"onlyImportant", P_BOOL, false},
                                                   {"createAbsoluteSourceStamps", P_BOOL, false},
                                                   {"branch", P_STR, false},
                                                   END};
static const struct param pr_sched_params[] = {{"stableBuilderNames", P_STRS, false}, END};
static const struct param force_params[] = {{"username", P_TABLE, false},
                                            {"buttonName", P_STR, false},
                                            {"label", P_STR, false},
                                            {"reasonString", P_STR, false},
                                            END};
static const struct param periodic_params[] = {{"periodicBuildTimer", P_NUM, true},
                                               {"branch", P_STR, false},
                                               {"onlyIfChanged", P_BOOL, false},
                                               END};
static const struct param nightly_params[] = {{"minute", P_ANY, false},
                                              {"hour", P_ANY, false},
                                              {"dayOfMonth", P_ANY, false},
                                              {"month", P_ANY, false},
                                              {"dayOfWeek", P_ANY, false},
                                              {"branch", P_STR, false},
                                              {"onlyIfChanged", P_BOOL, false},
                                              {"change_filter", P_TABLE, false},
                                              {"fileIsImportant", P_FUNC, false},
                                              {"onlyImportant", P_BOOL, false},
                                              {"force", P_BOOL, false},
                                              {"force_at_minute", P_ANY, false},
                                              {"force_at_hour", P_ANY, false},
                                              {"force_at_day_of_month", P_ANY, false},
                                              {"force_at_month", P_ANY, false},
                                              {"force_at_day_of_week", P_ANY, false},
                                              END};
static const struct param none_params[] = {END};
/* JanitorConfigurator's: the horizon in seconds (Lua has no timedelta), Nightly's times;
   buildHorizon and changeHorizon are bbmaster's own. */
static const struct param janitor_params[] = {
    {"logHorizon", P_INT, false},   {"build_data_horizon", P_INT, false},
    {"buildHorizon", P_INT, false}, {"changeHorizon", P_INT, false},
    {"hour", P_ANY, false},         {"minute", P_ANY, false},
    {"dayOfMonth", P_ANY, false},   {"month", P_ANY, false},
    {"dayOfWeek", P_ANY, false},    END};

/* services: GitHubStatusPush, BuildStartEndStatusGenerator and MessageFormatterRenderable.
   debug, verify, add_patch, subject and the 2.x startDescription and endDescription are
   listed to be refused by name in config/reporters.c. */
static const struct param ghstatus_params[] = {{"token", P_STR, true},
                                               {"context", P_RENDER, false},
                                               {"baseURL", P_STR, false},
                                               {"verbose", P_BOOL, false},
                                               {"generators", P_TABLE, false},
                                               {"name", P_STR, false},
                                               {"debug", P_ANY, false},
                                               {"verify", P_ANY, false},
                                               {"startDescription", P_ANY, false},
                                               {"endDescription", P_ANY, false},
                                               END};
/* HttpStatusPush and GitHubCommentPush; debug, verify, cert and skip_encoding are listed to
   be refused in config/reporters.c; issue is bbmaster's own (a function of the build). */
static const struct param httppush_params[] = {
    {"serverUrl", P_STR, true},      {"auth", P_TABLE, false},
    {"headers", P_TABLE, false},     {"generators", P_TABLE, false},
    {"name", P_STR, false},          {"debug", P_ANY, false},
    {"verify", P_ANY, false},        {"cert", P_ANY, false},
    {"skip_encoding", P_ANY, false}, END};
static const struct param ghcomment_params[] = {
    {"token", P_STR, true},           {"baseURL", P_STR, false},
    {"verbose", P_BOOL, false},       {"generators", P_TABLE, false},
    {"name", P_STR, false},           {"issue", P_FUNC, false},
    {"debug", P_ANY, false},          {"verify", P_ANY, false},
    {"context", P_ANY, false},        {"startDescription", P_ANY, false},
    {"endDescription", P_ANY, false}, END};
/* MessageFormatterFunction: `function` is called with {build = ...}. */
static const struct param fnformatter_params[] = {{"function", P_FUNC, true},
                                                  {"template_type", P_STR, true},
                                                  {"want_properties", P_BOOL, false},
                                                  {"want_steps", P_BOOL, false},
                                                  {"want_logs", P_BOOL, false},
                                                  {"want_logs_content", P_ANY, false},
                                                  END};
static const struct param mail_params[] = {{"fromaddr", P_STR, true},
                                           {"relayhost", P_STR, false},
                                           {"smtpPort", P_INT, false},
                                           {"useTls", P_BOOL, false},
                                           {"useSmtps", P_BOOL, false},
                                           {"smtpUser", P_STR, false},
                                           {"smtpPassword", P_STR, false},
                                           {"lookup", P_STR, false},
                                           {"extraRecipients", P_STRS, false},
                                           {"sendToInterestedUsers", P_BOOL, false},
                                           {"extraHeaders", P_TABLE, false},
                                           {"dumpMailsToLog", P_BOOL, false},
                                           {"generators", P_TABLE, false},
                                           {"name", P_STR, false},
                                           END};
static const struct param startend_params[] = {
    {"builders", P_STRS, false},         {"tags", P_STRS, false},
    {"schedulers", P_STRS, false},       {"branches", P_STRS, false},
    {"start_formatter", P_TABLE, false}, {"end_formatter", P_TABLE, false},
    {"add_patch", P_ANY, false},         END};
static const struct param request_params[] = {{"builders", P_STRS, false},
                                              {"tags", P_STRS, false},
                                              {"schedulers", P_STRS, false},
                                              {"branches", P_STRS, false},
                                              {"formatter", P_TABLE, false},
                                              {"add_patch", P_ANY, false},
                                              END};
static const struct param renderable_params[] = {
    {"template", P_RENDER, true}, {"subject", P_ANY, false}, END};
/* BuildStatusGenerator and MessageFormatter; add_logs, add_patch, want_logs_content, ctx
   and extra_info_cb are listed to be refused in config/reporters.c. */
static const struct param status_gen_params[] = {{"mode", P_STRS, false},
                                                 {"builders", P_STRS, false},
                                                 {"tags", P_STRS, false},
                                                 {"schedulers", P_STRS, false},
                                                 {"branches", P_STRS, false},
                                                 {"add_logs", P_ANY, false},
                                                 {"add_patch", P_ANY, false},
                                                 {"report_new", P_BOOL, false},
                                                 {"message_formatter", P_TABLE, false},
                                                 END};
static const struct param buildset_gen_params[] = {{"mode", P_STRS, false},
                                                   {"builders", P_STRS, false},
                                                   {"tags", P_STRS, false},
                                                   {"schedulers", P_STRS, false},
                                                   {"branches", P_STRS, false},
                                                   {"add_logs", P_ANY, false},
                                                   {"add_patch", P_ANY, false},
                                                   {"message_formatter", P_TABLE, false},
                                                   END};
/* IRC; allowForce, allowShutdown and authz are read, useRevisions, lostDelay and failedDelay
   refused, in config/irc.c. */
static const struct param irc_params[] = {{"host", P_STR, true},
                                          {"nick", P_STR, true},
                                          {"channels", P_TABLE, true},
                                          {"pm_to_nicks", P_STRS, false},
                                          {"port", P_INT, false},
                                          {"password", P_STR, false},
                                          {"notify_events", P_STRS, false},
                                          {"tags", P_STRS, false},
                                          {"showBlameList", P_BOOL, false},
                                          {"useSSL", P_BOOL, false},
                                          {"useSASL", P_BOOL, false},
                                          {"useColors", P_BOOL, false},
                                          {"noticeOnChannel", P_BOOL, false},
                                          {"name", P_STR, false},
                                          {"allowForce", P_ANY, false},
                                          {"allowShutdown", P_ANY, false},
                                          {"authz", P_ANY, false},
                                          {"useRevisions", P_ANY, false},
                                          {"lostDelay", P_ANY, false},
                                          {"failedDelay", P_ANY, false},
                                          END};
/* WorkerMissingGenerator and MessageFormatterMissingWorker. */
static const struct param missing_gen_params[] = {
    {"workers", P_STRS, false}, {"message_formatter", P_TABLE, false}, END};
static const struct param missing_fmt_params[] = {{"template", P_STR, false},
                                                  {"subject", P_STR, false},
                                                  {"template_type", P_STR, false},
                                                  {"want_properties", P_BOOL, false},
                                                  {"want_steps", P_BOOL, false},
                                                  {"want_logs", P_BOOL, false},
                                                  {"want_logs_content", P_ANY, false},
                                                  {"ctx", P_ANY, false},
                                                  END};
static const struct param formatter_params[] = {{"template", P_STR, false},
                                                {"subject", P_STR, false},
                                                {"template_type", P_STR, false},
                                                {"want_properties", P_BOOL, false},
                                                {"want_steps", P_BOOL, false},
                                                {"want_logs", P_BOOL, false},
                                                {"want_logs_content", P_ANY, false},
                                                {"ctx", P_ANY, false},
                                                {"extra_info_cb", P_ANY, false},
                                                {"build_additional_context", P_FUNC, false},
                                                END};

/* www.auth (Buildbot's auth classes), www.authz and its endpoint and role matchers. */
static const struct param userpass_params[] = {{"users", P_TABLE, true}, END};
static const struct param htpasswd_params[] = {{"passwdFile", P_STR, true}, END};
static const struct param remoteuser_params[] = {
    {"header", P_STR, false}, {"headerRegex", P_STR, false}, END};
static const struct param github_auth_params[] = {{"clientId", P_STR, true},
                                                  {"clientSecret", P_STR, true},
                                                  {"apiVersion", P_INT, false},
                                                  {"getTeamsMembership", P_BOOL, false},
                                                  {"serverURL", P_STR, false},
                                                  {"debug", P_BOOL, false},
                                                  END};
static const struct param authz_params[] = {
    {"allowRules", P_TABLE, false}, {"roleMatchers", P_TABLE, false}, END};
static const struct param matcher_params[] = {
    {"role", P_STR, true}, {"defaultDeny", P_BOOL, false}, END};
static const struct param builder_matcher_params[] = {{"builder", P_STR, false}, END};
static const struct param branch_matcher_params[] = {{"branch", P_STR, true}, END};
static const struct param view_matcher_params[] = {
    {"branch", P_STR, false}, {"project", P_STR, false}, {"builder", P_STR, false}, END};
static const struct param groups_params[] = {{"groupPrefix", P_STR, false}, END};
static const struct param rolemap_params[] = {{"*", P_STRS, false}, END}; /* role = {...} */
static const struct param owner_params[] = {{"role", P_STR, true}, END};
static const struct param username_params[] = {
    {"roles", P_STRS, true}, {"usernames", P_STRS, true}, END};

static const struct param filter_params[] = {{"project", P_STRS, false},
                                             {"project_not_eq", P_STRS, false},
                                             {"project_re", P_STRS, false},
                                             {"project_not_re", P_STRS, false},
                                             {"project_fn", P_FUNC, false},
                                             {"repository", P_STRS, false},
                                             {"repository_not_eq", P_STRS, false},
                                             {"repository_re", P_STRS, false},
                                             {"repository_not_re", P_STRS, false},
                                             {"repository_fn", P_FUNC, false},
                                             {"branch", P_STRS, false},
                                             {"branch_not_eq", P_STRS, false},
                                             {"branch_re", P_STRS, false},
                                             {"branch_not_re", P_STRS, false},
                                             {"branch_fn", P_FUNC, false},
                                             {"category", P_STRS, false},
                                             {"category_not_eq", P_STRS, false},
                                             {"category_re", P_STRS, false},
                                             {"category_not_re", P_STRS, false},
                                             {"category_fn", P_FUNC, false},
                                             {"codebase", P_STRS, false},
                                             {"codebase_not_eq", P_STRS, false},
                                             {"codebase_re", P_STRS, false},
                                             {"codebase_not_re", P_STRS, false},
                                             {"codebase_fn", P_FUNC, false},
                                             {"property_eq", P_TABLE, false},
                                             {"property_not_eq", P_TABLE, false},
                                             {"property_re", P_TABLE, false},
                                             {"property_not_re", P_TABLE, false},
                                             {"filter_fn", P_FUNC, false},
                                             END};
static const struct param gitpoller_params[] = {{"repourl", P_STR, true},
                                                {"name", P_STR, false},
                                                {"branches", P_ANY, false},
                                                {"branch", P_STR, false},
                                                {"pollInterval", P_NUM, false},
                                                {"pollAtLaunch", P_BOOL, false},
                                                {"gitbin", P_STR, false},
                                                {"workdir", P_STR, false},
                                                {"category", P_STR, false},
                                                {"project", P_STR, false},
                                                {"usetimestamps", P_BOOL, false},
                                                {"fetch_refspec", P_STR, false},
                                                {"only_tags", P_BOOL, false},
                                                {"buildPushesWithNoCommits", P_BOOL, false},
                                                {"pollRandomDelayMin", P_NUM, false},
                                                {"pollRandomDelayMax", P_NUM, false},
                                                {"sshPrivateKey", P_STR, false},
                                                END};
static const struct param pbchange_params[] = {{"user", P_STR, false},
                                               {"passwd", P_STR, false},
                                               {"prefix", P_STR, false},
                                               {"name", P_STR, false},
                                               END};
static const struct param project_params[] = {{"name", P_STR, true},
                                              {"slug", P_STR, false},
                                              {"description", P_STR, false},
                                              {"description_format", P_STR, false},
                                              END};
static const struct param forceparam_params[] = {{"name", P_STR, true},
                                                 {"label", P_STR, false},
                                                 {"default", P_ANY, false},
                                                 {"required", P_BOOL, false},
                                                 {"regex", P_STR, false},
                                                 {"size", P_INT, false},
                                                 {"choices", P_STRS, false},
                                                 {"strict", P_BOOL, false},
                                                 {"multiple", P_BOOL, false},
                                                 {"cols", P_INT, false},
                                                 {"rows", P_INT, false},
                                                 {"hide", P_BOOL, false},
                                                 {"maxsize", P_INT, false},
                                                 {"tablabel", P_STR, false},
                                                 {"fields", P_TABLE, false},
                                                 {"layout", P_STR, false},
                                                 {"columns", P_INT, false},
                                                 {"autopopulate", P_TABLE, false},
                                                 END};
static const struct param codebase_params[] = {
    {"label", P_STR, false},    {"branch", P_ANY, false},
    {"revision", P_ANY, false}, {"repository", P_ANY, false},
    {"project", P_ANY, false},  {"patch", P_ANY, false},
    {"codebase", P_STR, false}, END};

/* ------------------------------------------------------------ checking */

static const char *type_word(enum ptype t)
{
    static const char *const words[] = {
        "a string",
        "a whole number",
        "a number",
        "a boolean",
        "a function",
        "a table",
        "a string or a list of strings",
        "a boolean or a function",
        "a string, a number, a boolean, bbm.interpolate(...) or a function",
        "a string or a list",
        "true, false or a list of results (bbm.results.*)",
        "a list of lock accesses (lock:access(\"counting\") or lock:access(\"exclusive\"))",
        "anything"};
    return words[t];
}

static bool is_kind(lua_State *L, int idx, const char *kind)
{
    if (lua_type(L, idx) != LUA_TTABLE)
        return false;
    lua_getfield(L, idx, CFG_KIND);
    bool ok = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), kind) == 0;
    lua_pop(L, 1);
    return ok;
}

/* How many items of the list at `idx` pass `pred` (-1: not a table). */
static lua_Integer count_items(lua_State *L, int idx, bool (*pred)(lua_State *L, int idx))
{
    if (lua_type(L, idx) != LUA_TTABLE)
        return -1;
    lua_Integer n = luaL_len(L, idx), passed = 0;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        passed += pred(L, -1);
        lua_pop(L, 1);
    }
    return passed;
}

/* Every item of the list at `idx` passes `pred` (false for what is not a table). */
static bool every_item(lua_State *L, int idx, bool (*pred)(lua_State *L, int idx))
{
    return lua_type(L, idx) == LUA_TTABLE && count_items(L, idx, pred) == luaL_len(L, idx);
}

static bool is_string(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TSTRING;
}

static bool is_result(lua_State *L, int idx)
{
    return lua_isinteger(L, idx) && lua_tointeger(L, idx) >= 0 && lua_tointeger(L, idx) <= 6;
}

static bool type_ok(lua_State *L, int idx, enum ptype t)
{
    int lt = lua_type(L, idx);
    switch (t) {
    case P_STR:
        return lt == LUA_TSTRING;
    case P_INT:
        return lua_isinteger(L, idx) ||
               (lt == LUA_TNUMBER && lua_tonumber(L, idx) == (lua_Integer)lua_tonumber(L, idx));
    case P_NUM:
        return lt == LUA_TNUMBER;
    case P_BOOL:
        return lt == LUA_TBOOLEAN;
    case P_FUNC:
        return lt == LUA_TFUNCTION;
    case P_TABLE:
        return lt == LUA_TTABLE;
    case P_STRS:
        return lt == LUA_TSTRING || every_item(L, idx, is_string);
    case P_BOOLFN:
        return lt == LUA_TBOOLEAN || lt == LUA_TFUNCTION;
    case P_RENDER:
        return lt == LUA_TSTRING || lt == LUA_TNUMBER || lt == LUA_TBOOLEAN ||
               lt == LUA_TFUNCTION || is_kind(L, idx, "interpolate");
    case P_CMD:
        return lt == LUA_TSTRING || lt == LUA_TTABLE || is_kind(L, idx, "interpolate");
    case P_POLICY:
        return lt == LUA_TBOOLEAN || every_item(L, idx, is_result);
    case P_LOCKS:
        return every_item(L, idx, cfg_is_lock_access);
    default:
        return true;
    }
}

/*
 * Buildbot's parameters that bbmaster knows by name but does not implement: a
 * configuration that sets one is refused with why, rather than loaded to do less
 * than it says.
 */
static const struct refusal {
    const struct param *list; /* the table the name is in */
    const char *name;
    const char *why;
} refusals[] = {
    {worker_params, "defaultProperties", "set the properties with 'properties'"},
    {worker_params, "machine_name", "bbmaster has no machines"},
    {builder_params, "defaultProperties", "set the properties with 'properties'"},
    {step_params, "lazylogfiles", "every logfile is created when the step starts"},
    {git_params, "sshPrivateKey", "the git step uses the worker's own ssh setup"},
    {setprop_params, "extract_fn", "use 'property' (and 'strip')"},
    {upload_params, "url", "upload steps add no link"},
    {upload_params, "urlText", "upload steps add no link"},
    {dirupload_params, "url", "upload steps add no link"},
    {dirupload_params, "urlText", "upload steps add no link"},
    {multiupload_params, "url", "upload steps add no link"},
    {multiupload_params, "urlText", "upload steps add no link"},
    {trigger_params, "sourceStamps", "use updateSourceStamp or alwaysUseLatest"},
    {branch_sched_params, "createAbsoluteSourceStamps",
     "source stamps carry the change's own revision only"},
    {gitpoller_params, "fetch_refspec", "the poller fetches the branches it follows"},
    {gitpoller_params, "pollRandomDelayMin", "the poller polls at pollInterval exactly"},
    {gitpoller_params, "pollRandomDelayMax", "the poller polls at pollInterval exactly"},
    {gitpoller_params, "sshPrivateKey", "the poller uses the master's own ssh setup"},
};

static bool in_list(const struct param *list, const struct param *p)
{
    for (; list->name != NULL; list++)
        if (list == p)
            return true;
    return false;
}

/* Why the parameter `p` is refused; NULL when it is implemented. */
static const char *refused(const struct param *p)
{
    for (size_t i = 0; i < UTIL_NELEM(refusals); i++)
        if (strcmp(refusals[i].name, p->name) == 0 && in_list(refusals[i].list, p))
            return refusals[i].why;
    return NULL;
}

/*
 * The parameters of `lists` by name, as a Lua table pushed on the stack: name -> light
 * userdata (the struct param), or the reason a refused one is refused (a string); [1] ->
 * the "*" parameter that takes any name, if any.  Earlier lists win, and "*" hides what
 * follows it.  Built once per state and list, kept in the registry: a configuration of a
 * thousand builders calls the constructors tens of thousands of times.
 */
static void push_param_index(lua_State *L, const struct param *const *lists)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, lists) == LUA_TTABLE)
        return;
    lua_pop(L, 1);
    lua_newtable(L);
    bool any = false;
    for (const struct param *const *l = lists; *l != NULL && !any; l++) {
        for (const struct param *p = *l; p->name != NULL && !any; p++) {
            any = strcmp(p->name, "*") == 0;
            if (any) {
                lua_pushlightuserdata(L, (void *)p);
                lua_rawseti(L, -2, 1);
            } else if (lua_getfield(L, -1, p->name) == LUA_TNIL) {
                lua_pop(L, 1);
                if (refused(p) != NULL)
                    lua_pushstring(L, refused(p));
                else
                    lua_pushlightuserdata(L, (void *)p);
                lua_setfield(L, -2, p->name);
            } else {
                lua_pop(L, 1);
            }
        }
    }
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, lists);
}

/* The parameter the key at -2 names in the index at `index`, or NULL with *why set when
   it is refused; NULL with *why NULL when it is unknown. */
static const struct param *find_param(lua_State *L, int index, const char **why)
{
    lua_pushvalue(L, -2);
    int t = lua_rawget(L, index);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        t = lua_rawgeti(L, index, 1);
    }
    *why = t == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    const struct param *p = t == LUA_TLIGHTUSERDATA ? lua_touserdata(L, -1) : NULL;
    lua_pop(L, 1);
    return p;
}

static void suggest_param(const struct param *const *lists, const char *name, char *out,
                          size_t size)
{
    const char *names[256];
    size_t n = 0;
    for (; *lists != NULL; lists++)
        for (const struct param *p = *lists; p->name != NULL && n < 255; p++)
            names[n++] = p->name;
    names[n] = NULL;
    cfg_suggest(name, names, out, size);
}

/* Checks one key = value of the table at `src` (key at -2, value at -1); `index` is the
   lists' push_param_index. */
static void check_entry(lua_State *L, const char *ctor, const struct param *const *lists, int index,
                        const char *file, int line)
{
    if (lua_type(L, -2) != LUA_TSTRING) {
        cfg_error(L, file, line, "%s: positional values are not allowed here; write name = value",
                  ctor);
        return;
    }
    const char *key = lua_tostring(L, -2), *why;
    const struct param *p = find_param(L, index, &why);
    if (why != NULL) {
        cfg_error(L, file, line, "%s: '%s' is a Buildbot parameter bbmaster does not implement: %s",
                  ctor, key, why);
    } else if (p == NULL) {
        char hint[128];
        suggest_param(lists, key, hint, sizeof hint);
        cfg_error(L, file, line, "%s: unknown parameter '%s'%s", ctor, key, hint);
    } else if (p->type == P_LOCKS && count_items(L, -1, cfg_is_lock) > 0) { /* a bare lock */
        cfg_error(L, file, line,
                  "%s: 'locks' names a lock without saying how it is taken; write "
                  "lock:access(\"counting\") or lock:access(\"exclusive\")",
                  ctor);
    } else if (!type_ok(L, -1, p->type)) {
        cfg_error(L, file, line, "%s: '%s' must be %s, not %s", ctor, key, type_word(p->type),
                  luaL_typename(L, -1));
    } else if ((p->type == P_INT || p->type == P_NUM) && lua_tonumber(L, -1) < 0) {
        cfg_error(L, file, line, "%s: '%s' must not be negative", ctor, key);
    }
}

/* Checks every key = value of the table at `src`; returns how many there are. */
static int check_entries(lua_State *L, int src, const char *ctor, const struct param *const *lists,
                         const char *file, int line)
{
    push_param_index(L, lists);
    int index = lua_gettop(L), n = 0;
    lua_pushnil(L);
    while (lua_next(L, src) != 0) {
        check_entry(L, ctor, lists, index, file, line);
        lua_pop(L, 1);
        n++;
    }
    lua_pop(L, 1);
    return n;
}

/*
 * The generic constructor: validates the table at `src` against `lists`
 * (NULL-terminated) and pushes a copy with _kind, _file and _line.
 */
static void construct(lua_State *L, int src, const char *kind, const char *ctor,
                      const struct param *const *lists)
{
    char file[256];
    int line;
    cfg_caller(L, file, sizeof file, &line);
    if (lua_type(L, src) != LUA_TTABLE) {
        lua_newtable(L);
        cfg_error(L, file, line, "%s expects a table of parameters, not %s", ctor,
                  luaL_typename(L, src));
    } else {
        int n = check_entries(L, src, ctor, lists, file, line);
        lua_createtable(L, 0, n + 3); /* sized once: the copy and _kind, _file, _line */
        int dst = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, src) != 0) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, dst);
        }
        for (const struct param *const *l = lists; *l != NULL; l++) {
            for (const struct param *p = *l; p->name != NULL; p++) {
                if (p->required && lua_getfield(L, dst, p->name) == LUA_TNIL)
                    cfg_error(L, file, line, "%s: missing required parameter '%s'", ctor, p->name);
                if (p->required)
                    lua_pop(L, 1);
            }
        }
    }
    int dst = lua_gettop(L);
    lua_pushstring(L, kind);
    lua_setfield(L, dst, CFG_KIND);
    lua_pushstring(L, file);
    lua_setfield(L, dst, CFG_FILE);
    lua_pushinteger(L, line);
    lua_setfield(L, dst, CFG_LINE);
}

/* ------------------------------------------------------------ constructors */

struct ctor {
    const char *name; /* Lua name within its group */
    const char *kind; /* the _kind of the result */
    const char *display;
    const struct param *lists[4]; /* NULL-terminated */
};

static const struct ctor ctors[] = {
    {"builder", "builder", "bbm.builder", {builder_params}},
    {"change_filter", "change_filter", "bbm.change_filter", {filter_params}},
    {"project", "project", "bbm.project", {project_params}},
    {"steps.shell", "step.shell", "bbm.steps.shell", {shell_params, step_params}},
    {"steps.configure", "step.configure", "bbm.steps.configure", {shell_params, step_params}},
    {"steps.compile", "step.compile", "bbm.steps.compile", {shell_params, step_params}},
    {"steps.test", "step.test", "bbm.steps.test", {shell_params, step_params}},
    {"steps.git", "step.git", "bbm.steps.git", {git_params, step_params}},
    {"steps.github", "step.github", "bbm.steps.github", {git_params, step_params}},
    {"steps.set_property_from_command",
     "step.set_property_from_command",
     "bbm.steps.set_property_from_command",
     {setprop_params, step_params}},
    {"steps.file_upload",
     "step.file_upload",
     "bbm.steps.file_upload",
     {upload_params, step_params}},
    {"steps.file_download",
     "step.file_download",
     "bbm.steps.file_download",
     {download_params, step_params}},
    {"steps.directory_upload",
     "step.directory_upload",
     "bbm.steps.directory_upload",
     {dirupload_params, step_params}},
    {"steps.multiple_file_upload",
     "step.multiple_file_upload",
     "bbm.steps.multiple_file_upload",
     {multiupload_params, step_params}},
    {"steps.string_download",
     "step.string_download",
     "bbm.steps.string_download",
     {stringdl_params, step_params}},
    {"steps.mkdir", "step.mkdir", "bbm.steps.mkdir", {dir_params, step_params}},
    {"steps.rmdir", "step.rmdir", "bbm.steps.rmdir", {dir_params, step_params}},
    {"steps.copy_directory",
     "step.copy_directory",
     "bbm.steps.copy_directory",
     {cpdir_params, step_params}},
    {"steps.file_exists",
     "step.file_exists",
     "bbm.steps.file_exists",
     {fileexists_params, step_params}},
    {"steps.remove_worker_file_secret",
     "step.remove_worker_file_secret",
     "bbm.steps.remove_worker_file_secret",
     {rmsecret_params, step_params}},
    {"steps.master_shell_command",
     "step.master_shell_command",
     "bbm.steps.master_shell_command",
     {mastershell_params, step_params}},
    {"steps.trigger", "step.trigger", "bbm.steps.trigger", {trigger_params, step_params}},
    {"schedulers.single_branch",
     "scheduler.single_branch",
     "bbm.schedulers.single_branch",
     {sched_params, branch_sched_params}},
    {"schedulers.any_branch",
     "scheduler.any_branch",
     "bbm.schedulers.any_branch",
     {sched_params, branch_sched_params}},
    {"schedulers.force", "scheduler.force", "bbm.schedulers.force", {sched_params, force_params}},
    {"schedulers.pull_request",
     "scheduler.pull_request",
     "bbm.schedulers.pull_request",
     {sched_params, branch_sched_params, pr_sched_params}},
    {"schedulers.periodic",
     "scheduler.periodic",
     "bbm.schedulers.periodic",
     {sched_params, periodic_params}},
    {"schedulers.nightly",
     "scheduler.nightly",
     "bbm.schedulers.nightly",
     {sched_params, nightly_params}},
    {"schedulers.triggerable",
     "scheduler.triggerable",
     "bbm.schedulers.triggerable",
     {sched_params, none_params}},
    {"configurators.janitor",
     "configurator.janitor",
     "bbm.configurators.janitor",
     {janitor_params}},
    {"reporters.github_status_push",
     "reporter.github_status_push",
     "bbm.reporters.github_status_push",
     {ghstatus_params}},
    {"reporters.http_status_push",
     "reporter.http_status_push",
     "bbm.reporters.http_status_push",
     {httppush_params}},
    {"reporters.github_comment_push",
     "reporter.github_comment_push",
     "bbm.reporters.github_comment_push",
     {ghcomment_params}},
    {"reporters.message_formatter_function",
     "formatter.function",
     "bbm.reporters.message_formatter_function",
     {fnformatter_params}},
    {"reporters.irc", "reporter.irc", "bbm.reporters.irc", {irc_params}},
    {"reporters.mail_notifier",
     "reporter.mail_notifier",
     "bbm.reporters.mail_notifier",
     {mail_params}},
    {"reporters.build_start_end_status_generator",
     "generator.build_start_end_status",
     "bbm.reporters.build_start_end_status_generator",
     {startend_params}},
    {"reporters.build_request_generator",
     "generator.build_request",
     "bbm.reporters.build_request_generator",
     {request_params}},
    {"reporters.build_status_generator",
     "generator.build_status",
     "bbm.reporters.build_status_generator",
     {status_gen_params}},
    {"reporters.build_set_status_generator",
     "generator.build_set_status",
     "bbm.reporters.build_set_status_generator",
     {buildset_gen_params}},
    {"reporters.message_formatter",
     "formatter.message",
     "bbm.reporters.message_formatter",
     {formatter_params}},
    {"reporters.worker_missing_generator",
     "generator.worker_missing",
     "bbm.reporters.worker_missing_generator",
     {missing_gen_params}},
    {"reporters.message_formatter_missing_worker",
     "formatter.missing_worker",
     "bbm.reporters.message_formatter_missing_worker",
     {missing_fmt_params}},
    {"reporters.message_formatter_renderable",
     "formatter.renderable",
     "bbm.reporters.message_formatter_renderable",
     {renderable_params}},
    {"www.no_auth", "www.no_auth", "bbm.www.no_auth", {none_params}},
    {"www.user_password_auth",
     "www.user_password_auth",
     "bbm.www.user_password_auth",
     {userpass_params}},
    {"www.htpasswd_auth", "www.htpasswd_auth", "bbm.www.htpasswd_auth", {htpasswd_params}},
    {"www.remote_user_auth",
     "www.remote_user_auth",
     "bbm.www.remote_user_auth",
     {remoteuser_params}},
    {"www.github_auth", "www.github_auth", "bbm.www.github_auth", {github_auth_params}},
    {"www.authz", "www.authz", "bbm.www.authz", {authz_params}},
    {"www.any_endpoint_matcher",
     "www.any_endpoint_matcher",
     "bbm.www.any_endpoint_matcher",
     {matcher_params}},
    {"www.any_control_endpoint_matcher",
     "www.any_control_endpoint_matcher",
     "bbm.www.any_control_endpoint_matcher",
     {matcher_params}},
    {"www.force_build_endpoint_matcher",
     "www.force_build_endpoint_matcher",
     "bbm.www.force_build_endpoint_matcher",
     {matcher_params, builder_matcher_params}},
    {"www.stop_build_endpoint_matcher",
     "www.stop_build_endpoint_matcher",
     "bbm.www.stop_build_endpoint_matcher",
     {matcher_params, builder_matcher_params}},
    {"www.rebuild_build_endpoint_matcher",
     "www.rebuild_build_endpoint_matcher",
     "bbm.www.rebuild_build_endpoint_matcher",
     {matcher_params, builder_matcher_params}},
    {"www.enable_scheduler_endpoint_matcher",
     "www.enable_scheduler_endpoint_matcher",
     "bbm.www.enable_scheduler_endpoint_matcher",
     {matcher_params}},
    {"www.branch_endpoint_matcher",
     "www.branch_endpoint_matcher",
     "bbm.www.branch_endpoint_matcher",
     {matcher_params, branch_matcher_params}},
    {"www.view_builds_endpoint_matcher",
     "www.view_builds_endpoint_matcher",
     "bbm.www.view_builds_endpoint_matcher",
     {matcher_params, view_matcher_params}},
    {"www.roles_from_groups",
     "www.roles_from_groups",
     "bbm.www.roles_from_groups",
     {groups_params}},
    {"www.roles_from_emails",
     "www.roles_from_emails",
     "bbm.www.roles_from_emails",
     {rolemap_params}},
    {"www.roles_from_domain",
     "www.roles_from_domain",
     "bbm.www.roles_from_domain",
     {rolemap_params}},
    {"www.roles_from_owner", "www.roles_from_owner", "bbm.www.roles_from_owner", {owner_params}},
    {"www.roles_from_username",
     "www.roles_from_username",
     "bbm.www.roles_from_username",
     {username_params}},
    {"changes.pb", "change_source.pb", "bbm.changes.pb", {pbchange_params}},
    {"changes.git_poller",
     "change_source.git_poller",
     "bbm.changes.git_poller",
     {gitpoller_params}},
    {"params.string", "param.string", "bbm.params.string", {forceparam_params}},
    {"params.int", "param.int", "bbm.params.int", {forceparam_params}},
    {"params.bool", "param.bool", "bbm.params.bool", {forceparam_params}},
    {"params.choice_string",
     "param.choice_string",
     "bbm.params.choice_string",
     {forceparam_params}},
    {"params.text", "param.text", "bbm.params.text", {forceparam_params}},
    {"params.fixed", "param.fixed", "bbm.params.fixed", {forceparam_params}},
    {"params.username", "param.username", "bbm.params.username", {forceparam_params}},
    {"params.nested", "param.nested", "bbm.params.nested", {forceparam_params}},
};

/* A table with no list part: a dict in Buildbot's terms. */
static bool is_dict(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TTABLE && lua_rawlen(L, idx) == 0;
}

/* What Buildbot's Git step refuses at configuration time, and the types of the parameters
   that are a choice of two (shallow: true or a depth; getDescription: true or options). */
static void check_git(lua_State *L, int idx, const char *file, int line)
{
    int shallow = lua_getfield(L, idx, "shallow");
    bool deep = shallow == LUA_TNIL || (shallow == LUA_TBOOLEAN && !lua_toboolean(L, -1)) ||
                (lua_isinteger(L, -1) && lua_tointeger(L, -1) == 0);
    if (shallow != LUA_TNIL && shallow != LUA_TBOOLEAN &&
        !(lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0))
        cfg_error(L, file, line,
                  "bbm.steps.git: 'shallow' must be a boolean or a depth (a whole "
                  "number), not %s",
                  lua_tostring(L, -1) != NULL ? lua_tostring(L, -1) : luaL_typename(L, -1));
    const char *mode =
        lua_getfield(L, idx, "mode") == LUA_TSTRING ? lua_tostring(L, -1) : "incremental";
    bool method = lua_getfield(L, idx, "method") == LUA_TSTRING;
    if (!deep && method &&
        (strcmp(mode, "full") != 0 || strcmp(lua_tostring(L, -1), "clobber") != 0))
        cfg_error(L, file, line,
                  "Git: in mode 'full' shallow only possible with method 'clobber'.");
    int describe = lua_getfield(L, idx, "getDescription");
    if (describe != LUA_TNIL && describe != LUA_TBOOLEAN && !is_dict(L, -1))
        cfg_error(L, file, line, "Git: getDescription must be a boolean or a dict.");
    if (lua_getfield(L, idx, "config") != LUA_TNIL && !is_dict(L, -1))
        cfg_error(L, file, line, "bbm.steps.git: 'config' must be a table of name = value");
    lua_pop(L, 5);
}

/* Checks beyond the parameters' types, by the result's kind. */
static const struct {
    const char *kind;
    void (*check)(lua_State *L, int idx, const char *file, int line);
} checks[] = {{"step.git", check_git}};

static int generic_ctor(lua_State *L)
{
    const struct ctor *c = lua_touserdata(L, lua_upvalueindex(1));
    construct(L, 1, c->kind, c->display, c->lists);
    int idx = lua_gettop(L);
    for (size_t i = 0; i < UTIL_NELEM(checks); i++) {
        if (strcmp(checks[i].kind, c->kind) != 0)
            continue;
        lua_getfield(L, idx, CFG_FILE);
        lua_getfield(L, idx, CFG_LINE);
        char file[256];
        snprintf(file, sizeof file, "%s", lua_tostring(L, -2));
        int line = (int)lua_tointeger(L, -1);
        lua_pop(L, 2);
        checks[i].check(L, idx, file, line);
    }
    return 1;
}

const char *cfg_kind_display(const char *kind)
{
    for (size_t i = 0; i < UTIL_NELEM(ctors); i++)
        if (strcmp(ctors[i].kind, kind) == 0)
            return ctors[i].display;
    static const char *const others[][2] = {{"worker", "bbm.worker"},
                                            {"factory", "bbm.factory"},
                                            {"interpolate", "bbm.interpolate"},
                                            {"param.codebase", "bbm.params.codebase"}};
    for (size_t i = 0; i < UTIL_NELEM(others); i++)
        if (strcmp(others[i][0], kind) == 0)
            return others[i][1];
    return NULL;
}

/* The number option `key` of the table at `idx` within [min, max] if it is there (its type,
   and a negative value, are construct's to report). */
static void check_bounds(lua_State *L, int idx, const char *ctor, const char *key, long min,
                         long max, const char *file, int line)
{
    if (lua_getfield(L, idx, key) == LUA_TNUMBER) {
        double v = lua_tonumber(L, -1);
        if (v >= 0 && (v < (double)min || v > (double)max))
            cfg_error(L, file, line, "%s: '%s' must be between %ld and %ld, not %s", ctor, key, min,
                      max, lua_tostring(L, -1));
    }
    lua_pop(L, 1);
}

/* bbmaster's own liveness check (Buildbot has none): ping_interval turns it on. */
static void check_ping(lua_State *L, int idx, const char *file, int line)
{
    check_bounds(L, idx, "bbm.worker", "ping_interval", 1, CFG_PING_INTERVAL_MAX, file, line);
    check_bounds(L, idx, "bbm.worker", "ping_timeout", 1, CFG_PING_TIMEOUT_MAX, file, line);
    bool interval = lua_getfield(L, idx, "ping_interval") != LUA_TNIL;
    bool timeout = lua_getfield(L, idx, "ping_timeout") != LUA_TNIL;
    lua_pop(L, 2);
    if (timeout && !interval)
        cfg_error(L, file, line,
                  "bbm.worker: 'ping_timeout' needs 'ping_interval' (without it workers are "
                  "not pinged)");
}

/* notify_on_missing: addresses a mail can go to (Buildbot takes any string, and the relay
   then refuses what is not one); missing_timeout: 0 (no alert) or seconds. */
static void check_missing(lua_State *L, int idx, const char *file, int line)
{
    check_bounds(L, idx, "bbm.worker", "missing_timeout", 0, CFG_MISSING_TIMEOUT_MAX, file, line);
    size_t n = 0;
    char **v = cfg_string_list(L, idx, "notify_on_missing", &n, false);
    if (n > CFG_NOTIFY_MAX)
        cfg_error(L, file, line, "bbm.worker: 'notify_on_missing' has more than %d addresses",
                  CFG_NOTIFY_MAX);
    for (size_t i = 0; i < n; i++) {
        if (!rep_mail_valid(v[i]) || strpbrk(v[i], "\r\n") != NULL)
            cfg_error(L, file, line, "bbm.worker: notify_on_missing arg '%s' is not a valid email",
                      UTIL_ESC(v[i]));
        free(v[i]);
    }
    free(v);
}

/* bbm.worker(name, password, {options}) */
static int worker_ctor(lua_State *L)
{
    static const struct param *const lists[] = {worker_params, NULL};
    char file[256];
    int line;
    cfg_caller(L, file, sizeof file, &line);
    lua_settop(L, 3); /* missing arguments become nil: lua_replace needs a slot */
    if (lua_isnil(L, 3))
        lua_newtable(L), lua_replace(L, 3);
    construct(L, 3, "worker", "bbm.worker", lists);
    check_ping(L, lua_gettop(L), file, line);
    check_missing(L, lua_gettop(L), file, line);
    if (lua_type(L, 1) != LUA_TSTRING || lua_rawlen(L, 1) == 0)
        cfg_error(L, file, line, "bbm.worker: the name must be a non-empty string");
    if (lua_type(L, 2) != LUA_TSTRING)
        cfg_error(L, file, line, "bbm.worker: the password must be a string, not %s",
                  luaL_typename(L, 2));
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "name");
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "password");
    return 1;
}

/* bbm.params.codebase(name, {options}) */
static int codebase_ctor(lua_State *L)
{
    static const struct param *const lists[] = {codebase_params, NULL};
    lua_settop(L, 2);
    if (lua_isnil(L, 2))
        lua_newtable(L), lua_replace(L, 2);
    construct(L, 2, "param.codebase", "bbm.params.codebase", lists);
    lua_pushstring(L, luaL_optstring(L, 1, ""));
    lua_setfield(L, -2, "codebase");
    return 1;
}

/* bbm.factory{step, step, ...}; the result has :addStep(step). */
static int factory_add_step(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "steps");
    lua_pushvalue(L, 2);
    lua_seti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
    return 0;
}

static int factory_ctor(lua_State *L)
{
    char file[256];
    int line;
    cfg_caller(L, file, sizeof file, &line);
    lua_newtable(L);
    lua_newtable(L);
    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_Integer n = luaL_len(L, 1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, 1, i);
            lua_getfield(L, -1, CFG_KIND);
            const char *kind = lua_type(L, -2) == LUA_TTABLE ? lua_tostring(L, -1) : NULL;
            if (kind == NULL || strncmp(kind, "step.", 5) != 0)
                cfg_error(L, file, line, "bbm.factory: step %lld is not a bbm.steps.* step",
                          (long long)i);
            lua_pop(L, 1);
            lua_seti(L, -2, i);
        }
    } else if (!lua_isnone(L, 1)) {
        cfg_error(L, file, line, "bbm.factory expects a list of steps");
    }
    lua_setfield(L, -2, "steps");
    lua_pushstring(L, "factory");
    lua_setfield(L, -2, CFG_KIND);
    lua_newtable(L);
    lua_pushcfunction(L, factory_add_step);
    lua_setfield(L, -2, "addStep");
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "__index");
    cfg_own_metatable(L, -1);
    lua_setmetatable(L, -2);
    return 1;
}

/* bbm.interpolate(fmt, ...): kept as a table for the engine to render. */
static int interpolate_ctor(lua_State *L)
{
    luaL_checkstring(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "fmt");
    lua_pushstring(L, "interpolate");
    lua_setfield(L, -2, CFG_KIND);
    int n = lua_gettop(L) - 2;
    lua_newtable(L);
    for (int i = 1; i <= n; i++) {
        lua_pushvalue(L, i + 1);
        lua_seti(L, -2, i);
    }
    lua_setfield(L, -2, "args");
    return 1;
}

/* Buildbot's reporters, generators and formatters that bbmaster does not have yet: their
   bbm names, so that a configuration using one is refused with where and why. */
static const char *const unimplemented[][2] = {
    {"reporters.gitlab_status_push", "GitLabStatusPush"},
    {"reporters.gitea_status_push", "GiteaStatusPush"},
    {"reporters.gerrit_status_push", "GerritStatusPush"},
    {"reporters.bitbucket_status_push", "BitbucketStatusPush"},
    {"reporters.bitbucket_server_status_push", "BitbucketServerStatusPush"},
    {"reporters.bitbucket_server_pr_comment_push", "BitbucketServerPRCommentPush"},
    {"reporters.bitbucket_server_core_api_status_push", "BitbucketServerCoreAPIStatusPush"},
    {"reporters.pushover_notifier", "PushoverNotifier"},
    {"reporters.pushjet_notifier", "PushjetNotifier"},
    {"reporters.telegram_bot", "TelegramBot"},
    {"reporters.zulip_status_push", "ZulipStatusPush"},
    {"reporters.github_pull_request_reporter", "GitHubPullRequestReporter"},
    {"reporters.build_set_combined_status_generator", "BuildSetCombinedStatusGenerator"},
};

/* One of those: an error at the call, and a table of a kind nothing accepts. */
static int unimplemented_ctor(lua_State *L)
{
    const char *const *u = lua_touserdata(L, lua_upvalueindex(1));
    char file[256];
    int line;
    cfg_caller(L, file, sizeof file, &line);
    cfg_error(L, file, line,
              "bbm.%s (Buildbot's %s) is not implemented yet: bbmaster reports through "
              "bbm.reporters.github_status_push, bbm.reporters.http_status_push, "
              "bbm.reporters.github_comment_push, bbm.reporters.irc and "
              "bbm.reporters.mail_notifier with "
              "bbm.reporters.build_start_end_status_generator, "
              "bbm.reporters.build_request_generator, "
              "bbm.reporters.build_status_generator, "
              "bbm.reporters.build_set_status_generator and "
              "bbm.reporters.worker_missing_generator",
              u[0], u[1]);
    lua_newtable(L);
    lua_pushstring(L, "unimplemented");
    lua_setfield(L, -2, CFG_KIND);
    return 1;
}

/* Stores the function at the top at path "group.name" (or "name") of the module table below it. */
static void set_path(lua_State *L, const char *path)
{
    const char *dot = strchr(path, '.');
    if (dot == NULL) {
        lua_setfield(L, -2, path);
        return;
    }
    char group[32];
    snprintf(group, sizeof group, "%.*s", (int)(dot - path), path);
    if (lua_getfield(L, -2, group) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -4, group);
    }
    lua_insert(L, -2);
    lua_setfield(L, -2, dot + 1);
    lua_pop(L, 1);
}

int cfg_open_bbm(lua_State *L)
{
    lua_newtable(L);
    for (size_t i = 0; i < UTIL_NELEM(ctors); i++) {
        lua_pushlightuserdata(L, (void *)&ctors[i]);
        lua_pushcclosure(L, generic_ctor, 1);
        set_path(L, ctors[i].name);
    }
    for (size_t i = 0; i < UTIL_NELEM(unimplemented); i++) {
        lua_pushlightuserdata(L, (void *)unimplemented[i]);
        lua_pushcclosure(L, unimplemented_ctor, 1);
        set_path(L, unimplemented[i][0]);
    }
    lua_pushcfunction(L, worker_ctor);
    set_path(L, "worker");
    lua_pushcfunction(L, factory_ctor);
    set_path(L, "factory");
    lua_pushcfunction(L, interpolate_ctor);
    set_path(L, "interpolate");
    lua_pushcfunction(L, codebase_ctor);
    set_path(L, "params.codebase");
    lua_pushcfunction(L, cfg_yaml_load);
    set_path(L, "yaml.load");
    lua_pushcfunction(L, cfg_log_msg);
    set_path(L, "log.msg");
    lua_pushcfunction(L, cfg_log_err);
    set_path(L, "log.err");
    cfg_push_locks(L);
    lua_setfield(L, -2, "locks");
    cfg_push_re(L);
    lua_setfield(L, -2, "re");
    /* Buildbot's result codes (buildbot.process.results) */
    static const char *const results[] = {"SUCCESS",   "WARNINGS", "FAILURE",  "SKIPPED",
                                          "EXCEPTION", "RETRY",    "CANCELLED"};
    lua_createtable(L, 0, UTIL_NELEM(results));
    for (size_t i = 0; i < UTIL_NELEM(results); i++) {
        lua_pushinteger(L, (lua_Integer)i);
        lua_setfield(L, -2, results[i]);
    }
    lua_setfield(L, -2, "results");
    return 1;
}
