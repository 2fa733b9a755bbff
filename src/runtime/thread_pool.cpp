#include "runtime/thread_pool.hpp"

namespace loom::detail {
namespace {
thread_local bool tls_on_worker = false;
}

ThreadPool::ThreadPool(unsigned threads, Runner runner, Idle idle)
    : runner_(std::move(runner)), idle_hook_(std::move(idle)) {
    threads_.reserve(threads);
    for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
}

ThreadPool::~ThreadPool() { stop(); }

bool ThreadPool::on_worker() noexcept { return tls_on_worker; }

void TaskQueue::push(Task task) {
    auto it = buckets_.begin();
    while (it != buckets_.end() && it->first > task.priority) ++it;
    if (it == buckets_.end() || it->first != task.priority) it = buckets_.insert(it, {task.priority, {}});
    it->second.push_back(std::move(task));
    ++size_;
}

Task TaskQueue::pop() {
    for (auto& [priority, tasks] : buckets_) {
        if (tasks.empty()) continue;
        Task task = std::move(tasks.front());
        tasks.pop_front();
        --size_;
        return task;
    }
    return {};   // not reached: callers check empty()
}

void TaskQueue::clear() {
    buckets_.clear();
    size_ = 0;
}

void ThreadPool::push(Task task) {
    bool wake = false;
    {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        queue_.push(std::move(task));
        wake = idle_ > 0;
    }
    if (wake) wake_.notify_one();
}

void ThreadPool::push(std::vector<Task>& tasks) {
    if (tasks.empty()) return;
    unsigned wake = 0;
    {
        std::lock_guard lock(mutex_);
        if (!stopping_)
            for (auto& t : tasks) queue_.push(std::move(t));
        wake = std::min<std::size_t>(idle_, tasks.size());
    }
    tasks.clear();
    if (wake > 1) wake_.notify_all();
    else if (wake == 1) wake_.notify_one();
}

bool ThreadPool::try_pop(Task& task, std::size_t& left) {
    std::lock_guard lock(mutex_);
    if (queue_.empty()) return false;
    task = queue_.pop();
    left = queue_.size();
    return true;
}

void ThreadPool::stop() {
    {
        std::lock_guard lock(mutex_);
        if (stopping_ && threads_.empty()) return;
        stopping_ = true;
        queue_.clear();
    }
    wake_.notify_all();
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    threads_.clear();
}

void ThreadPool::loop() {
    tls_on_worker = true;
    std::unique_lock lock(mutex_);
    for (;;) {
        if (queue_.empty()) {
            if (stopping_) return;
            lock.unlock();
            const bool worked = idle_hook_();
            lock.lock();
            if (worked) continue;
            if (!queue_.empty() || stopping_) continue;
            ++idle_;
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            --idle_;
            continue;
        }
        Task task = queue_.pop();
        lock.unlock();
        runner_(task);
        task.run.reset();   // release the run before sleeping
        lock.lock();
    }
}

}  // namespace loom::detail
