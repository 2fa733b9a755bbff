// The executor's worker threads and their one FIFO queue of ready steps.
// Internal. Workers sleep on a condition variable only when the queue is empty,
// and a push wakes a sleeper only if there is one (no syscall on the hot path).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace loom::detail {

struct RunState;

/// One step of one run to execute; a task without a run asks a worker to
/// commit what is pending (see Executor's group commit).
struct Task {
    enum class Kind : std::uint8_t {
        step,          // run an attempt of the step
        compensate,    // run the step's compensation
        start_child,   // start the step's child run (a sub-workflow)
        child_done,    // the step's child run is final: finish the step
        item,          // run an attempt of one element of a for_each step
        cancel_child,  // the run stopped: cancel the step's child run
    };
    std::shared_ptr<RunState> run;
    std::uint32_t step = 0;
    Kind kind = Kind::step;
    int priority = 0;         // the run's: higher is taken first
    std::uint32_t item = 0;   // Kind::item: the element's index
};

/// Tasks by priority, highest first, FIFO within one: a few buckets (most
/// hosts use one priority, so the common case is one deque).
class TaskQueue {
public:
    void push(Task task);
    /// The oldest task of the highest priority; the queue must not be empty.
    Task pop();
    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    void clear();

private:
    std::vector<std::pair<int, std::deque<Task>>> buckets_;   // by priority, descending
    std::size_t size_ = 0;
};

class ThreadPool {
public:
    using Runner = std::function<void(Task&)>;
    /// Called by a worker that found the queue empty, before it sleeps;
    /// returns true if it did some work (the worker then looks again).
    using Idle = std::function<bool()>;

    ThreadPool(unsigned threads, Runner runner, Idle idle);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    void push(Task task);
    /// Moves every task out of `tasks`.
    void push(std::vector<Task>& tasks);
    /// Takes the oldest task if there is one; `left` is how many remain.
    bool try_pop(Task& task, std::size_t& left);
    /// Drops queued tasks, lets running ones finish, joins. Idempotent.
    void stop();
    /// True on one of any pool's worker threads.
    static bool on_worker() noexcept;

private:
    void loop();

    Runner runner_;
    Idle idle_hook_;
    std::mutex mutex_;
    std::condition_variable wake_;
    TaskQueue queue_;          // guarded by mutex_
    unsigned idle_ = 0;        // guarded by mutex_
    bool stopping_ = false;    // guarded by mutex_
    std::vector<std::thread> threads_;
};

}  // namespace loom::detail
