// Compensation (saga): when a step whose policy is OnError::compensate fails,
// the run stops, and once nothing runs any more the completed steps that have
// a compensation are undone, latest first — a step's undo starts only after
// the undos of everything downstream of it. Each undo is recorded like a step
// (compensating, then compensated, or failed), so a crash mid-saga resumes it:
// what was undone is not undone again, what was in flight is undone again.
#include <fmt/format.h>

#include "engine/executor_impl.hpp"
#include "handlers/invoke.hpp"
#include "model/plan.hpp"
#include "runtime/failpoint.hpp"

namespace loom {

void Executor::Impl::begin_compensation(RunState& run, Queue& queue) {
    run.compensation_begun = true;
    const auto& plan = detail::Plan::of(*run.workflow);
    std::vector<std::uint32_t> work;
    for (std::uint32_t i = 0; i < run.steps.size(); ++i) {
        run.steps[i].downstream_left = detail::Counter(plan.steps[i].dependents.size());
        if (run.steps[i].downstream_left.none()) work.push_back(i);
    }
    walk_compensation(run, std::move(work), queue);
}

void Executor::Impl::walk_compensation(RunState& run, std::vector<std::uint32_t> work, Queue& queue) {
    const auto& plan = detail::Plan::of(*run.workflow);
    while (!work.empty()) {
        const std::uint32_t s = work.back();
        work.pop_back();
        auto& slot = run.steps[s];
        const bool undo = slot.status == StepStatus::compensating ||
                          (slot.status == StepStatus::completed && run.handlers.compensate[s]);
        if (undo) {
            slot.status = StepStatus::compensating;
            slot.compensation_attempts = 0;
            record_step(run, s, queue, event::step_compensating, now());
            run.compensations.add();
            queue.ready(s, Task::Kind::compensate);
            continue;   // its dependencies wait for the undo
        }
        for (auto d : plan.steps[s].deps)
            if (run.steps[d].downstream_left.remove()) work.push_back(d);
    }
}

void Executor::Impl::run_compensation(const Task& task) {
    RunState& run = *task.run;
    const std::uint32_t step = task.step;
    int number = 0;
    {
        MutexLock lock(run.mutex);
        if (run.abandoned || stopping_ || run.steps[step].status != StepStatus::compensating) return;
        number = ++run.steps[step].compensation_attempts;
        in_flight_.enter();
    }
    detail::failpoint("step.claimed");
    Outcome outcome;
    try {
        // Not the run's cancel flag: cancelling a failing run must not stop its undo.
        detail::StepContextParams params = context_params(run, step, number);
        params.compensating = true;   // its own idempotency key: an undo is not its step
        params.resolve_input = [&run, step] {
            return detail::resolve_compensation_input(*run.workflow, step, run.input,
                                                      detail::steps_of(run.unlocked_steps()));
        };
        StepContext ctx = detail::ContextAccess::make(std::move(params));
        outcome = detail::invoke(*run.handlers.compensate[step], ctx);
    } catch (const std::exception& e) {   // building the context
        outcome = Outcome::failure(e.what());
    }
    detail::failpoint("step.finished");
    {
        MutexLock lock(run.mutex);
        auto& slot = run.steps[step];
        if (run.abandoned) {
            in_flight_.leave();
            return;
        }
        Queue queue(commits_, task.run);
        const auto at = now();
        const RetryPolicy retry = run.workflow->retry_of(step);
        slot.wake_at.reset();
        if (outcome.ok()) {
            slot.status = StepStatus::compensated;
            record_step(run, step, queue, event::step_compensated, at);
        } else if (!outcome.fatal() && number < retry.max_attempts) {
            // Tried again after the step's backoff (in the store as wake_at,
            // for monitoring); a restart meanwhile starts the undo over (it is
            // still "compensating").
            slot.wake_at = at + retry.backoff(number);
            // Recorded by hand: the event counts the undo's attempts, not the step's.
            write_step(run, step, queue.writes());
            tell(step, std::nullopt, slot, event::step_compensation_retrying, outcome.error, queue);
            queue.writes().events.push_back(RunEvent{0, run.id, run.workflow->steps()[step].id,
                                                     event::step_compensation_retrying, number,
                                                     outcome.error, at});
            timers_.add(*slot.wake_at, [this, weak = std::weak_ptr(task.run), step] {
                if (auto r = weak.lock()) {
                    const int priority = r->priority;
                    pool_.push(Task{std::move(r), step, Task::Kind::compensate, priority});
                }
            });
            queue.release(false);
            in_flight_.leave();
            return;
        } else {
            slot.status = StepStatus::failed;
            slot.error = "compensation failed: " + outcome.error;
            record_step(run, step, queue, event::step_compensation_failed, at, outcome.error);
            run.compensation_failures.push_back(run.workflow->steps()[step].id);
        }
        run.compensations.remove();
        std::vector<std::uint32_t> released;
        for (auto d : detail::Plan::of(*run.workflow).steps[step].deps)
            if (run.steps[d].downstream_left.remove()) released.push_back(d);
        walk_compensation(run, std::move(released), queue);
        end_run_if_over(run, queue);
        queue.release(false);
    }
    in_flight_.leave();
}

}  // namespace loom
