/*
 * The `bbmaster` command line: Buildbot's verbs for a master directory.  The
 * same file is the main of two programs: `bbmaster`, which runs stop and
 * reconfig itself and hands every other verb to `bbmaster-core` (front.c),
 * and `bbmaster-core`, the master with all its libraries (lifecycle.c).
 * Starting a program that loads the master's 47 shared libraries takes 10-20
 * ms, which a reconfig (which itself takes tens of ms) need not wait for.
 *
 *   bbmaster create-master DIR
 *   bbmaster checkconfig [--dump] [DIR|FILE]
 *   bbmaster start [--nodaemon] [DIR]
 *   bbmaster stop [--timeout N] [DIR]
 *   bbmaster restart [--nodaemon] [--timeout N] [DIR]
 *   bbmaster reconfig [--timeout N] [DIR]
 *   bbmaster sendchange --master HOST:PORT [options] [FILES...]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "master.h"
#include "util/util.h"

static const char usage[] =
    "usage: bbmaster COMMAND [options] [DIR]\n"
    "\n"
    "commands:\n"
    "  create-master DIR       create a master directory with a sample master.lua\n"
    "  checkconfig [DIR|FILE]  load and validate the configuration, start nothing\n"
    "    --dump                and print it as JSON on stdout (secrets masked), to diff\n"
    "  upgrade-master DIR      create or upgrade the database to Buildbot 4.3's schema\n"
    "  start [--nodaemon] DIR  start the master (in the background unless --nodaemon)\n"
    "  stop [--timeout N] DIR  stop the master: SIGTERM, then SIGKILL after N s (10)\n"
    "    --clean               a clean shutdown (SIGUSR1): no new build starts, and the\n"
    "                          master stops once the running ones have finished\n"
    "  cleanshutdown DIR       stop --clean\n"
    "  restart [--clean] DIR   stop, then start\n"
    "  reconfig DIR            reload master.lua in the running master (SIGHUP)\n"
    "  sendchange --master HOST:PORT ...  send a change, as `buildbot sendchange`\n"
    "  --version               print the version\n";

static int parse(int argc, char **argv, struct master_args *a, int default_timeout)
{
    static const struct option longopts[] = {
        {"nodaemon", no_argument, NULL, 'n'}, {"timeout", required_argument, NULL, 't'},
        {"dump", no_argument, NULL, 'd'},     {"clean", no_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},     {NULL, 0, NULL, 0},
    };
    a->nodaemon = false;
    a->dump = false;
    a->clean = false;
    a->timeout = default_timeout;
    a->dir = ".";
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "nt:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            a->nodaemon = true;
            break;
        case 'd':
            a->dump = true;
            break;
        case 'c':
            a->clean = true;
            break;
        case 't':
            if (util_parse_long(optarg, 1, 86400, &v) != 0) {
                fprintf(stderr, "bbmaster: --timeout wants a number of seconds (1..86400)\n");
                return -1;
            }
            a->timeout = (int)v;
            break;
        default:
            fputs(usage, stderr);
            return -1;
        }
    }
    if (optind < argc)
        a->dir = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "bbmaster: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || util_streq(argv[1], "--help") || util_streq(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (util_streq(argv[1], "--version")) {
        printf("bbmaster %s\n", BBM_VERSION);
        return 0;
    }
    const char *verb = argv[1];
    if (util_streq(verb, "sendchange"))
        return master_core(verb, NULL, argc, argv);
    struct master_args a;
    int timeout = util_streq(verb, "reconfig") ? 60 : 10;
    if (parse(argc - 1, argv + 1, &a, timeout) != 0)
        return 2;
    if (a.dump && !util_streq(verb, "checkconfig")) {
        fprintf(stderr, "bbmaster: --dump goes with checkconfig\n");
        return 2;
    }
    if (a.clean && !util_streq(verb, "stop") && !util_streq(verb, "restart")) {
        fprintf(stderr, "bbmaster: --clean goes with stop and restart\n");
        return 2;
    }
    if (util_streq(verb, "stop") || util_streq(verb, "cleanshutdown"))
        return master_stop(a.dir, a.timeout, a.clean || util_streq(verb, "cleanshutdown"));
    if (util_streq(verb, "reconfig") || util_streq(verb, "sighup"))
        return master_reconfig(a.dir, a.timeout);
    static const char *const core_verbs[] = {"create-master", "checkconfig", "upgrade-master",
                                             "start", "restart"};
    for (size_t i = 0; i < sizeof core_verbs / sizeof core_verbs[0]; i++)
        if (util_streq(verb, core_verbs[i]))
            return master_core(verb, &a, argc, argv);
    fprintf(stderr, "bbmaster: unknown command '%s'\n\n%s", verb, usage);
    return 2;
}
