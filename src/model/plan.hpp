// The compiled form of a validated Workflow: indices instead of ids, parsed input
// templates. Built once by validation; read by the executor. Internal.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <loom/json.hpp>
#include <loom/run.hpp>
#include <loom/workflow.hpp>

namespace loom::detail {

class Expression;

/// ${input.a.b} or ${steps.ID.output.k.0}; path segments index objects by key
/// and arrays by number. In conditions and step inputs also ${steps.ID.status}
/// and ${steps.ID.error} (field), which have no path. In a for_each step's input
/// also ${item.a} (the element) and ${index} (its position, no path).
struct Reference {
    enum class Root { input, step, item, index };
    enum class Field { output, status, error };
    Root root = Root::input;
    std::uint32_t step = 0;          // index of the referenced step (Root::step)
    Field field = Field::output;     // which part of the step (Root::step)
    std::vector<std::string> path;   // after "input" / "steps.ID.output" / "item"
    std::string text;                // the reference as written, e.g. "${input.url}"
};

/// Where a reference is written, which decides what it may name.
enum class RefContext {
    condition,     // "when": ${input...} and ${steps.ID.output...|status|error}
    input,         // a step's input: the same
    element,       // a for_each step's input: also ${item...} and ${index}
    compensation,  // a compensation's input: ${input...} and ${steps.ID.output...}
};

/// How the executor runs a step, decided once at validation from its handler.
enum class StepKind : std::uint8_t {
    handler,    // a registered handler
    sleep,      // built-in "sleep": a durable timer
    wait,       // built-in "wait": until a signal
    child,      // "workflow:NAME": a child run
    for_each,   // a registered handler, once per element of an array
};

/// The kind a handler name gives a step, for_each aside: "sleep", "wait" and
/// "workflow:NAME" are the executor's own (hosts cannot register them).
StepKind builtin_kind(std::string_view handler) noexcept;
/// The workflow a "workflow:NAME" step runs as a child run: NAME. Empty for
/// any other handler.
std::string_view child_workflow(std::string_view handler) noexcept;

/// The element a for_each attempt works on: what ${item} and ${index} name.
struct Element {
    const Json& item;
    Json index;
};

/// A string value of an input template: literal text and references, in order.
struct TemplatePart {
    std::string literal;             // used when ref is empty
    std::optional<Reference> ref;
};

/// One string in a step's input that holds references.
struct Substitution {
    Json::json_pointer where;        // location inside the step's input
    std::vector<TemplatePart> parts; // exactly one ref part: the value replaces the string
};

struct StepPlan {
    StepKind kind = StepKind::handler;
    std::optional<Reference> for_each;       // StepKind::for_each: the array
    std::vector<std::uint32_t> deps;         // direct dependencies, definition order
    std::vector<std::uint32_t> dependents;   // direct dependents, definition order
    std::vector<Substitution> substitutions; // empty when the input has no references
    std::vector<Substitution> compensate_substitutions;  // the same for compensate's input
    std::shared_ptr<const Expression> when;  // null: always runs
};

struct Plan {
    std::vector<StepPlan> steps;                          // same order as Workflow::steps()
    std::vector<std::uint32_t> sinks;                     // steps nothing depends on
    std::unordered_map<std::string, std::uint32_t> index; // step id -> position

    /// The compiled graph of `workflow`, which the executor runs.
    static const Plan& of(const Workflow& workflow) noexcept { return *workflow.plan_; }
    /// The position of the step with this id, or nullopt.
    std::optional<std::uint32_t> step_index(const std::string& id) const {
        auto it = index.find(id);
        if (it == index.end()) return std::nullopt;
        return it->second;
    }
    /// Builds a workflow from already-validated parts (used by validation only).
    static Workflow make_workflow(std::string name, std::int64_t version,
                                  std::vector<Step> steps, WorkflowDefaults defaults,
                                  std::optional<std::chrono::milliseconds> deadline,
                                  std::string hash, std::shared_ptr<const Plan> plan);
};

/// How the executor runs step i of `workflow`.
inline StepKind kind_of(const Workflow& workflow, std::size_t i) { return Plan::of(workflow).steps[i].kind; }

/// What a template reads of step i of the run: its output, and for
/// ${steps.ID.status} / ${steps.ID.error} its status and error. A step is read
/// only once it is settled (the references name steps upstream), and none of
/// the three changes after that while the referring step may run.
struct StepView {
    const Json& output;
    StepStatus status;
    const std::string& error;
};
using StepOf = std::function<StepView(std::uint32_t)>;

/// StepOf over a vector of anything with `output`, `status` and `error`: the
/// executor's live steps, or a stored run's StepInfo. `steps` must outlive it.
template <class Steps>
StepOf steps_of(const Steps& steps) {
    return [&steps](std::uint32_t i) { return StepView{steps[i].output, steps[i].status, steps[i].error}; };
}

/// The step's input with every reference replaced. A step without an input
/// template receives {dependency id: output} for its direct dependencies.
/// ${steps.ID.status} is the status's name ("completed", "failed", "skipped"),
/// ${steps.ID.error} the error text ("" if none).
/// Throws InputError "[loom.input.missing]" when a referenced key or index
/// does not exist in the run's input or the step's output. `element`: the
/// element of a for_each step's attempt.
Json resolve_input(const Workflow& workflow, std::uint32_t step, const Json& run_input,
                   const StepOf& step_of, const Element* element = nullptr);

/// The array a for_each step runs over. Throws InputError
/// "[loom.input.missing]" as resolve_input does, or InvalidArgument
/// "[loom.for_each.not_array]".
const Json& resolve_for_each(const Workflow& workflow, std::uint32_t step, const Json& run_input,
                             const StepOf& step_of);

/// The input of the step's compensation handler, its references replaced; a
/// compensation without an input template receives the step's own output. The
/// step must have a compensation. Throws InputError "[loom.input.missing]" as
/// resolve_input does.
Json resolve_compensation_input(const Workflow& workflow, std::uint32_t step, const Json& run_input,
                                const StepOf& step_of);

/// Parses one "${...}" (braces included), written in `context`.
/// Throws DefinitionError "[loom.definition.bad_reference]".
Reference parse_reference(std::string text, const std::string& where,
                          const std::unordered_map<std::string, std::uint32_t>& index,
                          RefContext context);

/// The value at `path` inside `root`, or nullptr if a key or index is missing.
const Json* find_path(const Json& root, const std::vector<std::string>& path);

/// Parses every ${...} in one string. `where` is the JSON path used in errors.
/// Throws DefinitionError "[loom.definition.bad_reference]".
std::vector<TemplatePart> parse_template(const std::string& text, const std::string& where,
                                         const std::unordered_map<std::string, std::uint32_t>& index,
                                         RefContext context);

}  // namespace loom::detail
