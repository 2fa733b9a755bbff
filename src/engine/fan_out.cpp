// for_each steps: the handler runs once per element of an array, at most
// max_parallel at a time, and the step's output is the array of the elements'
// outputs in input order. Each element has its own attempts (the step's retry
// policy and timeout apply to each) and is checkpointed by its index: an
// element whose completion is committed never runs again, also after a crash,
// and retry() of a failed run keeps completed elements.
//
// The step counts once in RunState::active from the moment it begins until it
// settles; its elements count in FanOut::busy. A failed element stops new ones
// from starting; the step fails once the running ones have returned.
#include <limits>

#include <fmt/format.h>

#include <loom/error.hpp>

#include "engine/executor_impl.hpp"
#include "model/model.hpp"
#include "model/payload.hpp"
#include "model/plan.hpp"
#include "runtime/failpoint.hpp"

namespace loom {

using detail::FanOut;
using detail::ItemSlot;

void Executor::Impl::write_item(RunState& run, std::uint32_t step, std::uint32_t index, Batch& writes) {
    ItemSlot& item = run.steps[step].fan->items[index];
    item.stored = true;
    writes.items.push_back(ItemWrite{run.id, run.workflow->steps()[step].id,
                                     ItemInfo{index, item.status, item.attempts, item.output, item.error,
                                              item.started_at, item.finished_at, item.wake_at,
                                              item.attempt_base}});
}

void Executor::Impl::record_item(RunState& run, std::uint32_t step, std::uint32_t index, Queue& queue,
                                 const char* event) {
    const ItemSlot& item = run.steps[step].fan->items[index];
    const auto& id = run.workflow->steps()[step].id;
    auto& writes = queue.writes();
    write_item(run, step, index, writes);
    // The history has no column for the element: its detail names it.
    std::string detail = item.error.empty() ? fmt::format("element {}", index)
                                            : fmt::format("element {}: {}", index, item.error);
    tell(step, index, item, event, detail, queue);
    writes.events.push_back(RunEvent{0, run.id, id, event, item.attempts, std::move(detail), *item.finished_at});
}

void Executor::Impl::load_items(RunState& run, std::uint32_t step, const StepInfo& stored) {
    if (stored.items.empty() || detail::kind_of(*run.workflow, step) != detail::StepKind::for_each) return;
    auto& fan = run.steps[step].fan;
    fan = std::make_unique<FanOut>();
    fan->items.resize(stored.items.back().index + 1);
    for (const ItemInfo& s : stored.items) {
        ItemSlot& item = fan->items[s.index];
        item.status = s.status;
        item.attempts = s.attempts;
        item.output = s.output;
        item.error = s.error;
        item.started_at = s.started_at;
        item.finished_at = s.finished_at;
        item.wake_at = s.wake_at;
        item.attempt_base = s.attempt_base;
        item.stored = true;
    }
}

void Executor::Impl::fresh_item_budget(RunState& run, std::uint32_t step) {
    if (!run.steps[step].fan) return;
    for (ItemSlot& item : run.steps[step].fan->items) item.attempt_base = item.attempts;
}

bool Executor::Impl::admit_fan_out(RunState& run, std::uint32_t step, Queue& queue) {
    auto& slot = run.steps[step];
    if (!slot.fan) slot.fan = std::make_unique<FanOut>();
    FanOut& fan = *slot.fan;
    slot.started_at = now();
    slot.finished_at.reset();
    run.open_fan();
    try {
        fan.elements = detail::resolve_for_each(*run.workflow, step, run.input, detail::steps_of(run.steps));
    } catch (const std::exception& e) {
        run.close_fan();
        slot.error = e.what();
        slot.finished_at = now();
        return fail_step(run, step, queue);
    }
    const std::size_t n = fan.elements.size();
    // What the store kept: completed elements stay done; one stored failed
    // failed for good (an element with attempts left waits instead) and fails
    // the step again, unless retry() gave it a fresh budget; one waiting for a
    // retry keeps its time.
    fan.items.resize(n);
    // After recover(): the first elements it dispatches cover every one that
    // can have been in flight (never more than max_parallel); they start exactly.
    if (std::exchange(slot.exact, false))
        fan.exact_left = run.workflow->steps()[step].max_parallel.value_or(std::numeric_limits<std::uint32_t>::max());
    const RetryPolicy retry = run.workflow->retry_of(step);
    for (std::uint32_t i = 0; i < n; ++i) {
        ItemSlot& item = fan.items[i];
        if (item.status == StepStatus::running) {
            // Its attempt was in flight when its process stopped: it counts.
            item.error = interrupted(item.attempts);
            item.finished_at = now();
            if (out_of_attempts(item, retry)) {
                item.status = StepStatus::failed;
                record_item(run, step, i, queue, event::element_failed);
            } else {
                item.status = StepStatus::pending;   // stored so: a stopping run leaves it so
                write_item(run, step, i, queue.writes());
                queue.writes().events.push_back(RunEvent{0, run.id, run.workflow->steps()[step].id,
                                                         event::element_interrupted, item.attempts,
                                                         fmt::format("element {}: {}", i, item.error),
                                                         *item.finished_at});
            }
        }
        if (item.status == StepStatus::completed) {
            ++fan.completed;
        } else if (item.status == StepStatus::failed && item.attempts > item.attempt_base) {
            if (!fan.failed) slot.error = fmt::format("element {} failed: {}", i, item.error);
            fan.failed = true;
        } else if (item.status != StepStatus::waiting) {
            item.status = StepStatus::pending;
        }
    }
    fan.begun = true;
    slot.status = StepStatus::running;
    run.start_written[step].store(true, std::memory_order_relaxed);
    record_step(run, step, queue, event::step_fanned_out, *slot.started_at,
                fmt::format("for_each over {} elements, {} done", n, fan.completed));
    return advance_fan_out(run, step, queue);
}

bool Executor::Impl::advance_fan_out(RunState& run, std::uint32_t step, Queue& queue) {
    auto& slot = run.steps[step];
    FanOut& fan = *slot.fan;
    const std::size_t n = fan.items.size();
    const std::size_t limit =
        run.workflow->steps()[step].max_parallel.value_or(std::numeric_limits<std::uint32_t>::max());
    while (!run.stopping && !fan.failed && fan.next < n && fan.busy.count() < limit) {
        const auto i = static_cast<std::uint32_t>(fan.next++);
        ItemSlot& item = fan.items[i];
        if (item.status == StepStatus::completed) continue;
        fan.busy.add();
        if (fan.exact_left > 0) {
            --fan.exact_left;
            item.exact = true;
        }
        if (item.status == StepStatus::waiting) {
            queue.effects().arm_timers = true;   // a retry due since before a restart
            continue;
        }
        item.make_ready(now());
        queue.ready_item(step, i);
    }
    if (!fan.busy.none() || (fan.completed < n && !fan.failed && !run.stopping)) return false;

    run.close_fan();
    slot.finished_at = now();
    if (fan.completed == n) {
        Json output = Json::array();
        for (ItemSlot& item : fan.items) output.push_back(std::move(item.output));
        try {
            // Each element's output passed the check; together they may not.
            detail::check_payload(output, options_.payload, "the for_each output");
            slot.status = StepStatus::completed;
            slot.output = std::move(output);
            slot.error.clear();
            run.settled.add();
            record_step(run, step, queue, event::step_completed, *slot.finished_at);
            return true;
        } catch (const std::exception& e) {
            slot.error = e.what();
            return fail_step(run, step, queue);
        }
    }
    if (!fan.failed) {
        slot.error = Error::text(error_id::for_each_stopped, fmt::format("the run stopped with {} of {} elements done",
                                                                                 fan.completed, n));
    }
    cancel_items(run, step, queue);
    return fail_step(run, step, queue);
}

void Executor::Impl::cancel_items(RunState& run, std::uint32_t step, Queue& queue) {
    auto& items = run.steps[step].fan->items;
    for (std::uint32_t i = 0; i < items.size(); ++i) {
        ItemSlot& item = items[i];
        // Only rows that exist: a fan-out stopped early writes no row for
        // the elements it never reached.
        if (!item.stored || (item.status != StepStatus::pending && item.status != StepStatus::waiting))
            continue;
        item.status = StepStatus::cancelled;
        item.wake_at.reset();
        if (!item.finished_at) item.finished_at = now();
        record_item(run, step, i, queue, event::element_cancelled);
    }
}

void Executor::Impl::wind_down_fans(RunState& run, Queue& queue) {
    for (std::uint32_t step = 0; step < run.steps.size(); ++step) {
        auto& slot = run.steps[step];
        if (!slot.fan || !slot.fan->begun || slot.status != StepStatus::running) continue;
        release_idle_items(run, step);
        if (slot.fan->busy.none()) advance_fan_out(run, step, queue);
    }
}

void Executor::Impl::release_idle_items(RunState& run, std::uint32_t step) {
    FanOut& fan = *run.steps[step].fan;
    // A retry that is not coming back (the store keeps it waiting, and
    // retry() of the run gives it a fresh budget), and elements queued, parked
    // or held by a concurrency limit but not started: released, as stop_run
    // does with ready steps; their tasks find them pending and end.
    for (std::size_t i = 0; i < fan.next; ++i) {
        auto& status = fan.items[i].status;
        if (status != StepStatus::waiting && status != StepStatus::ready) continue;
        status = StepStatus::pending;
        fan.busy.remove();
    }
    // A task a limit holds gets no slot back otherwise: another run's task may wait for it.
    unpark_limited(run);
}

void Executor::Impl::fail_fan_out(RunState& run, std::uint32_t step, std::uint32_t index,
                                  const std::string& error) {
    FanOut& fan = *run.steps[step].fan;
    if (fan.failed) return;   // the first failure is the step's error
    fan.failed = true;
    run.steps[step].error = fmt::format("element {} failed: {}", index, error);
    release_idle_items(run, step);
}

std::optional<Executor::Impl::Attempt> Executor::Impl::claim_item(const Task& task) {
    RunState& run = *task.run;
    MutexLock lock(run.mutex);
    auto& slot = run.steps[task.step];
    FanOut& fan = *slot.fan;
    ItemSlot& item = fan.items[task.item];
    const bool past_deadline = run.deadline_at && now() >= *run.deadline_at;
    if (run.stopping || stopping_ || run.abandoned || fan.failed || past_deadline) {
        if (item.status != StepStatus::ready) return std::nullopt;   // released by wind_down_fans
        item.status = StepStatus::pending;
        fan.busy.remove();
        if (run.abandoned || stopping_) {
            quiet_item_end(task.run, task.step);
            return std::nullopt;
        }
        if (past_deadline) {
            expire(task.run);   // nothing starts past the deadline
            return std::nullopt;
        }
        Queue queue(commits_, task.run);
        if (advance_fan_out(run, task.step, queue)) release_dependents(run, task.step, queue);
        end_run_if_over(run, queue);
        queue.release(false);
        return std::nullopt;
    }
    if (held_back(run, task)) return std::nullopt;
    ++slot.attempts;   // the step's attempts: all its elements' together
    auto attempt = begin_attempt(task, item);
    detail::failpoint("item.claimed");
    return attempt;
}

void Executor::Impl::quiet_item_end(const std::shared_ptr<RunState>& run_ptr, std::uint32_t step) {
    RunState& run = *run_ptr;
    if (!run.steps[step].fan->busy.none()) return;
    run.close_fan();
}

void Executor::Impl::item_returned(const Task& task, int number, Outcome&& result) {
    detail::failpoint("item.finished");
    RunState& run = *task.run;
    MutexLock lock(run.mutex);
    FanOut& fan = *run.steps[task.step].fan;
    ItemSlot& item = fan.items[task.item];
    if (!accept_outcome(run, task.step, task.item, item, number)) return;
    if (run.abandoned || (attempts_cancelled_ && !result.ok())) {
        // As attempt_returned: recover() runs it again, and a shutdown's
        // cancel does not count as an attempt.
        item.status = StepStatus::pending;
        fan.busy.remove();
        if (!item.start_written) {
            --item.attempts;   // never stored, and now never will be
        } else if (!run.abandoned) {
            ++item.attempt_base;   // as a step's (attempt_returned)
            Queue queue(commits_, task.run);
            write_item(run, task.step, task.item, queue.writes());
            queue.release(false);
        }
        quiet_item_end(task.run, task.step);
        return;
    }
    item.start_written = true;   // with its result
    close_attempt(run, task.step, item, result);
    Queue queue(commits_, task.run);
    if (apply_item_outcome(run, task.step, task.item, std::move(result), queue))
        release_dependents(run, task.step, queue);
    end_run_if_over(run, queue);
    queue.release(false);
}

bool Executor::Impl::apply_item_outcome(RunState& run, std::uint32_t step, std::uint32_t index, Outcome&& result,
                                 Queue& queue) {
    auto& slot = run.steps[step];
    FanOut& fan = *slot.fan;
    ItemSlot& item = fan.items[index];
    if (result.ok() && result.suspended) {
        result = Outcome::failure(Error::text(error_id::for_each_suspend, "an element of a for_each cannot suspend; "
                                 "give the outside work its own step"),
                                 /*fatal=*/true);
    }
    if (result.ok()) {
        item.status = StepStatus::completed;
        item.output = std::move(result.output);
        item.error.clear();
        ++fan.completed;
        fan.busy.remove();
        record_item(run, step, index, queue, event::element_completed);
        return advance_fan_out(run, step, queue);
    }
    item.error = std::move(result.error);
    // A failed sibling stops new attempts: the step fails once the running ones return.
    if (!fan.failed && wait_to_retry(run, step, item, result, queue)) {
        record_item(run, step, index, queue, event::element_retrying);
        return false;
    }
    item.status = StepStatus::failed;
    fan.busy.remove();
    record_item(run, step, index, queue, event::element_failed);
    fail_fan_out(run, step, index, item.error);
    return advance_fan_out(run, step, queue);
}

void Executor::Impl::give_up_items(RunState& run, std::uint32_t step, Queue& queue, TimePoint at) {
    FanOut& fan = *run.steps[step].fan;
    for (std::uint32_t i = 0; i < fan.items.size(); ++i) {
        ItemSlot& item = fan.items[i];
        if (item.status != StepStatus::running) continue;
        give_up(item, at);
        fan.busy.remove();
        record_item(run, step, i, queue, event::element_failed);
        fail_fan_out(run, step, i, item.error);
    }
}

}  // namespace loom
