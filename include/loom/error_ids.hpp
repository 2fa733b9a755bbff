// Every error id Loom reports (Error::id(), and the "[id]" that starts a
// recorded step or run error): one constant each, which the code and the tests
// compare with. docs/08-errors.md says what each means; ctest -L docs checks
// that table against this list, both ways. An id is stable: hosts match on it.
#pragma once

namespace loom::error_id {

// Definitions
inline constexpr const char* definition_file = "loom.definition.file";
inline constexpr const char* definition_json = "loom.definition.json";
inline constexpr const char* definition_too_large = "loom.definition.too_large";
inline constexpr const char* definition_too_deep = "loom.definition.too_deep";
inline constexpr const char* definition_too_many_steps = "loom.definition.too_many_steps";
inline constexpr const char* definition_type = "loom.definition.type";
inline constexpr const char* definition_missing_key = "loom.definition.missing_key";
inline constexpr const char* definition_unknown_key = "loom.definition.unknown_key";
inline constexpr const char* definition_empty = "loom.definition.empty";
inline constexpr const char* definition_bad_id = "loom.definition.bad_id";
inline constexpr const char* definition_duplicate_id = "loom.definition.duplicate_id";
inline constexpr const char* definition_unknown_dependency = "loom.definition.unknown_dependency";
inline constexpr const char* definition_self_dependency = "loom.definition.self_dependency";
inline constexpr const char* definition_duplicate_dependency = "loom.definition.duplicate_dependency";
inline constexpr const char* definition_cycle = "loom.definition.cycle";
inline constexpr const char* definition_bad_reference = "loom.definition.bad_reference";
inline constexpr const char* definition_bad_expression = "loom.definition.bad_expression";
inline constexpr const char* definition_bad_retry = "loom.definition.bad_retry";
inline constexpr const char* definition_bad_timeout = "loom.definition.bad_timeout";
inline constexpr const char* definition_bad_on_error = "loom.definition.bad_on_error";
inline constexpr const char* definition_bad_deadline = "loom.definition.bad_deadline";
inline constexpr const char* definition_bad_for_each = "loom.definition.bad_for_each";

// Calls
inline constexpr const char* builder_no_step = "loom.builder.no_step";
inline constexpr const char* handler_bad_name = "loom.handler.bad_name";
inline constexpr const char* handler_reserved = "loom.handler.reserved";
inline constexpr const char* handler_null = "loom.handler.null";
inline constexpr const char* handler_unknown = "loom.handler.unknown";
inline constexpr const char* workflow_unknown = "loom.workflow.unknown";
inline constexpr const char* workflow_in_use = "loom.workflow.in_use";
inline constexpr const char* options_threads = "loom.options.threads";
inline constexpr const char* options_limits = "loom.options.limits";
inline constexpr const char* options_payload = "loom.options.payload";
inline constexpr const char* options_max_running = "loom.options.max_running";
inline constexpr const char* options_duration = "loom.options.duration";
inline constexpr const char* payload_too_large = "loom.payload.too_large";
inline constexpr const char* payload_too_deep = "loom.payload.too_deep";
inline constexpr const char* payload_not_utf8 = "loom.payload.not_utf8";
inline constexpr const char* run_unknown = "loom.run.unknown";
inline constexpr const char* run_not_live = "loom.run.not_live";
inline constexpr const char* run_not_final = "loom.run.not_final";
inline constexpr const char* run_compensated = "loom.run.compensated";
inline constexpr const char* run_definition_changed = "loom.run.definition_changed";
inline constexpr const char* run_key_reused = "loom.run.key_reused";
inline constexpr const char* run_duplicate_key = "loom.run.duplicate_key";
inline constexpr const char* executor_stopped = "loom.executor.stopped";
inline constexpr const char* signal_name = "loom.signal.name";
inline constexpr const char* signal_unknown = "loom.signal.unknown";
inline constexpr const char* step_unknown = "loom.step.unknown";
inline constexpr const char* token_malformed = "loom.token.malformed";
inline constexpr const char* token_stale = "loom.token.stale";
inline constexpr const char* status_unknown = "loom.status.unknown";
inline constexpr const char* cursor_malformed = "loom.cursor.malformed";

// Stores
inline constexpr const char* store_io = "loom.store.io";
inline constexpr const char* store_busy = "loom.store.busy";
inline constexpr const char* store_corrupt = "loom.store.corrupt";
inline constexpr const char* store_schema_too_new = "loom.store.schema_too_new";
inline constexpr const char* store_migration_failed = "loom.store.migration_failed";
inline constexpr const char* store_definition_conflict = "loom.store.definition_conflict";
inline constexpr const char* store_duplicate_run = "loom.store.duplicate_run";
inline constexpr const char* store_duplicate_attempt = "loom.store.duplicate_attempt";
inline constexpr const char* store_not_owner = "loom.store.not_owner";
inline constexpr const char* store_unknown_workflow = "loom.store.unknown_workflow";
inline constexpr const char* store_duplicate_step = "loom.store.duplicate_step";
inline constexpr const char* store_missing_row = "loom.store.missing_row";

// Step and run errors
inline constexpr const char* input_missing = "loom.input.missing";
inline constexpr const char* input_type = "loom.input.type";
inline constexpr const char* step_interrupted = "loom.step.interrupted";
inline constexpr const char* when_type = "loom.when.type";
inline constexpr const char* sleep_input = "loom.sleep.input";
inline constexpr const char* wait_input = "loom.wait.input";
inline constexpr const char* wait_timeout = "loom.wait.timeout";
inline constexpr const char* for_each_not_array = "loom.for_each.not_array";
inline constexpr const char* for_each_stopped = "loom.for_each.stopped";
inline constexpr const char* for_each_suspend = "loom.for_each.suspend";
inline constexpr const char* workflow_depth = "loom.workflow.depth";
inline constexpr const char* run_deadline = "loom.run.deadline";

// Testing kit
inline constexpr const char* testing_clock_backwards = "loom.testing.clock_backwards";
inline constexpr const char* testing_bad_attempt = "loom.testing.bad_attempt";
inline constexpr const char* testing_bad_count = "loom.testing.bad_count";
inline constexpr const char* testing_unknown_step = "loom.testing.unknown_step";
inline constexpr const char* testing_not_mockable = "loom.testing.not_mockable";
inline constexpr const char* testing_workflow_added = "loom.testing.workflow_added";
inline constexpr const char* testing_unknown_workflow = "loom.testing.unknown_workflow";
inline constexpr const char* testing_crash = "loom.testing.crash";
inline constexpr const char* testing_crashed = "loom.testing.crashed";
inline constexpr const char* testing_stalled = "loom.testing.stalled";
inline constexpr const char* testing_time_limit = "loom.testing.time_limit";
inline constexpr const char* testing_busy = "loom.testing.busy";

}  // namespace loom::error_id
