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
    if (!is_final(stored->status) || live_.find(id))
        throw Conflict(error_id::run_not_final, "run " + id + " is still running; only a finished run can be run again");
    for (const auto& s : stored->steps) {
        if (s.status == StepStatus::compensated || s.status == StepStatus::compensating)
            throw Conflict(error_id::run_compensated,
                           "run " + id + " was compensated (step \"" + s.step_id + "\"); it cannot be run again");
    }
    auto wf = definition_of(*stored);
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
    {
        MutexLock lock(run->mutex);   // not shared yet: for the analysis
        for (auto i : steps) {
            auto& slot = run->steps[i];
            slot.attempt_base = slot.attempts;
            slot.reset_items = !keep_items && !stored->steps[i].items.empty();
            fresh_item_budget(*run, i);
        }
    }
    const auto at = now();
    RunWrite row{id, RunStatus::running, false, nullptr, "", at, std::nullopt, false, std::nullopt};
    row.take_lease = leases_.lease_end();   // a final run has no owner: this executor takes it
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

void Executor::Impl::unpark_limited(const RunState& run) {
    auto mine = limits_.unpark(run);
    pool_.push(mine);
}

bool Executor::Impl::request(const RunId& id, const RunRequest& request) {
    if (auto run = live_.find(id)) return request_live(run, request, /*recorded=*/false);
    // Not running here: recorded; whoever runs the run next honours it.
    auto info = store_.load_run(id);
    if (!info) throw NotFound(error_id::run_unknown, "run " + id + " does not exist");
    if (auto result = request.check_stored(*info)) return *result;
    CommitWaiter waiter;
    bool must_lead;
    {
        Queue queue(commits_, nullptr, &waiter);
        request.record(*info, queue);
        must_lead = queue.release(true);
    }
    await_commit(must_lead, waiter);
    // A recover() that read the run before this request may have made it live
    // since. If it read the request too, check_live finds nothing to do.
    if (auto run = live_.find(id)) {
        try {
            request_live(run, request, /*recorded=*/true);
        } catch (const Error&) {
            // Applied already (say, its step is no longer suspended): recorded is enough.
        }
    }
    return true;
}

bool Executor::Impl::request_live(const std::shared_ptr<RunState>& run, const RunRequest& request, bool recorded) {
    CommitWaiter waiter;
    bool must_lead;
    {
        MutexLock lock(run->mutex);
        if (auto result = request.check_live(*run)) return *result;
        Queue queue(commits_, run, &waiter);
        request.apply_live(*run, queue, recorded);
        must_lead = queue.release(true);
    }
    await_commit(must_lead, waiter);
    return true;
}

Executor::Impl::RunRequest Executor::Impl::pause_request(const RunId& id, bool paused, std::vector<Task>& parked) {
    const auto at = now();
    auto event = [id, paused, at](Queue& queue) {
        queue.writes().events.push_back(RunEvent{0, id, "", paused ? event::run_paused : event::run_resumed, 0, "", at});
    };
    return {[paused](RunState& run) LOOM_REQUIRES(run.mutex) -> std::optional<bool> {
                if (run.final_submitted) return false;
                if (run.paused == paused) return true;
                return std::nullopt;
            },
            [&parked, event, id, paused, at](RunState& run, Queue& queue, bool recorded) LOOM_REQUIRES(run.mutex) {
                run.paused = paused;
                if (!paused) parked.swap(run.parked);
                if (recorded) return;
                queue.writes().runs.push_back(RunWrite{id, RunStatus::running, run.cancel_requested, nullptr, "", at,
                                                       std::nullopt, paused, std::nullopt});
                event(queue);
            },
            [paused](const RunInfo& info) -> std::optional<bool> {
                if (is_final(info.status)) return false;
                if (info.paused == paused) return true;
                return std::nullopt;
            },
            [event, id, paused](const RunInfo&, Queue& queue) {
                queue.writes().controls.push_back(RunControl{id, std::nullopt, paused});
                event(queue);
            }};
}

bool Executor::Impl::set_paused(const RunId& id, bool paused) {
    std::vector<Task> parked;
    const bool result = request(id, pause_request(id, paused, parked));
    pool_.push(parked);   // after the resume is durable
    return result;
}

bool Executor::pause(const RunId& id) { return impl_->set_paused(id, true); }
bool Executor::resume(const RunId& id) { return impl_->set_paused(id, false); }

}  // namespace loom
