#include "engine/commit_queue.hpp"

#include <algorithm>
#include <iterator>

namespace loom::detail {

namespace {

// A deferred commit waits at most this long, or for this many changes.
constexpr auto kMaxCommitDelay = std::chrono::milliseconds(2);
constexpr std::size_t kMaxDeferredChanges = 512;

std::int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

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

void CommitWaiter::signal(std::exception_ptr e) {
    // Notify under the lock: the waiter lives on its thread's stack and may be
    // gone the moment it can see `done_`.
    MutexLock lock(mutex_);
    done_ = true;
    error_ = std::move(e);
    cv_.notify_all();
}

void CommitWaiter::wait() {
    while (!wait_for(std::chrono::hours(24))) {}
}

bool CommitWaiter::wait_for(std::chrono::milliseconds timeout) {
    MutexLock lock(mutex_);
    if (!cv_.wait_for(mutex_, timeout, [this] {
            mutex_.assert_held();
            return done_;
        }))
        return false;
    if (error_) std::rethrow_exception(error_);
    return true;
}

CommitQueue::Queue::Queue(CommitQueue& queue, std::shared_ptr<RunState> run, CommitWaiter* waiter)
    : queue_(queue), run_(std::move(run)), lock_(queue.mutex_) {
    if (queue_.effects_.empty()) queue_.since_ns_.store(steady_ns(), std::memory_order_relaxed);
    auto& e = queue_.effects_.emplace_back();
    e.run = run_;
    e.waiter = waiter;
    if (run_) e.run_seq = ++run_->queued_seq;   // the run's mutex is held
    const Batch& b = queue_.pending_;
    e.new_runs_from = b.new_runs.size();
    e.steps_from = b.steps.size();
    e.items_from = b.items.size();
    e.runs_from = b.runs.size();
    e.events_from = b.events.size();
    queue_.count_.store(queue_.effects_.size(), std::memory_order_relaxed);
}

bool CommitQueue::Queue::release(bool claim) {
    const bool must_lead = claim && !queue_.leading_;
    if (must_lead) queue_.leading_ = true;
    lock_.unlock();
    return must_lead;
}

bool CommitQueue::claim() {
    MutexLock lock(mutex_);
    if (leading_ || effects_.empty()) return false;
    leading_ = true;
    return true;
}

bool CommitQueue::take(Round& round) {
    round.batch.clear();
    round.effects.clear();
    MutexLock lock(mutex_);
    if (effects_.empty()) {
        leading_ = false;
        return false;
    }
    // Swapping hands the emptied buffers back: their capacity is reused.
    round.batch.swap(pending_);
    round.effects.swap(effects_);
    count_.store(0, std::memory_order_relaxed);
    round.ready.swap(ready_);
    round.started.swap(unwritten_);
    return true;
}

bool CommitQueue::hand_off() {
    MutexLock lock(mutex_);
    leading_ = false;
    return !effects_.empty();
}

bool CommitQueue::due() const {
    if (count_.load(std::memory_order_relaxed) >= kMaxDeferredChanges) return true;
    const auto age = steady_ns() - since_ns_.load(std::memory_order_relaxed);
    return age >= std::chrono::nanoseconds(kMaxCommitDelay).count();
}

std::optional<TimePoint> CommitQueue::start_unwritten(const Task& task, TimePoint began,
                                                      std::chrono::milliseconds delay) {
    MutexLock lock(mutex_);
    auto flush = unwritten_added(began, delay);
    unwritten_.push_back(task);
    return flush;
}

std::optional<TimePoint> CommitQueue::log_unwritten(LogRecord line, std::chrono::milliseconds delay) {
    MutexLock lock(mutex_);
    auto flush = unwritten_added(line.at, delay);
    pending_.logs.push_back(std::move(line));
    return flush;
}

std::optional<TimePoint> CommitQueue::unwritten_added(TimePoint began, std::chrono::milliseconds delay) {
    if (unwritten_.empty() && pending_.logs.empty()) oldest_unwritten_ = began;
    if (flush_armed_) return std::nullopt;
    flush_armed_ = true;
    return began + delay;
}

bool CommitQueue::starts_due(TimePoint now, std::chrono::milliseconds delay, std::optional<TimePoint>& rearm) {
    MutexLock lock(mutex_);
    flush_armed_ = false;
    rearm.reset();
    if (unwritten_.empty() && pending_.logs.empty()) return false;
    // Commits since these starts have not carried them only because they began
    // after the last one: wait until the oldest is due, so that a quick chain,
    // whose starts ride with its results, gets no commit of its own from here.
    const TimePoint due = oldest_unwritten_ + delay;
    if (now >= due) return true;
    flush_armed_ = true;
    rearm = due;
    return false;
}

std::vector<CommitWaiter*> CommitQueue::drop(const std::vector<std::shared_ptr<RunState>>& runs,
                                             std::vector<Task>& stale) {
    std::vector<CommitWaiter*> waiters;
    if (runs.empty()) return waiters;
    auto is_dropped = [&](const std::shared_ptr<RunState>& run) {
        return run && std::find(runs.begin(), runs.end(), run) != runs.end();
    };
    MutexLock lock(mutex_);
    std::vector<bool> drop(effects_.size());
    bool any = false;
    for (std::size_t i = 0; i < effects_.size(); ++i) any |= drop[i] = is_dropped(effects_[i].run);
    if (any) {
        drop_ranges(pending_.new_runs, effects_, &Effects::new_runs_from, drop);
        drop_ranges(pending_.steps, effects_, &Effects::steps_from, drop);
        drop_ranges(pending_.items, effects_, &Effects::items_from, drop);
        drop_ranges(pending_.runs, effects_, &Effects::runs_from, drop);
        drop_ranges(pending_.events, effects_, &Effects::events_from, drop);
        std::size_t out = 0;
        for (std::size_t i = 0; i < effects_.size(); ++i) {
            if (drop[i]) {
                if (effects_[i].waiter) waiters.push_back(effects_[i].waiter);
            } else {
                if (out != i) effects_[out] = std::move(effects_[i]);
                ++out;
            }
        }
        effects_.resize(out);
        count_.store(effects_.size(), std::memory_order_relaxed);
    }
    auto keep = std::stable_partition(ready_.begin(), ready_.end(), [&](const Task& t) { return !is_dropped(t.run); });
    stale.insert(stale.end(), std::make_move_iterator(keep), std::make_move_iterator(ready_.end()));
    ready_.erase(keep, ready_.end());
    return waiters;
}

}  // namespace loom::detail
