// Workflow's canonical JSON and content hash, and WorkflowBuilder. Validation is in
// validate.cpp: the builder only assembles a JSON definition and hands it to
// Workflow::from_json, so C++ and JSON definitions pass the very same checks.
#include <loom/error.hpp>
#include <loom/workflow.hpp>

#include <algorithm>
#include <cmath>
#include <utility>

#include <fmt/format.h>

#include "model/model.hpp"
#include "model/plan.hpp"

namespace loom {
namespace detail {

namespace {

constexpr std::pair<OnError, std::string_view> kOnErrorNames[] = {
    {OnError::fail, "fail"},
    {OnError::proceed, "continue"},
    {OnError::compensate, "compensate"},
};

// The step settings a workflow's "defaults" shares with each step, written into `out`.
void write_settings(Json& out, const std::optional<RetryPolicy>& retry,
                    const std::optional<std::chrono::milliseconds>& timeout,
                    const std::optional<OnError>& on_error) {
    if (retry) out["retry"] = retry_json(*retry);
    if (timeout) out["timeout_ms"] = timeout->count();
    if (on_error) out["on_error"] = to_string(*on_error);
}

}  // namespace

std::optional<OnError> parse_on_error(std::string_view name) noexcept {
    for (const auto& [value, n] : kOnErrorNames)
        if (n == name) return value;
    return std::nullopt;
}

Json retry_json(const RetryPolicy& retry) {
    return {{"max_attempts", retry.max_attempts},
            {"initial_backoff_ms", retry.initial_backoff.count()},
            {"multiplier", retry.multiplier},
            {"max_backoff_ms", retry.max_backoff.count()},
            {"jitter", retry.jitter}};
}

Json canonical_json(const std::string& name, std::int64_t version, const std::vector<Step>& steps,
                    const WorkflowDefaults& defaults,
                    const std::optional<std::chrono::milliseconds>& deadline) {
    Json out = Json::array();
    for (const Step& step : steps) {
        Json s = {{"id", step.id}, {"handler", step.handler}, {"depends_on", step.depends_on}};
        if (step.input) s["input"] = *step.input;
        write_settings(s, step.retry, step.timeout, step.on_error);
        if (step.compensate) {
            Json& c = s["compensate"] = {{"handler", step.compensate->handler}};
            if (step.compensate->input) c["input"] = *step.compensate->input;
        }
        if (!step.when.empty()) s["when"] = step.when;
        if (step.run_if_skipped) s["run_if_skipped"] = true;
        if (!step.for_each.empty()) s["for_each"] = step.for_each;
        if (step.max_parallel) s["max_parallel"] = *step.max_parallel;
        out.push_back(std::move(s));
    }
    Json workflow = {{"name", name}, {"version", version}, {"steps", std::move(out)}};
    Json settings = Json::object();
    write_settings(settings, defaults.retry, defaults.timeout, defaults.on_error);
    if (!settings.empty()) workflow["defaults"] = std::move(settings);
    if (deadline) workflow["deadline_ms"] = deadline->count();
    return workflow;
}

std::string content_hash(std::string_view text) {
    // FNV-1a: tiny, dependency-free and stable across platforms and releases,
    // which is all a "same definition?" check needs (it is not a security hash).
    std::uint64_t hash = 14695981039346656037ull;
    for (unsigned char c : text) {
        hash ^= c;
        hash *= 1099511628211ull;
    }
    return fmt::format("{:016x}", hash);
}

Workflow Plan::make_workflow(std::string name, std::int64_t version, std::vector<Step> steps,
                             WorkflowDefaults defaults,
                             std::optional<std::chrono::milliseconds> deadline, std::string hash,
                             std::shared_ptr<const Plan> plan) {
    Workflow workflow;
    workflow.name_ = std::move(name);
    workflow.version_ = version;
    workflow.steps_ = std::move(steps);
    workflow.defaults_ = std::move(defaults);
    workflow.deadline_ = deadline;
    workflow.hash_ = std::move(hash);
    workflow.plan_ = std::move(plan);
    return workflow;
}

}  // namespace detail

std::string_view to_string(OnError on_error) noexcept {
    for (const auto& [value, name] : detail::kOnErrorNames)
        if (value == on_error) return name;
    return "unknown";
}

std::chrono::milliseconds RetryPolicy::backoff(int attempt) const {
    // In floating point and in one step, so that any attempt number costs the same
    // and saturates instead of overflowing (pow gives infinity at worst; a zero
    // first wait is returned before it could meet infinity and make NaN).
    if (attempt <= 1 || initial_backoff.count() <= 0) return std::min(initial_backoff, max_backoff);
    const double ms = static_cast<double>(initial_backoff.count()) * std::pow(multiplier, attempt - 1);
    if (!(ms < static_cast<double>(max_backoff.count()))) return max_backoff;   // NaN included
    return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

RetryPolicy Workflow::retry_of(std::size_t i) const {
    if (steps_[i].retry) return *steps_[i].retry;
    return defaults_.retry.value_or(RetryPolicy{});
}

std::optional<std::chrono::milliseconds> Workflow::timeout_of(std::size_t i) const {
    return steps_[i].timeout ? steps_[i].timeout : defaults_.timeout;
}

OnError Workflow::on_error_of(std::size_t i) const {
    return steps_[i].on_error.value_or(defaults_.on_error.value_or(OnError::fail));
}

Json Workflow::to_json() const {
    return detail::canonical_json(name_, version_, steps_, defaults_, deadline_);
}

const Step* Workflow::find_step(std::string_view id) const {
    const auto i = plan_->step_index(std::string(id));
    return i ? &steps_[*i] : nullptr;
}

WorkflowBuilder::WorkflowBuilder(std::string name, std::int64_t version)
    : definition_(Json::object(
          {{"name", std::move(name)}, {"version", version}, {"steps", Json::array()}})) {}

WorkflowBuilder& WorkflowBuilder::step(std::string id, std::string handler) {
    definition_["steps"].push_back(
        Json::object({{"id", std::move(id)}, {"handler", std::move(handler)}}));
    return *this;
}

WorkflowBuilder& WorkflowBuilder::input(Json input) {
    current("input()")["input"] = std::move(input);
    return *this;
}

WorkflowBuilder& WorkflowBuilder::after(std::string step_id) {
    current("after()")["depends_on"].push_back(std::move(step_id));
    return *this;
}

WorkflowBuilder& WorkflowBuilder::after(std::initializer_list<std::string> step_ids) {
    Json& depends_on = current("after()")["depends_on"];
    if (depends_on.is_null()) depends_on = Json::array();
    for (const std::string& id : step_ids) depends_on.push_back(id);
    return *this;
}

WorkflowBuilder& WorkflowBuilder::retry(const RetryPolicy& policy) {
    current("retry()")["retry"] = detail::retry_json(policy);
    return *this;
}

WorkflowBuilder& WorkflowBuilder::timeout(std::chrono::milliseconds timeout) {
    current("timeout()")["timeout_ms"] = timeout.count();
    return *this;
}

WorkflowBuilder& WorkflowBuilder::on_error(OnError on_error) {
    current("on_error()")["on_error"] = to_string(on_error);
    return *this;
}

WorkflowBuilder& WorkflowBuilder::compensate(std::string handler, std::optional<Json> input) {
    Json& c = current("compensate()")["compensate"] = {{"handler", std::move(handler)}};
    if (input) c["input"] = std::move(*input);
    return *this;
}

WorkflowBuilder& WorkflowBuilder::when(std::string expression) {
    current("when()")["when"] = std::move(expression);
    return *this;
}

WorkflowBuilder& WorkflowBuilder::run_if_skipped(bool run) {
    current("run_if_skipped()")["run_if_skipped"] = run;
    return *this;
}

WorkflowBuilder& WorkflowBuilder::for_each(std::string array_reference) {
    current("for_each()")["for_each"] = std::move(array_reference);
    return *this;
}

WorkflowBuilder& WorkflowBuilder::max_parallel(std::uint32_t limit) {
    current("max_parallel()")["max_parallel"] = limit;
    return *this;
}

WorkflowBuilder& WorkflowBuilder::default_retry(const RetryPolicy& policy) {
    definition_["defaults"]["retry"] = detail::retry_json(policy);
    return *this;
}

WorkflowBuilder& WorkflowBuilder::default_timeout(std::chrono::milliseconds timeout) {
    definition_["defaults"]["timeout_ms"] = timeout.count();
    return *this;
}

WorkflowBuilder& WorkflowBuilder::default_on_error(OnError on_error) {
    definition_["defaults"]["on_error"] = to_string(on_error);
    return *this;
}

WorkflowBuilder& WorkflowBuilder::deadline(std::chrono::milliseconds deadline) {
    definition_["deadline_ms"] = deadline.count();
    return *this;
}

Workflow WorkflowBuilder::build(const DefinitionLimits& limits) const {
    return Workflow::from_json(definition_, limits);
}

Json& WorkflowBuilder::current(const char* method) {
    Json& steps = definition_["steps"];
    if (steps.empty()) {
        throw InvalidArgument(error_id::builder_no_step,
                              fmt::format("{} configures the latest step; call step() first", method));
    }
    return steps.back();
}

}  // namespace loom
