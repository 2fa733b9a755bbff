// Running steps and committing their transitions.
//
// Group commit without a committer thread: whoever queues a change while no
// commit is in progress becomes the leader and commits everything queued,
// round after round, until nothing is left. Others queue and go back to
// running handlers, so one transaction carries the transitions of many steps
// and runs. Successors are dispatched only after the commit that made them
// ready: that is the durability promise.
#include <algorithm>
#include <iterator>

#include <fmt/format.h>

#include <loom/error.hpp>

#include "engine/executor_impl.hpp"
#include "model/payload.hpp"
#include "model/plan.hpp"
#include "runtime/failpoint.hpp"

namespace loom {
namespace detail {

void CommitWaiter::signal(std::exception_ptr e) {
    // Notify under the lock: the waiter lives on its thread's stack and may be
    // gone the moment it can see `done`.
    std::lock_guard lock(mutex);
    done = true;
    error = std::move(e);
    cv.notify_all();
}

void CommitWaiter::wait() {
    while (!wait_for(std::chrono::hours(24))) {}
}

bool CommitWaiter::wait_for(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex);
    if (!cv.wait_for(lock, timeout, [this] { return done; })) return false;
    if (error) std::rethrow_exception(error);
    return true;
}

}  // namespace detail

namespace {

// A deferred commit waits at most this long, or for this many changes.
constexpr auto kMaxCommitDelay = std::chrono::milliseconds(2);
constexpr std::size_t kMaxDeferredChanges = 512;

std::int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

Executor::Impl::Queue::Queue(Impl& impl, std::shared_ptr<RunState> run, CommitWaiter* waiter)
    : impl_(impl), run_(std::move(run)), lock_(impl.commit_mutex_) {
    if (impl_.pending_effects_.empty())
        impl_.pending_since_ns_.store(steady_ns(), std::memory_order_relaxed);
    auto& e = impl_.pending_effects_.emplace_back();
    e.run = run_;
    e.waiter = waiter;
    if (run_) e.run_seq = ++run_->queued_seq;   // the run's mutex is held
    const Batch& b = impl_.pending_;
    e.new_runs_from = b.new_runs.size();
    e.steps_from = b.steps.size();
    e.items_from = b.items.size();
    e.runs_from = b.runs.size();
    e.events_from = b.events.size();
    impl_.pending_count_.store(impl_.pending_effects_.size(), std::memory_order_relaxed);
}

bool Executor::Impl::Queue::release(bool claim) {
    const bool must_lead = claim && !impl_.leading_;
    if (must_lead) impl_.leading_ = true;
    lock_.unlock();
    return must_lead;
}

void Executor::Impl::run_task(Task& task) {
    if (!task.run) task = next_task();   // a wake-up: a host thread left work pending
    while (task.run) {
        if (task.kind == Task::Kind::compensate) {
            run_compensation(task);
        } else if (task.kind == Task::Kind::item) {
            if (auto attempt = claim_item(task)) {
                finish_item(task, attempt->number, call(task, *attempt));
                free_slot(task);
                left_flight();
            }
        } else if (task.kind != Task::Kind::step) {
            run_child_task(task);
        } else if (auto attempt = claim(task)) {
            finish_attempt(task.run, task.step, attempt->number, call(task, *attempt));
            free_slot(task);
            left_flight();
        }
        task = next_task();
    }
}

Executor::Impl::Result Executor::Impl::call(const Task& task, Attempt& attempt) {
    // Its run was abandoned: the result is dropped, as any of that run's.
    if (!await_start(attempt)) return Result::failure("its start could not be committed");
    const auto item = task.kind == Task::Kind::item ? std::optional(task.item) : std::nullopt;
    return call_handler(*task.run, task.step, attempt, item);
}

void Executor::Impl::left_flight() {
    // The last one out tells a destructor waiting for in-flight handlers.
    if (in_flight_.fetch_sub(1) == 1 && stopping_) {
        std::lock_guard lock(in_flight_mutex_);
        in_flight_cv_.notify_all();
    }
}

Task Executor::Impl::next_task() {
    Task next;
    std::size_t left = 0;
    const bool got = pool_.try_pop(next, left);
    if (got && left > 0 && !commit_due()) return next;   // whoever empties the queue commits
    if (claim_leadership()) {
        Task held;   // a step the commit made ready: run it without a queue hop
        lead(&held);
        if (!got) return held;
        if (held.run) pool_.push(std::move(held));
    }
    return next;
}

bool Executor::Impl::commit_due() const {
    if (pending_count_.load(std::memory_order_relaxed) >= kMaxDeferredChanges) return true;
    const auto age = steady_ns() - pending_since_ns_.load(std::memory_order_relaxed);
    return age >= std::chrono::nanoseconds(kMaxCommitDelay).count();
}

bool Executor::Impl::claim_leadership() {
    std::lock_guard lock(commit_mutex_);
    if (leading_ || pending_effects_.empty()) return false;
    leading_ = true;
    return true;
}

bool Executor::Impl::lead_if_idle() {
    if (!claim_leadership()) return false;
    Task held;
    lead(&held);
    run_task(held);
    return true;
}

void Executor::Impl::record_starts(std::vector<Task>& started, Batch& batch) {
    for (auto& t : started) {
        if (t.kind == Task::Kind::item) {
            std::lock_guard lock(t.run->mutex);
            auto& item = t.run->steps[t.step].fan->items[t.item];
            if (item.start_written || item.status != StepStatus::running || t.run->abandoned) continue;
            write_start(*t.run, t, batch);
            continue;
        }
        auto& written = t.run->start_written[t.step];
        if (written.load(std::memory_order_acquire)) continue;   // mostly: already finished
        std::lock_guard lock(t.run->mutex);
        if (written.load(std::memory_order_relaxed) || t.run->abandoned) continue;
        write_start(*t.run, t, batch);
    }
    started.clear();
}

void Executor::Impl::lead(Task* held) {
    auto& [batch, effects, started, ready] = leader_;
    for (;;) {
        batch.clear();
        effects.clear();
        {
            std::lock_guard lock(commit_mutex_);
            if (pending_effects_.empty()) {
                leading_ = false;
                return;
            }
            // Swapping hands the emptied buffers back: their capacity is reused.
            batch.swap(pending_);
            effects.swap(pending_effects_);
            pending_count_.store(0, std::memory_order_relaxed);
            ready.swap(pending_ready_);
            started.swap(unrecorded_);
        }
        record_starts(started, batch);

        std::exception_ptr failure;
        detail::failpoint("commit.before");
        try {
            if (!batch.empty()) store_.commit(batch);
        } catch (...) {
            failure = std::current_exception();
        }
        detail::failpoint("commit.after");
        if (failure) {
            abandon(effects, ready, failure);
        } else {
            for (auto& e : effects) apply(e);
            if (held && !held->run && !ready.empty()) {
                *held = std::move(ready.back());
                ready.pop_back();
            }
            pool_.push(ready);
        }

        if (!held) {   // a host thread: one round, then hand on to a worker
            std::lock_guard lock(commit_mutex_);
            leading_ = false;
            if (!pending_effects_.empty()) pool_.push(Task{});
            return;
        }
    }
}

void Executor::Impl::apply(Effects& e) {
    if (e.run) {
        RunState& run = *e.run;
        const auto& name = run.workflow->name();
        if (e.run_started) notify([&](Observer& o) { o.on_run_started(run.id, name); });
        if (e.arm_timers) arm_timers(e.run, e.run_seq);
        for (auto& c : e.changes) {
            notify([&](Observer& o) {
                o.on_step_changed(StepEvent{run.id, name, run.workflow->steps()[c.step].id, c.status, c.attempt,
                                            c.status == StepStatus::completed ? &c.output : nullptr, c.error,
                                            c.item, c.started_at, c.finished_at, c.wake_at, c.kind, c.detail});
            });
        }
        if (e.run_finished) {
            // Observers hear of it before waiters are released.
            notify([&](Observer& o) { o.on_run_finished(run.id, run.outcome, run.error); });
            notify_parent(run);
            {
                std::lock_guard lock(run.mutex);
                erase_live(e.run);
                run.done = true;
            }
            run.done_cv.notify_all();
        }
    }
    if (e.waiter) e.waiter->signal(nullptr);
}

void Executor::Impl::abandon(std::vector<Effects>& effects, std::vector<Task>& ready,
                             const std::exception_ptr& failure) {
    for (auto& t : ready) drop_ready(t);   // made ready, never to be dispatched
    ready.clear();
    std::string what = "commit failed";
    try {
        std::rethrow_exception(failure);
    } catch (const std::exception& ex) {
        what = ex.what();
    } catch (...) {
    }
    // First mark the runs: from then on nothing more is queued for them.
    std::vector<std::shared_ptr<RunState>> dropped;
    for (auto& e : effects) {
        if (e.waiter) e.waiter->signal(failure);
        if (!e.run) continue;
        RunState& run = *e.run;
        std::lock_guard lock(run.mutex);
        if (run.abandoned) continue;
        run.abandoned = true;
        run.stopping = true;
        run.store_error = failure;
        run.cancel_flag = true;   // their results would be discarded anyway
        {
            // Recorded now: a handler of this run that returns from here on
            // may take it off live_ (erase_live) before the loop below does,
            // and wait() must then find why.
            std::lock_guard live_lock(live_mutex_);
            abandoned_[run.id] = failure;
        }
        dropped.push_back(e.run);
    }
    // What they queued before that sits behind the failed batch and was built
    // on it: a final run write there holds outputs the store never got.
    drop_pending(dropped, failure);
    for (auto& r : dropped) {
        RunState& run = *r;
        {
            std::lock_guard lock(run.mutex);
            // Not live any more before a waiter can see it done, so that a
            // recover() right after wait() resumes it, even while handlers of
            // this state still run: their results are dropped, and they see
            // ctx.cancelled().
            erase_live(r);
            run.done = true;
        }
        run.done_cv.notify_all();
        notify([&](Observer& o) {
            o.on_log(LogRecord{LogLevel::error, run.id, "", 0,
                               "run abandoned after a failed commit; recover() resumes it: " + what, std::nullopt});
        });
    }
}

namespace {

// Removes, in place, the ranges of `items` that belong to dropped effects and
// rebases the kept effects' starts. Effects i owns [i.*from, (i+1).*from).
template <class T>
void drop_ranges(std::vector<T>& items, std::vector<Effects>& effects, std::size_t Effects::*from,
                 const std::vector<bool>& drop) {
    std::size_t out = 0;
    for (std::size_t i = 0; i < effects.size(); ++i) {
        const std::size_t begin = effects[i].*from;
        const std::size_t end = i + 1 < effects.size() ? effects[i + 1].*from : items.size();
        if (drop[i]) continue;
        effects[i].*from = out;
        for (std::size_t j = begin; j < end; ++j, ++out)
            if (out != j) items[out] = std::move(items[j]);
    }
    items.erase(items.begin() + static_cast<std::ptrdiff_t>(out), items.end());
}

}  // namespace

void Executor::Impl::drop_pending(const std::vector<std::shared_ptr<RunState>>& runs,
                                  const std::exception_ptr& failure) {
    if (runs.empty()) return;
    auto is_dropped = [&](const std::shared_ptr<RunState>& run) {
        return run && std::find(runs.begin(), runs.end(), run) != runs.end();
    };
    std::vector<CommitWaiter*> waiters;
    std::vector<Task> stale;
    {
        std::lock_guard lock(commit_mutex_);
        auto& effects = pending_effects_;
        std::vector<bool> drop(effects.size());
        bool any = false;
        for (std::size_t i = 0; i < effects.size(); ++i) any |= drop[i] = is_dropped(effects[i].run);
        if (any) {
            drop_ranges(pending_.new_runs, effects, &Effects::new_runs_from, drop);
            drop_ranges(pending_.steps, effects, &Effects::steps_from, drop);
            drop_ranges(pending_.items, effects, &Effects::items_from, drop);
            drop_ranges(pending_.runs, effects, &Effects::runs_from, drop);
            drop_ranges(pending_.events, effects, &Effects::events_from, drop);
            std::size_t out = 0;
            for (std::size_t i = 0; i < effects.size(); ++i) {
                if (drop[i]) {
                    if (effects[i].waiter) waiters.push_back(effects[i].waiter);
                } else {
                    if (out != i) effects[out] = std::move(effects[i]);
                    ++out;
                }
            }
            effects.resize(out);
            pending_count_.store(effects.size(), std::memory_order_relaxed);
        }
        auto keep = std::stable_partition(pending_ready_.begin(), pending_ready_.end(),
                                          [&](const Task& t) { return !is_dropped(t.run); });
        stale.assign(std::make_move_iterator(keep), std::make_move_iterator(pending_ready_.end()));
        pending_ready_.erase(keep, pending_ready_.end());
    }
    for (auto* w : waiters) w->signal(failure);
    for (auto& t : stale) drop_ready(t);
}

void Executor::Impl::drop_ready(const Task& t) {
    std::lock_guard lock(t.run->mutex);
    auto& slot = t.run->steps[t.step];
    if (t.kind == Task::Kind::item) {   // counted in its step's fan-out, not in the run
        auto& item = slot.fan->items[t.item];
        if (item.status != StepStatus::ready) return;   // released already
        item.status = StepStatus::pending;
        --slot.fan->busy;
        quiet_item_end(t.run, t.step);
        return;
    }
    if (t.kind == Task::Kind::step) {
        if (slot.status != StepStatus::ready) return;   // released by stop_run
        slot.status = StepStatus::pending;
    }
    --t.run->active;
}

void Executor::Impl::await_commit(bool must_lead, CommitWaiter& waiter) {
    if (!detail::ThreadPool::on_worker()) {
        if (must_lead) lead(nullptr);
        waiter.wait();
        return;
    }
    // A worker (a handler calling signal() or start(), say) must not simply
    // sleep: a host thread leads one round and then hands on to a worker, and
    // with every worker waiting here nobody would commit. So it leads whenever
    // the role is free, until its own writes are committed.
    for (;;) {
        if (must_lead || claim_leadership()) {
            Task held;
            lead(&held);
            if (held.run) pool_.push(std::move(held));
            must_lead = false;
        }
        if (waiter.wait_for(std::chrono::milliseconds(1))) return;
    }
}

}  // namespace loom
