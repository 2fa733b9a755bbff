// The model: a workflow is a validated DAG of steps. It knows nothing of execution.
// A Workflow only exists validated: from_json (and from_file, which reads the JSON
// from a file) and WorkflowBuilder::build are the only ways to make one, and all
// throw DefinitionError on bad input.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <loom/json.hpp>

namespace loom {

namespace detail {
struct Plan;
}

/// How often a failing step is tried and how long to wait in between. JSON:
/// {"max_attempts", "initial_backoff_ms", "multiplier", "max_backoff_ms", "jitter"}.
struct RetryPolicy {
    int max_attempts = 1;                               // 1: no retry
    std::chrono::milliseconds initial_backoff{1000};    // wait after the first failure
    double multiplier = 2.0;                            // each further wait is this much longer
    std::chrono::milliseconds max_backoff{60'000};      // no wait is longer
    /// 0..1: each wait is scaled by a random factor in [1 - jitter, 1 + jitter],
    /// so that many runs failing together do not retry together.
    double jitter = 0.0;

    /// The wait after failed attempt `attempt` (1-based), before jitter:
    /// min(initial_backoff * multiplier^(attempt - 1), max_backoff).
    std::chrono::milliseconds backoff(int attempt) const;
};

/// What a step's failure (after its last attempt) does to the run.
enum class OnError {
    fail,         // "fail": the run fails; in-flight steps finish, nothing new starts
    proceed,      // "continue": the run goes on; dependents see the step as failed
    compensate,   // "compensate": the run fails, then completed steps' compensations run
};

/// The JSON name of an OnError: "fail", "continue" or "compensate".
std::string_view to_string(OnError on_error) noexcept;

/// The undo of a completed step, run when the run is compensated (saga).
struct Compensation {
    std::string handler;
    std::optional<Json> input;   // template, as Step::input; absent: the step's output
};

/// One node of the DAG: which handler runs it, with what input, after which steps.
struct Step {
    std::string id;
    std::string handler;
    /// Input template; may hold ${input...} and ${steps.ID.output...} references.
    /// Absent: the step receives its direct dependencies' outputs keyed by step id.
    std::optional<Json> input;
    std::vector<std::string> depends_on;
    /// Absent: the workflow's default (WorkflowDefaults::retry), else one attempt.
    std::optional<RetryPolicy> retry;
    /// Longest one attempt may run. Absent: the workflow's default, else no limit.
    std::optional<std::chrono::milliseconds> timeout;
    /// Absent: the workflow's default, else OnError::fail.
    std::optional<OnError> on_error;
    std::optional<Compensation> compensate;
    /// Condition (see docs/02-definitions.md, "Conditions"); empty: always runs.
    /// False: the step is skipped.
    std::string when;
    /// A step whose dependency was skipped is skipped too, unless this is set.
    bool run_if_skipped = false;
    /// Fan-out: one reference ("${input.xs}" or "${steps.ID.output.xs}") to an
    /// array; the handler runs once per element, whose input may then use
    /// ${item...} and ${index}. The step's output is the array of the
    /// elements' outputs, in input order. Empty: the step runs once.
    std::string for_each;
    /// With for_each: at most this many elements run at once; absent: no limit
    /// beyond the executor's threads.
    std::optional<std::uint32_t> max_parallel;
};

/// Step settings that apply where a step does not set its own. JSON: "defaults".
struct WorkflowDefaults {
    std::optional<RetryPolicy> retry;
    std::optional<std::chrono::milliseconds> timeout;
    std::optional<OnError> on_error;
};

/// Bounds on what a definition may be; checked before anything else is read.
struct DefinitionLimits {
    std::size_t max_steps = 10'000;
    std::size_t max_depth = 64;          // JSON nesting depth of the whole definition
    std::size_t max_bytes = 1 << 20;     // size of the definition's JSON text
};

/// A validated, immutable workflow definition, identified by (name, version).
///
///     auto wf = loom::Workflow::from_json(text);      // throws DefinitionError
///     auto order = loom::Workflow::from_file("workflows/order.json");
///     std::string text2 = wf.to_json().dump();
///
/// Thread safety: immutable after construction; any number of threads may read
/// one Workflow at once. Copies are cheap (the compiled graph is shared).
class Workflow {
public:
    /// Parses and validates a JSON definition.
    /// Throws DefinitionError naming the JSON path and reason: invalid JSON, wrong
    /// types, missing or unknown keys, empty workflow, duplicate or malformed ids,
    /// unknown or self dependencies, cycles, bad references, settings (retry,
    /// timeout, on_error, deadline) out of range, limits exceeded.
    static Workflow from_json(std::string_view text, const DefinitionLimits& limits = {});
    static Workflow from_json(const Json& definition, const DefinitionLimits& limits = {});
    // Without these, a std::string or a literal converts equally well to string_view
    // and to Json, and the call is ambiguous.
    static Workflow from_json(const std::string& text, const DefinitionLimits& limits = {}) {
        return from_json(std::string_view(text), limits);
    }
    static Workflow from_json(const char* text, const DefinitionLimits& limits = {}) {
        return from_json(std::string_view(text), limits);
    }

