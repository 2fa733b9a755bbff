// What the examples' handlers did, in order: printed as it happens, and kept
// so that the example (and its test) can check it. Thread-safe: handlers run
// on the executor's threads.
#pragma once

#include <iostream>
#include <mutex>
#include <string>
#include <vector>

namespace example {

class Journal {
public:
    void note(const std::string& line) {
        std::lock_guard lock(mutex_);
        if (echo_) std::cout << line << "\n";
        lines_.push_back(line);
    }
    std::vector<std::string> lines() const {
        std::lock_guard lock(mutex_);
        return lines_;
    }
    /// Tests run the examples' workflows many times: no printing.
    void quiet() { echo_ = false; }

private:
    mutable std::mutex mutex_;
    std::vector<std::string> lines_;   // guarded by mutex_
    bool echo_ = true;
};

}  // namespace example
