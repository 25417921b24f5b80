/*
 * test_events.c - the job-event tables (ft/events.h) agree with themselves:
 * every line and every event has its name, each relayed line names an event
 * of the second table, lookups round-trip, and the job states an event may
 * move are the ones the header's table lists.
 */
#include "ft/events.h"
#include "ftest.h"

FT_TEST(lines_relay_known_events)
{
	for (int i = 0; i < FT_LINE_COUNT; i++) {
		const struct ft_line_def *d = &ft_lines[i];
		FT_CHECK(d->type != NULL);
		FT_CHECK(ft_line_find(d->type) == d);
		enum ft_ev ev;
		if (d->relay == FT_RELAY_REMEMBER) {
			FT_CHECK(d->kind == NULL);
			continue;
		}
		FT_CHECK(ft_ev_find(d->kind, &ev));
		FT_CHECK((d->relay == FT_RELAY_LOG) == (ev == FT_EV_LOG));
		FT_CHECK((d->relay == FT_RELAY_LOG) == (d->message != NULL));
	}
	FT_CHECK(ft_line_find("nonsense") == NULL);
	FT_CHECK(ft_line_find(NULL) == NULL);
	FT_CHECK_STR(ft_line_type(FT_LINE_STEP), "step");
}

FT_TEST(events_have_openai_types_and_states)
{
	for (int i = 0; i < FT_EV_COUNT; i++) {
		const struct ft_ev_def *d = &ft_events[i];
		enum ft_ev ev;
		FT_CHECK(ft_ev_find(d->kind, &ev) && ev == (enum ft_ev)i);
		/* the two types OpenAI's FineTuningJobEvent allows */
		FT_CHECK(strcmp(d->type, "metrics") == 0 || strcmp(d->type, "message") == 0);
		FT_CHECK(strcmp(d->level, "info") == 0 || strcmp(d->level, "error") == 0);
		/* only the events that end a job queue a webhook, and only those move it */
		if (d->webhook[FT_WORK_JOB])
			FT_CHECK(d->moves_from == FT_JS_ACTIVE);
	}
	FT_CHECK_STR(ft_events[FT_EV_PROGRESS].type, "metrics");
	FT_CHECK_STR(ft_events[FT_EV_FAILED].level, "error");
	FT_CHECK(ft_events[FT_EV_STARTED].moves_from == FT_JS_DISPATCHED);
	FT_CHECK(ft_events[FT_EV_CHECKPOINT].moves_from == 0);
	FT_CHECK(ft_job_state_bit("running") == FT_JS_RUNNING);
	FT_CHECK(ft_job_state_bit("queued") == 0);
	enum ft_ev ev;
	FT_CHECK(!ft_ev_find("status", &ev));
}

FT_TEST(exports_relay_progress_and_have_their_own_webhooks)
{
	const struct ft_line_def *d = ft_line_find("export");
	enum ft_ev ev;
	FT_CHECK(d == &ft_lines[FT_LINE_EXPORT] && d->relay == FT_RELAY_DATA);
	FT_CHECK(ft_ev_find(d->kind, &ev) && ev == FT_EV_PROGRESS);
	FT_CHECK_STR(ft_events[FT_EV_SUCCEEDED].webhook[FT_WORK_EXPORT], "model.export.succeeded");
	FT_CHECK_STR(ft_events[FT_EV_FAILED].webhook[FT_WORK_EXPORT], "model.export.failed");
	for (int i = 0; i < FT_EV_COUNT; i++) /* an export's webhook only where a job's is */
		FT_CHECK(!ft_events[i].webhook[FT_WORK_EXPORT] ||
			 ft_events[i].webhook[FT_WORK_JOB]);
}

FT_TEST(evaluations_relay_progress_and_results)
{
	enum ft_ev ev;
	const struct ft_line_def *d = ft_line_find("evaluate");
	FT_CHECK(d == &ft_lines[FT_LINE_EVALUATE] && d->relay == FT_RELAY_DATA);
	FT_CHECK(ft_ev_find(d->kind, &ev) && ev == FT_EV_PROGRESS);
	d = ft_line_find("result");
	FT_CHECK(d == &ft_lines[FT_LINE_RESULT] && d->relay == FT_RELAY_DATA);
	FT_CHECK(ft_ev_find(d->kind, &ev) && ev == FT_EV_RESULT);
	FT_CHECK(ft_events[FT_EV_RESULT].moves_from == 0);
	FT_CHECK_STR(ft_events[FT_EV_SUCCEEDED].webhook[FT_WORK_EVAL], "eval.succeeded");
	FT_CHECK_STR(ft_events[FT_EV_FAILED].webhook[FT_WORK_EVAL], "eval.failed");
	FT_CHECK(ft_events[FT_EV_CANCELLED].webhook[FT_WORK_EVAL] == NULL);
}

FT_TEST_MAIN()
