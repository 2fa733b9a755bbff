// The executor's worker threads and their one queue of ready tasks. Internal.
// Workers sleep on a condition variable only when the queue is empty, and a
// push wakes a sleeper only if there is one (no syscall on the hot path).
// Generic in the task: the runtime knows nothing of runs and steps.
#pragma once

#include <algorithm>
#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/mutex.hpp"

namespace loom::detail {

/// Tasks by priority (`Task::priority`, an int: higher first), FIFO within
/// one: a few buckets (most hosts use one priority, so the common case is one
/// deque).
template <class Task>
class TaskQueue {
public:
    void push(Task task) {
        auto it = buckets_.begin();
        while (it != buckets_.end() && it->first > task.priority) ++it;
        if (it == buckets_.end() || it->first != task.priority) it = buckets_.insert(it, {task.priority, {}});
        it->second.push_back(std::move(task));
        ++size_;
    }
    /// The oldest task of the highest priority; the queue must not be empty.
    Task pop() {
        for (auto& [priority, tasks] : buckets_) {
            if (tasks.empty()) continue;
            Task task = std::move(tasks.front());
            tasks.pop_front();
            --size_;
            return task;
        }
        return {};   // not reached: callers check empty()
    }
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    void clear() {
        buckets_.clear();
        size_ = 0;
    }

private:
    std::vector<std::pair<int, std::deque<Task>>> buckets_;   // by priority, descending
    std::size_t size_ = 0;
};

/// True on one of any ThreadPool's worker threads.
bool on_pool_worker() noexcept;
/// Marks this thread as a worker (for on_pool_worker).
void mark_pool_worker() noexcept;

/// Thread safety: every method any thread, but stop() not from a worker.
template <class Task>
class ThreadPool {
public:
    using Runner = std::function<void(Task&)>;
    /// Called by a worker that found the queue empty, before it sleeps;
    /// returns true if it did some work (the worker then looks again).
    using Idle = std::function<bool()>;

    ThreadPool(unsigned threads, Runner runner, Idle idle) : runner_(std::move(runner)), idle_hook_(std::move(idle)) {
        threads_.reserve(threads);
        for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
    }
    ~ThreadPool() { stop(); }
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    void push(Task task) {
        bool wake = false;
        {
            MutexLock lock(mutex_);
            if (stopping_) return;
            queue_.push(std::move(task));
            wake = idle_ > 0;
        }
        if (wake) wake_.notify_one();
    }
    /// Moves every task out of `tasks`.
    void push(std::vector<Task>& tasks) {
        if (tasks.empty()) return;
        std::size_t wake = 0;
        {
            MutexLock lock(mutex_);
            if (!stopping_)
                for (auto& t : tasks) queue_.push(std::move(t));
            wake = std::min<std::size_t>(idle_, tasks.size());
        }
        tasks.clear();
        if (wake > 1) wake_.notify_all();
        else if (wake == 1) wake_.notify_one();
    }
    /// Takes the oldest task if there is one; `left` is how many remain.
    bool try_pop(Task& task, std::size_t& left) {
        MutexLock lock(mutex_);
        if (queue_.empty()) return false;
        task = queue_.pop();
        left = queue_.size();
        return true;
    }
    /// Its threads (none once stopped); not while stop() runs.
    std::size_t size() const noexcept { return threads_.size(); }
    /// Drops queued tasks, lets running ones finish, joins. Idempotent.
    void stop() {
        {
            MutexLock lock(mutex_);
            if (stopping_ && threads_.empty()) return;
            stopping_ = true;
            queue_.clear();
        }
        wake_.notify_all();
        for (auto& t : threads_)
            if (t.joinable()) t.join();
        threads_.clear();
    }

private:
    void loop() {
        mark_pool_worker();
        MutexLock lock(mutex_);
        for (;;) {
            if (queue_.empty()) {
                if (stopping_) return;
                lock.unlock();
                const bool worked = idle_hook_();
                lock.lock();
                if (worked) continue;
                if (!queue_.empty() || stopping_) continue;
                ++idle_;
                wake_.wait(mutex_, [this] {
                    mutex_.assert_held();
                    return stopping_ || !queue_.empty();
                });
                --idle_;
                continue;
            }
            Task task = queue_.pop();
            lock.unlock();
            runner_(task);
            task = Task{};   // release what it holds before sleeping
            lock.lock();
        }
    }

    Runner runner_;
    Idle idle_hook_;
    Mutex mutex_;
    CondVar wake_;
    TaskQueue<Task> queue_ LOOM_GUARDED_BY(mutex_);
    std::size_t idle_ LOOM_GUARDED_BY(mutex_) = 0;
    bool stopping_ LOOM_GUARDED_BY(mutex_) = false;
    std::vector<std::thread> threads_;   // started by the constructor, joined by stop()
};

}  // namespace loom::detail
