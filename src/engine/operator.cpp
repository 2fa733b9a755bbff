// Operator controls: running a finished run again, from its failures (retry)
// or from a chosen step (rerun). The run is reopened in one commit — its row
// back to running, the chosen steps back to pending — so a crash leaves it
// either as it was or reopened, and recover() resumes a reopened one.
#include <algorithm>
#include <iterator>

#include <fmt/format.h>

#include <loom/error.hpp>

#include "engine/executor_impl.hpp"
#include "model/model.hpp"
#include "model/plan.hpp"

namespace loom {

void Executor::Impl::reopen(const RunId& id, const char* event, bool keep_items,
                            const std::function<std::vector<std::uint32_t>(const Workflow&, const RunInfo&)>& reset) {
    auto stored = store_.load_run(id);
    if (!stored) throw NotFound(error_id::run_unknown, "run " + id + " does not exist");
    if (!is_final(stored->status) || find_live(id))
        throw Conflict(error_id::run_not_final, "run " + id + " is still running; only a finished run can be run again");
    for (const auto& s : stored->steps) {
        if (s.status == StepStatus::compensated || s.status == StepStatus::compensating)
            throw Conflict(error_id::run_compensated,
                           "run " + id + " was compensated (step \"" + s.step_id + "\"); it cannot be run again");
    }
    auto wf = find_workflow(stored->workflow_name, stored->workflow_version);
    if (wf->hash() != stored->workflow_hash)
        throw Conflict(error_id::run_definition_changed,
                       fmt::format("run {} started with workflow \"{}\" version {} hash {}, but the stored "
                                   "definition has hash {}",
                                   id, stored->workflow_name, stored->workflow_version, stored->workflow_hash,
                                   wf->hash()));
    auto handlers = resolve_handlers(*wf, id);
    const std::vector<std::uint32_t> steps = reset(*wf, *stored);

    RunInfo reopened = *stored;
    reopened.status = RunStatus::running;
    reopened.cancel_requested = false;
    reopened.output = nullptr;
    reopened.error.clear();
    reopened.finished_at.reset();
    for (auto i : steps) {
        auto& s = reopened.steps[i];
        s.status = StepStatus::pending;
        s.output = nullptr;
        s.error.clear();
        s.finished_at.reset();
        s.wake_at.reset();
    }
    if (!keep_items)
        for (auto i : steps) reopened.steps[i].items.clear();
    auto run = make_state(reopened, std::move(wf), std::move(handlers));
    for (auto i : steps) {
        auto& slot = run->steps[i];
        slot.attempt_base = slot.attempts;
        slot.reset_items = !keep_items && !stored->steps[i].items.empty();
        fresh_item_budget(*run, i);
    }
    const auto at = now();
    const RunWrite row{id, RunStatus::running, false, nullptr, "", at, std::nullopt};
    if (!launch(run, *stored, /*fresh=*/false, event, &row))
        throw Conflict(error_id::run_not_final, "run " + id + " is being run again already");
}

void Executor::retry(const RunId& id) {
    // A for_each step keeps its completed elements: only the others run again.
    impl_->reopen(id, event::run_retried, /*keep_items=*/true, [](const Workflow&, const RunInfo& info) {
        std::vector<std::uint32_t> steps;
        for (std::uint32_t i = 0; i < info.steps.size(); ++i) {
            const auto s = info.steps[i].status;
            if (s != StepStatus::completed && s != StepStatus::skipped) steps.push_back(i);
        }
        return steps;
    });
}

void Executor::rerun(const RunId& id, const std::string& step_id) {
    impl_->reopen(id, event::run_rerun, /*keep_items=*/false, [&](const Workflow& wf, const RunInfo& info) {
        const auto& plan = detail::Plan::of(wf);
        const auto start = plan.step_index(step_id);
        if (!start) throw NotFound(error_id::step_unknown, "run " + id + " has no step " + detail::quote(step_id));
        // The step and everything downstream of it, found by a walk over dependents.
        std::vector<bool> seen(wf.steps().size());
        std::vector<std::uint32_t> steps{*start};
        seen[*start] = true;
        for (std::size_t k = 0; k < steps.size(); ++k) {
            for (auto d : plan.steps[steps[k]].dependents) {
                if (!seen[d]) {
                    seen[d] = true;
                    steps.push_back(d);
                }
            }
        }
        // Steps the run ended before (cancelled) were never done: they run too.
        for (std::uint32_t i = 0; i < info.steps.size(); ++i)
            if (!seen[i] && info.steps[i].status == StepStatus::cancelled) steps.push_back(i);
        return steps;
    });
}

namespace {

std::string handler_key(const RunState& run, std::uint32_t step) {
    return "handler " + run.workflow->steps()[step].handler;
}
std::string workflow_key(const RunState& run) { return "workflow " + run.workflow->name(); }

}  // namespace

bool Executor::Impl::take_slot(const Task& task) {
    const auto& by_handler = options_.max_running_per_handler;
    const auto& by_workflow = options_.max_running_per_workflow;
    if (by_handler.empty() && by_workflow.empty()) return true;
    const RunState& run = *task.run;
    auto h = by_handler.find(run.workflow->steps()[task.step].handler);
    auto w = by_workflow.find(run.workflow->name());
    if (h == by_handler.end() && w == by_workflow.end()) return true;
    std::lock_guard lock(limits_mutex_);
    const std::string hk = handler_key(run, task.step), wk = workflow_key(run);
    if (h != by_handler.end() && running_[hk] >= h->second) {
        slot_waiters_[hk].push_back(task);
        return false;
    }
    if (w != by_workflow.end() && running_[wk] >= w->second) {
        slot_waiters_[wk].push_back(task);
        return false;
    }
    if (h != by_handler.end()) ++running_[hk];
    if (w != by_workflow.end()) ++running_[wk];
    return true;
}

void Executor::Impl::free_slot(const Task& task) {
    const auto& by_handler = options_.max_running_per_handler;
    const auto& by_workflow = options_.max_running_per_workflow;
    if (by_handler.empty() && by_workflow.empty()) return;
    const RunState& run = *task.run;
    const bool h = by_handler.count(run.workflow->steps()[task.step].handler) > 0;
    const bool w = by_workflow.count(run.workflow->name()) > 0;
    if (!h && !w) return;
    std::vector<Task> next;
    {
        std::lock_guard lock(limits_mutex_);
        // One waiter per freed slot; if another limit still holds it, it parks there.
        auto release = [&](const std::string& key) {
            --running_[key];
            auto& waiting = slot_waiters_[key];
            if (waiting.empty()) return;
            next.push_back(std::move(waiting.front()));
            waiting.pop_front();
        };
        if (h) release(handler_key(run, task.step));
        if (w) release(workflow_key(run));
    }
    pool_.push(next);
}

void Executor::Impl::unpark_limited(const RunState& run) {
    if (options_.max_running_per_handler.empty() && options_.max_running_per_workflow.empty()) return;
    std::vector<Task> mine;
    {
        std::lock_guard lock(limits_mutex_);
        for (auto& [key, waiting] : slot_waiters_) {
            auto keep = std::stable_partition(waiting.begin(), waiting.end(),
                                              [&](const Task& t) { return t.run.get() != &run; });
            std::move(keep, waiting.end(), std::back_inserter(mine));
            waiting.erase(keep, waiting.end());
        }
    }
    pool_.push(mine);
}

bool Executor::Impl::set_paused(const RunId& id, bool paused) {
    CommitWaiter waiter;
    const auto at = now();
    const char* kind = paused ? event::run_paused : event::run_resumed;
    bool must_lead;
    bool recorded_only = false;   // not live here: only the store has it
    std::vector<Task> parked;
    if (auto run = find_live(id)) {
        std::lock_guard lock(run->mutex);
        if (run->final_submitted) return false;
        if (run->paused == paused) return true;
        run->paused = paused;
        if (!paused) parked.swap(run->parked);
        Queue queue(*this, run, &waiter);
        queue.writes().runs.push_back(
            RunWrite{id, RunStatus::running, run->cancel_requested, nullptr, "", at, std::nullopt, paused});
        queue.writes().events.push_back(RunEvent{0, id, "", kind, 0, "", at});
        must_lead = queue.release(true);
    } else {
        // Not running here: recorded; whoever resumes the run honours it.
        auto info = store_.load_run(id);
        if (!info) throw NotFound(error_id::run_unknown, "run " + id + " does not exist");
        if (is_final(info->status)) return false;
        if (info->paused == paused) return true;
        Queue queue(*this, nullptr, &waiter);
        queue.writes().runs.push_back(
            RunWrite{id, RunStatus::running, info->cancel_requested, nullptr, "", at, std::nullopt, paused});
        queue.writes().events.push_back(RunEvent{0, id, "", kind, 0, "", at});
        must_lead = queue.release(true);
        recorded_only = true;
    }
    await_commit(must_lead, waiter);
    // A recover() that read the run before this write may have made it live since.
    if (recorded_only && find_live(id)) return set_paused(id, paused);
    pool_.push(parked);   // after the resume is durable
    return true;
}

bool Executor::pause(const RunId& id) { return impl_->set_paused(id, true); }
bool Executor::resume(const RunId& id) { return impl_->set_paused(id, false); }

}  // namespace loom
