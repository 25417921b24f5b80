/*
 * events.c - the tables of ft/events.h (read the header's tables first: these
 * rows say the same, in the order of the enums).
 */
#include "ft/events.h"

const struct ft_line_def ft_lines[FT_LINE_COUNT] = {
	[FT_LINE_START] = { "start", FT_RELAY_LOG, "log", "trainer started" },
	[FT_LINE_STEP] = { "step", FT_RELAY_DATA, "progress", NULL },
	[FT_LINE_EVAL] = { "eval", FT_RELAY_DATA, "eval", NULL },
	[FT_LINE_CHECKPOINT] = { "checkpoint", FT_RELAY_STORE, "checkpoint", NULL },
	[FT_LINE_ARTIFACT] = { "artifact", FT_RELAY_STORE, "artifact", NULL },
	[FT_LINE_EARLY_STOP] = { "early_stop", FT_RELAY_LOG, "log", "early stopping" },
	[FT_LINE_INTERRUPTED] = { "interrupted", FT_RELAY_REMEMBER, NULL, NULL },
	[FT_LINE_EXPORT] = { "export", FT_RELAY_DATA, "progress", NULL },
	[FT_LINE_EVALUATE] = { "evaluate", FT_RELAY_DATA, "progress", NULL },
	[FT_LINE_RESULT] = { "result", FT_RELAY_DATA, "result", NULL },
	[FT_LINE_DONE] = { "done", FT_RELAY_REMEMBER, NULL, NULL },
};

const struct ft_line_def *ft_line_find(const char *type)
{
	for (size_t i = 0; type && i < FT_LINE_COUNT; i++)
		if (strcmp(ft_lines[i].type, type) == 0)
			return &ft_lines[i];
	return NULL;
}

const struct ft_ev_def ft_events[FT_EV_COUNT] = {
	[FT_EV_STARTED] = { "started", "message", "info", FT_JS_DISPATCHED, { NULL } },
	[FT_EV_PROGRESS] = { "progress", "metrics", "info", 0, { NULL } },
	[FT_EV_EVAL] = { "eval", "metrics", "info", 0, { NULL } },
	[FT_EV_LOG] = { "log", "message", "info", 0, { NULL } },
	[FT_EV_CHECKPOINT] = { "checkpoint", "message", "info", 0, { NULL } },
	[FT_EV_ARTIFACT] = { "artifact", "message", "info", 0, { NULL } },
	[FT_EV_SUCCEEDED] = { "succeeded",
			      "message",
			      "info",
			      FT_JS_ACTIVE,
			      { "fine_tuning.job.succeeded", "model.export.succeeded",
				"eval.succeeded" } },
	[FT_EV_FAILED] = { "failed",
			   "message",
			   "error",
			   FT_JS_ACTIVE,
			   { "fine_tuning.job.failed", "model.export.failed", "eval.failed" } },
	[FT_EV_CANCELLED] = { "cancelled",
			      "message",
			      "info",
			      FT_JS_ACTIVE,
			      { "fine_tuning.job.cancelled", NULL, NULL } },
	[FT_EV_HANDBACK] = { "handback", "message", "info", FT_JS_ACTIVE, { NULL } },
	[FT_EV_RESULT] = { "result", "metrics", "info", 0, { NULL } },
};
bool ft_ev_find(const char *kind, enum ft_ev *ev)
{
	for (int i = 0; kind && i < FT_EV_COUNT; i++)
		if (strcmp(ft_events[i].kind, kind) == 0) {
			*ev = (enum ft_ev)i;
			return true;
		}
	return false;
}

unsigned ft_job_state_bit(const char *status)
{
	static const struct {
		const char *name;
		unsigned bit;
	} states[] = {
		{ "dispatched", FT_JS_DISPATCHED },
		{ "running", FT_JS_RUNNING },
		{ "cancelling", FT_JS_CANCELLING },
		{ "pausing", FT_JS_PAUSING },
	};
	for (size_t i = 0; status && i < FT_ARRAY_LEN(states); i++)
		if (strcmp(states[i].name, status) == 0)
			return states[i].bit;
	return 0;
}
