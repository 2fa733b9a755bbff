// Sub-workflows: a step whose handler is "workflow:NAME" starts a child run of
// NAME and is suspended until the child is final; it then completes with the
// child's output or fails with its error. The child's id is "<parent>.<step>"
// (run ids hold no '.', step ids neither), which links the two durably without
// a column and makes starting the child idempotent: after a crash the parent
// finds its child by id instead of starting another.
#include <algorithm>

#include <fmt/format.h>

#include <loom/error.hpp>

#include "engine/executor_impl.hpp"
#include "model/model.hpp"
#include "model/plan.hpp"

namespace loom {
namespace {

constexpr std::size_t kMaxNesting = 8;   // a workflow that runs itself stops here

}  // namespace

bool Executor::Impl::admit_child(RunState& run, std::uint32_t step, Queue& queue) {
    auto& slot = run.steps[step];
    slot.attempts = 1;   // one child, whatever happens to it
    slot.started_at = now();
    run.start_written[step].store(true, std::memory_order_relaxed);
    const auto depth = static_cast<std::size_t>(std::count(run.id.begin(), run.id.end(), '.'));
    if (depth >= kMaxNesting) {
        slot.error = Error::text(error_id::workflow_depth, fmt::format("a child run would be nested {} deep; at most {}",
                                                                             depth + 1, kMaxNesting));
        slot.finished_at = slot.started_at;
        return fail_step(run, step, queue);
    }
    slot.status = StepStatus::suspended;
    run.active.add();
    record_step(run, step, queue, event::step_suspended, *slot.started_at,
                "child run " + child_run_id(run.id, *run.workflow, step));
    queue.ready(step, Task::Kind::start_child);   // once this is durable
    return false;
}

void Executor::Impl::cancel_children(RunState& run) {
    for (std::uint32_t i = 0; i < run.steps.size(); ++i) {
        if (run.steps[i].status == StepStatus::suspended &&
            detail::kind_of(*run.workflow, i) == detail::StepKind::child)
            pool_.push(Task{run.shared_from_this(), i, Task::Kind::cancel_child, run.priority});
    }
}

void Executor::Impl::run_child_task(const Task& task) {
    RunState& parent = *task.run;
    const std::uint32_t step = task.step;
    const RunId child = child_run_id(parent.id, *parent.workflow, step);
    if (task.kind == Task::Kind::cancel_child) {
        try {
            cancel_run(child);
        } catch (const NotFound&) {
            // Not started yet: the stopping parent will not start it.
        } catch (const std::exception& e) {
            // The store failed: the child runs on, as after a crash.
            report(LogRecord{LogLevel::warn, child, "", 0,
                             std::string("cancelling the child of a stopped run: ") + e.what(), std::nullopt});
        }
        return;
    }
    auto finish = [&](Outcome&& result) {
        MutexLock lock(parent.mutex);
        auto& slot = parent.steps[step];
        // A stopping parent released its suspended steps already.
        if (parent.abandoned || parent.stopping || slot.status != StepStatus::suspended) return;
        Queue queue(commits_, task.run);
        resume(parent, step, std::move(result), queue);
        end_run_if_over(parent, queue);
        queue.release(false);
    };
    auto finish_from = [&](const RunInfo& info) {
        if (info.status == RunStatus::completed) {
            finish(Outcome::success(info.output));
        } else {
            const auto status = to_string(info.status);
            finish(Outcome::failure(info.error.empty()
                                       ? fmt::format("child run {} {}", child, status)
                                       : fmt::format("child run {} {}: {}", child, status, info.error),
                                   /*fatal=*/true));
        }
    };
    try {
        // The child may exist: started before a crash, or by an earlier try.
        if (auto info = store_.load_run(child)) {
            // Unfinished, it is live here or recover() resumes it; either way
            // it tells this step when it is final (notify_parent).
            if (is_final(info->status)) finish_from(*info);
            return;
        }
        if (task.kind == Task::Kind::child_done) return;   // it must exist by now
        Json input;
        {
            MutexLock lock(parent.mutex);
            if (parent.abandoned || parent.stopping || stopping_ ||
                parent.steps[step].status != StepStatus::suspended)
                return;
            input = detail::resolve_input(*parent.workflow, step, parent.input, detail::steps_of(parent.steps));
        }
        if (auto* stand_in = stand_in_.load(); stand_in && stand_in->covers(*parent.workflow, step)) {
            auto [output, error] = stand_in->outcome(parent.id, *parent.workflow, step, input);
            finish(error.empty() ? Outcome::success(std::move(output)) : Outcome::failure(std::move(error), true));
            return;
        }
        auto wf = workflows_.find(std::string(detail::child_workflow(parent.workflow->steps()[step].handler)), std::nullopt);
        auto handlers = resolve_handlers(*wf, child);
        start_run(std::move(wf), std::move(handlers), input, "", child, parent.priority);
        bool stopped;
        {
            MutexLock lock(parent.mutex);
            stopped = parent.stopping && !parent.cancel_requested;
        }
        // The parent stopped while the child started: cancel_children did not see it.
        if (stopped) cancel_run(child);
    } catch (const Conflict& e) {
        if (e.id() != error_id::store_duplicate_run) finish(Outcome::failure(e.what(), /*fatal=*/true));
        // Otherwise another recover() started it at the same moment: it will tell us.
    } catch (const std::exception& e) {
        finish(Outcome::failure(e.what(), /*fatal=*/true));
    }
}

RunId Executor::Impl::child_run_id(const RunId& parent, const Workflow& wf, std::size_t step) {
    return parent + "." + wf.steps()[step].id;
}

void Executor::Impl::notify_parent(const RunState& child) {
    const auto dot = child.id.rfind('.');
    if (dot == RunId::npos) return;
    auto parent = live_.find(child.id.substr(0, dot));
    if (!parent) return;   // its recovery finds the child final and finishes the step
    const auto step = detail::Plan::of(*parent->workflow).step_index(child.id.substr(dot + 1));
    if (!step) return;
    const int priority = parent->priority;
    pool_.push(Task{std::move(parent), *step, Task::Kind::child_done, priority});
}

}  // namespace loom
