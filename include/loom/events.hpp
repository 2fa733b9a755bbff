// The kinds of event a run's history records (RunEvent::kind, StepEvent::kind):
// one constant each, which the code, the tests and the docs' list compare with.
// A kind is a stable name: stores keep it and hosts may match on it.
#pragma once

namespace loom::event {

// The run.
inline constexpr const char* run_started = "run.started";
inline constexpr const char* run_recovered = "run.recovered";   // recover() or adoption resumed it
inline constexpr const char* run_enqueued = "run.enqueued";     // started for any executor to claim
inline constexpr const char* run_claimed = "run.claimed";       // an executor took it from the queue
inline constexpr const char* run_completed = "run.completed";
inline constexpr const char* run_failed = "run.failed";
inline constexpr const char* run_cancelled = "run.cancelled";
inline constexpr const char* run_deadline = "run.deadline";     // its deadline passed
inline constexpr const char* run_cancel_requested = "run.cancel_requested";
inline constexpr const char* run_paused = "run.paused";
inline constexpr const char* run_resumed = "run.resumed";
inline constexpr const char* run_retried = "run.retried";       // retry(): from its failures
inline constexpr const char* run_rerun = "run.rerun";           // rerun(): from chosen steps

// A step.
inline constexpr const char* step_started = "step.started";
inline constexpr const char* step_completed = "step.completed";
inline constexpr const char* step_failed = "step.failed";
inline constexpr const char* step_retrying = "step.retrying";
inline constexpr const char* step_skipped = "step.skipped";
inline constexpr const char* step_sleeping = "step.sleeping";
inline constexpr const char* step_suspended = "step.suspended";
inline constexpr const char* step_fanned_out = "step.fanned_out";   // a for_each step began
inline constexpr const char* step_compensating = "step.compensating";
inline constexpr const char* step_compensated = "step.compensated";
inline constexpr const char* step_compensation_retrying = "step.compensation_retrying";
inline constexpr const char* step_compensation_failed = "step.compensation_failed";
inline constexpr const char* step_complete_requested = "step.complete_requested";   // complete(token)
inline constexpr const char* step_fail_requested = "step.fail_requested";           // fail(token)
inline constexpr const char* step_interrupted = "step.interrupted";   // a crash stopped an attempt
inline constexpr const char* step_stopped = "step.stopped";           // shutdown cancelled an attempt
inline constexpr const char* step_cancelled = "step.cancelled";       // the run ended before it

// One element of a for_each step.
inline constexpr const char* element_completed = "element.completed";
inline constexpr const char* element_retrying = "element.retrying";
inline constexpr const char* element_failed = "element.failed";
inline constexpr const char* element_interrupted = "element.interrupted";
inline constexpr const char* element_cancelled = "element.cancelled";

// A signal sent to the run (detail: its name).
inline constexpr const char* signal = "signal";

}  // namespace loom::event
