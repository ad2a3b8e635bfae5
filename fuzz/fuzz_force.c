/*
 * libFuzzer target for the force action's parameters (schedulers/force_params.c):
 * whatever JSON a client posts to /api/v2/forceschedulers/NAME, checking it
 * against a form with every kind of field must end in a request or in errors,
 * within bounds and without leaks.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config/config.h"
#include "schedulers/schedulers.h"

static const char config[] =
    "local bbm = require 'bbm'\n"
    "return { workers = { bbm.worker('w', 'p') },\n"
    "  builders = { bbm.builder{ name = 'a', workernames = { 'w' }, factory = bbm.factory{\n"
    "    bbm.steps.shell{ command = 'true' } } },\n"
    "    bbm.builder{ name = 'b', workernames = { 'w' }, factory = bbm.factory{\n"
    "    bbm.steps.shell{ command = 'true' } } } },\n"
    "  schedulers = { bbm.schedulers.force{ name = 'f', builderNames = { 'a', 'b' },\n"
    "    codebases = { bbm.params.codebase('cb', { branch = 'main' }), 'other' },\n"
    "    properties = {\n"
    "      bbm.params.choice_string{ name = 'c', choices = { 'x', 'y' } },\n"
    "      bbm.params.int{ name = 'i', required = true },\n"
    "      bbm.params.bool{ name = 'b' },\n"
    "      bbm.params.string{ name = 's', maxsize = 8, multiple = true },\n"
    "      bbm.params.nested{ name = 'n', fields = {\n"
    "        bbm.params.text{ name = 't' }, bbm.params.fixed{ name = 'f', default = 1 } } } } } } "
    "}\n";

static struct cfg *cfg;

static void load(void)
{
    char path[] = "/tmp/fuzz-force-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, config, sizeof config - 1) != (ssize_t)(sizeof config - 1))
        abort();
    close(fd);
    char *cause = NULL;
    if (cfg_load(path, &cfg, &cause) != 0) {
        fprintf(stderr, "%s\n", cause);
        abort();
    }
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (cfg == NULL)
        load();
    if (size > 1 << 16)
        return 0;
    json_t *params = json_loadb((const char *)data, size, 0, NULL);
    if (!json_is_object(params)) {
        json_decref(params);
        return 0;
    }
    struct sched_force_req req;
    json_t *errors = NULL;
    int rc = sched_force_parse(cfg, "f", params, &req, &errors);
    if (rc == SCHED_FORCE_OK) {
        if (req.reason == NULL || !json_is_array(req.properties))
            abort();
        sched_force_req_free(&req);
    } else if (rc == SCHED_FORCE_INVALID) {
        if (!json_is_object(errors) || json_object_size(errors) == 0)
            abort();
        json_decref(errors);
    }
    json_decref(params);
    return 0;
}
