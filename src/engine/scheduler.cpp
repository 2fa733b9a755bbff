// Running steps and committing their transitions.
//
// Group commit without a committer thread: whoever queues a change while no
// commit is in progress becomes the leader and commits everything queued,
// round after round, until nothing is left. Others queue and go back to
// running handlers, so one transaction carries the transitions of many steps
// and runs. Successors are dispatched only after the commit that made them
// ready: that is the durability promise.
#include <algorithm>
#include <chrono>
#include <iterator>
#include <utility>

#include <fmt/format.h>

#include <loom/error.hpp>

#include "engine/executor_impl.hpp"
#include "model/payload.hpp"
#include "model/plan.hpp"
#include "runtime/failpoint.hpp"

namespace loom {

void Executor::Impl::run_task(Task& task) {
    if (!task.run) task = next_task();   // a wake-up: a host thread left work pending
    while (task.run) {
        if (task.kind == Task::Kind::compensate) {
            run_compensation(task);
        } else if (task.kind == Task::Kind::item) {
            if (auto attempt = claim_item(task)) {
                item_returned(task, attempt->number, call(task, *attempt));
                end_flight(task);
            }
        } else if (task.kind != Task::Kind::step) {
            run_child_task(task);
        } else if (auto attempt = claim(task)) {
            attempt_returned(task.run, task.step, attempt->number, call(task, *attempt));
            end_flight(task);
        }
        task = next_task();
    }
}

Outcome Executor::Impl::call(const Task& task, Attempt& attempt) {
    // Its run was abandoned: the result is dropped, as any of that run's.
    if (!await_start(attempt)) return Outcome::failure("its start could not be committed");
    // Self-fencing: past its leases (a long pause, a store it could not
    // reach), another executor may run these runs already.
    if (!leases_.holding()) {
        give_up_all("its leases ran out before a handler could start");
        return Outcome::failure("its executor's leases ran out");
    }
    const auto item = task.kind == Task::Kind::item ? std::optional(task.item) : std::nullopt;
    return call_handler(*task.run, task.step, attempt, item);
}

void Executor::Impl::end_flight(const Task& task) {
    auto next = limits_.free(task);
    pool_.push(next);
    in_flight_.leave();
}

Task Executor::Impl::next_task() {
    Task next;
    std::size_t left = 0;
    const bool got = pool_.try_pop(next, left);
    if (got && left > 0 && !commits_.due()) return next;   // whoever empties the queue commits
    if (commits_.claim()) {
        Task held;   // a step the commit made ready: run it without a queue hop
        lead(&held);
        if (!got) return held;
        if (held.run) pool_.push(std::move(held));
    }
    return next;
}

bool Executor::Impl::lead_if_idle() {
    if (!commits_.claim()) return false;
    Task held;
    lead(&held);
    run_task(held);
    return true;
}

void Executor::Impl::record_starts(std::vector<Task>& started, Batch& batch) {
    for (auto& t : started) {
        if (t.kind == Task::Kind::item) {
            MutexLock lock(t.run->mutex);
            auto& item = t.run->steps[t.step].fan->items[t.item];
            if (item.start_written || item.status != StepStatus::running || t.run->abandoned) continue;
            write_start(*t.run, t, batch);
            continue;
        }
        auto& written = t.run->start_written[t.step];
        if (written.load(std::memory_order_acquire)) continue;   // mostly: already finished
        MutexLock lock(t.run->mutex);
        if (written.load(std::memory_order_relaxed) || t.run->abandoned) continue;
        write_start(*t.run, t, batch);
    }
    started.clear();
}

void Executor::Impl::lead(Task* held) {
    auto& [batch, effects, started, ready] = round_;
    while (commits_.take(round_)) {
        fence(round_);
        record_starts(started, batch);

        std::exception_ptr failure;
        detail::failpoint("commit.before");
        std::chrono::steady_clock::time_point began;
        if (options_.observer) began = std::chrono::steady_clock::now();
        try {
            if (!batch.empty()) store_.commit(batch);
        } catch (...) {
            failure = std::current_exception();
        }
        detail::failpoint("commit.after");
        if (failure) {
            abandon(effects, ready, failure);
        } else {
            if (options_.observer && !batch.empty()) tell_commit(batch, std::chrono::steady_clock::now() - began);
            for (auto& e : effects) apply(e);
            if (held && !held->run && !ready.empty()) {
                *held = std::move(ready.back());
                ready.pop_back();
            }
            pool_.push(ready);
        }

        if (!held) {   // a host thread: one round, then hand on to a worker
            if (commits_.hand_off()) pool_.push(Task{});
            return;
        }
    }
}

void Executor::Impl::tell_commit(const Batch& batch, std::chrono::steady_clock::duration took) {
    CommitStats stats;
    stats.duration = std::chrono::duration_cast<std::chrono::nanoseconds>(took);
    stats.runs = batch.new_runs.size() + batch.runs.size() + batch.controls.size();
    stats.steps = batch.steps.size();
    stats.items = batch.items.size();
    stats.events = batch.events.size();
    notify([&](Observer& o) { o.on_commit(stats); });
}

void Executor::Impl::apply(Effects& e) {
    if (e.run) {
        RunState& run = *e.run;
        const auto& name = run.workflow->name();
        if (e.run_began && options_.observer) {
            bool tell;
            {
                MutexLock lock(run.mutex);
                tell = run.told_live = !run.abandoned;   // given up meanwhile (its lease lost): never told
            }
            if (tell)
                notify([&](Observer& o) { o.on_run_changed(RunChange{run.id, name, true, RunStatus::running, "", e.run_began}); });
        }
        if (e.arm_timers) arm_timers(e.run, e.run_seq);
        for (auto& c : e.changes) {
            notify([&](Observer& o) {
                o.on_step_changed(StepEvent{run.id, name, run.workflow->steps()[c.step].id, c.status, c.attempt,
                                            c.status == StepStatus::completed ? &c.output : nullptr, c.error,
                                            c.item, c.started_at, c.finished_at, c.wake_at, c.kind, c.detail,
                                            c.ready_at});
            });
        }
        if (e.run_finished) {
            // Observers hear of it before waiters are released.
            const auto& end = *e.run_finished;
            notify([&](Observer& o) { o.on_run_changed(RunChange{run.id, name, false, end.outcome, end.error, end.kind}); });
            notify_parent(run);
            {
                MutexLock lock(run.mutex);
                live_.remove(run);
                run.done = true;
            }
            run.done_cv.notify_all();
            if (run.counted.load() && queue_busy_) leases_.poll_soon();   // room for the next enqueued run
            ended_claimed(run);
        }
    }
    if (e.waiter) e.waiter->signal(nullptr);
}

void Executor::Impl::abandon(std::vector<Effects>& effects, std::vector<Task>& ready,
                             const std::exception_ptr& failure) {
    for (auto& t : ready) drop_ready(t);   // made ready, never to be dispatched
    ready.clear();
    std::string what = "commit failed";
    bool fenced = false;   // refused: another executor owns a run of the batch now
    try {
        std::rethrow_exception(failure);
    } catch (const Conflict& ex) {
        what = ex.what();
        fenced = ex.id() == std::string_view(error_id::store_not_owner);
    } catch (const std::exception& ex) {
        what = ex.what();
    } catch (...) {
    }
    std::vector<std::shared_ptr<RunState>> runs;
    for (auto& e : effects) {
        if (e.waiter) e.waiter->signal(failure);
        if (e.run) runs.push_back(e.run);
    }
    abandon_runs(runs, failure,
                 fenced ? "this executor lost the lease of a run it was committing for, so the store refused the "
                          "commit; it stops running the runs of that commit, which their owners (or, once "
                          "released, any executor) resume from what the store has: " + what
                        : "run abandoned after a failed commit; it is resumed (recover(), or adopted once "
                          "released) from what the store has: " + what);
}

void Executor::Impl::abandon_runs(const std::vector<std::shared_ptr<RunState>>& runs,
                                  const std::exception_ptr& failure, const std::string& message) {
    // First mark the runs: from then on nothing more is queued for them.
    std::vector<std::shared_ptr<RunState>> dropped;
    std::vector<bool> told_live;   // of each dropped run: observers heard it runs here
    for (auto& r : runs) {
        RunState& run = *r;
        MutexLock lock(run.mutex);
        if (run.abandoned || run.done) continue;
        run.abandoned = true;
        run.stopping = true;
        run.store_error = failure;
        run.cancel_flag = true;   // their results would be discarded anyway
        // Recorded before the run leaves live_ below, so that wait() finds why.
        live_.abandoned(run.id, failure);
        dropped.push_back(r);
        told_live.push_back(std::exchange(run.told_live, false));
    }
    // What they queued before that sits behind the failed batch and was built
    // on it: a final run write there holds outputs the store never got.
    drop_pending(dropped, failure);
    // Released while still live here, so that a recover() that sees them gone
    // from live_ claims them after the release, not before it: nothing else
    // takes an abandoned run off live_ (CI once saw a handler returning
    // during the abandon do so, and recover()'s claim undone by the release).
    std::vector<RunId> ids;
    for (auto& r : dropped) ids.push_back(r->id);
    release(ids);
    for (std::size_t i = 0; i < dropped.size(); ++i) {
        RunState& run = *dropped[i];
        // Observers hear of it before waiters are released, as of a run that ends.
        report(LogRecord{LogLevel::error, run.id, "", 0, message, std::nullopt});
        if (told_live[i])
            notify([&](Observer& o) {
                o.on_run_changed(RunChange{run.id, run.workflow->name(), false, RunStatus::running, message, ""});
            });
        {
            MutexLock lock(run.mutex);
            // Not live any more before a waiter can see it done, so that a
            // recover() right after wait() resumes it, even while handlers of
            // this state still run: their results are dropped, and they see
            // ctx.cancelled().
            live_.remove(run);
            run.done = true;
        }
        run.done_cv.notify_all();
        ended_claimed(run);
    }
}

void Executor::Impl::drop_pending(const std::vector<std::shared_ptr<RunState>>& runs,
                                  const std::exception_ptr& failure) {
    std::vector<Task> stale;
    auto waiters = commits_.drop(runs, stale);
    for (auto* w : waiters) w->signal(failure);
    for (auto& t : stale) drop_ready(t);
}

void Executor::Impl::drop_ready(const Task& t) {
    MutexLock lock(t.run->mutex);
    auto& slot = t.run->steps[t.step];
    if (t.kind == Task::Kind::item) {   // counted in its step's fan-out, not in the run
        auto& item = slot.fan->items[t.item];
        if (item.status != StepStatus::ready) return;   // released already
        item.status = StepStatus::pending;
        slot.fan->busy.remove();
        quiet_item_end(t.run, t.step);
        return;
    }
    if (t.kind == Task::Kind::compensate) {   // counted in the run's compensations
        t.run->compensations.remove();
        return;
    }
    if (t.kind == Task::Kind::step) {
        if (slot.status != StepStatus::ready) return;   // released by stop_run
        slot.status = StepStatus::pending;
    }
    t.run->active.remove();   // a step, or a suspended step's start_child
}

void Executor::Impl::await_commit(bool must_lead, CommitWaiter& waiter) {
    if (!detail::on_pool_worker()) {
        if (must_lead) lead(nullptr);
        waiter.wait();
        return;
    }
    // A worker (a handler calling signal() or start(), say) must not simply
    // sleep: a host thread leads one round and then hands on to a worker, and
    // with every worker waiting here nobody would commit. So it leads whenever
    // the role is free, until its own writes are committed.
    for (;;) {
        if (must_lead || commits_.claim()) {
            Task held;
            lead(&held);
            if (held.run) pool_.push(std::move(held));
            must_lead = false;
        }
        if (waiter.wait_for(std::chrono::milliseconds(1))) return;
    }
}

}  // namespace loom
