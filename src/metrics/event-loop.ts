/**
 * Sampling period of the event-loop delay behind prom-client's `nodejs_eventloop_lag_*` metrics,
 * in every process. prom-client's default, 10 ms, wakes an idle process 100 times a second: about
 * 3-4 ms of CPU per second per process on a small VM, which an idle node (and a busy one's
 * primary) pays for nothing. At 100 ms the percentiles still show a stalled loop.
 */
export const EVENT_LOOP_MONITOR_MS = 100