    /// Reads a JSON definition from the file at `path` and parses it as
    /// from_json does. Every error names the file: DefinitionError
    /// "[loom.definition.file] <path>: cannot open ..." (or read), and each
    /// error of from_json with "<path>: " before its JSON path, e.g.
    /// "[loom.definition.json] order.json: /: invalid JSON at byte 41: parse
    /// error at line 3, column 7: ...". A file over limits.max_bytes is refused
    /// ("[loom.definition.too_large]") before more than that is read.
    static Workflow from_file(const std::filesystem::path& path, const DefinitionLimits& limits = {});

    /// The canonical JSON form; from_json(to_json()) yields an equal workflow.
    Json to_json() const;

    const std::string& name() const noexcept { return name_; }
    std::int64_t version() const noexcept { return version_; }
    const std::vector<Step>& steps() const noexcept { return steps_; }
    const WorkflowDefaults& defaults() const noexcept { return defaults_; }
    /// Longest a run may take from its start ("deadline_ms"); empty: no limit.
    /// A run past it fails, as if cancelled, with error [loom.run.deadline].
    std::optional<std::chrono::milliseconds> deadline() const noexcept { return deadline_; }

    /// The settings in force for step `i`: its own, else the defaults.
    RetryPolicy retry_of(std::size_t i) const;
    std::optional<std::chrono::milliseconds> timeout_of(std::size_t i) const;
    OnError on_error_of(std::size_t i) const;
    /// The step with this id, or nullptr.
    const Step* find_step(std::string_view id) const;
    /// Hex digest of the canonical JSON: equal definitions have equal hashes.
    const std::string& hash() const noexcept { return hash_; }

private:
    Workflow() = default;

    std::string name_;
    std::int64_t version_ = 0;
    std::vector<Step> steps_;
    WorkflowDefaults defaults_;
    std::optional<std::chrono::milliseconds> deadline_;
    std::string hash_;
    std::shared_ptr<const detail::Plan> plan_;

    friend struct detail::Plan;
};

/// Builds a Workflow in C++; build() validates exactly as from_json does, and its
/// error messages name the JSON path of the equivalent definition.
///
///     auto wf = loom::WorkflowBuilder("etl", 1)
///         .step("extract", "http.get").input({{"url", "${input.url}"}})
///         .step("load", "db.write").after("extract")
///         .retry({/*max_attempts=*/5}).timeout(std::chrono::seconds(30))
///         .build();
///
/// Thread safety: none; use one builder from one thread.
class WorkflowBuilder {
public:
    WorkflowBuilder(std::string name, std::int64_t version);

    /// Starts a new step; the calls that follow configure it.
    WorkflowBuilder& step(std::string id, std::string handler);
    WorkflowBuilder& input(Json input);
    WorkflowBuilder& after(std::string step_id);
    WorkflowBuilder& after(std::initializer_list<std::string> step_ids);
    /// "retry": how often the step is tried, and the waits in between.
    WorkflowBuilder& retry(const RetryPolicy& policy);
    /// "timeout_ms": the longest one attempt may run.
    WorkflowBuilder& timeout(std::chrono::milliseconds timeout);
    /// "on_error": what the step's failure does to the run.
    WorkflowBuilder& on_error(OnError on_error);
    /// "compensate": the handler that undoes the step; input absent: the step's output.
    WorkflowBuilder& compensate(std::string handler, std::optional<Json> input = std::nullopt);
    /// "when": the condition under which the step runs.
    WorkflowBuilder& when(std::string expression);
    /// "run_if_skipped": run even when a dependency was skipped.
    WorkflowBuilder& run_if_skipped(bool run = true);
    /// "for_each": run the step once per element of the referenced array.
    WorkflowBuilder& for_each(std::string array_reference);
    /// "max_parallel": at most this many elements of a for_each run at once.
    WorkflowBuilder& max_parallel(std::uint32_t limit);

    /// "defaults"/"retry": the retry policy of steps without their own.
    WorkflowBuilder& default_retry(const RetryPolicy& policy);
    /// "defaults"/"timeout_ms": the attempt timeout of steps without their own.
    WorkflowBuilder& default_timeout(std::chrono::milliseconds timeout);
    /// "defaults"/"on_error": the OnError of steps without their own.
    WorkflowBuilder& default_on_error(OnError on_error);
    /// "deadline_ms": the longest a run may take.
    WorkflowBuilder& deadline(std::chrono::milliseconds deadline);

    /// Throws DefinitionError (as Workflow::from_json).
    Workflow build(const DefinitionLimits& limits = {}) const;

    /// The JSON definition built so far.
    const Json& json() const noexcept { return definition_; }

private:
    /// The latest step; `method` names the caller in the error when there is none.
    Json& current(const char* method);

    Json definition_;
};

}  // namespace loom
