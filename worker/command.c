/*
 * command.c: the commands a builder runs for the master (SPEC 5.6-5.8).
 */
#include <stdlib.h>

#include "bbw_internal.h"

const char *const bbw_cmd_names[] = {NULL};

void bbw_cmd_start(struct bbw_builder *b, struct pb_call *call)
{
    (void)b;
    pb_call_fail_with(call, "buildbot_worker.exceptions.UnknownCommand", pb_parents_pb_error,
                      "(command %s): unrecognized WorkerCommand '%s'",
                      pb_str(pb_item(call->args, 1)), pb_str(pb_item(call->args, 2)));
}

void bbw_cmd_interrupt(struct bbw_builder *b, struct pb_call *call)
{
    (void)b;
    pb_call_answer(call, NULL);
}

void bbw_cmd_abandon(struct bbw_builder *b)
{
    (void)b;
}
