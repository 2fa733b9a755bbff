// A child process with its stdout on a pipe, read line by line: for tests that
// run a second process on the same store (test_contention, test_processes).
#pragma once

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "support/crash_child.hpp"

namespace loom::test {

class ChildProcess {
public:
    /// Spawns argv[0] with argv and `env` added to this process's environment.
    explicit ChildProcess(const std::vector<std::string>& argv, const crash::Env& env = {}) {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);   // the child keeps only its stdout
        pid_ = crash::spawn(argv, env, fds[1]);
        ::close(fds[1]);
        out_ = ::fdopen(fds[0], "r");
        REQUIRE(out_);
    }
    ~ChildProcess() {
        if (out_) std::fclose(out_);
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);   // a failed test must not leave it running
            ::waitpid(pid_, nullptr, 0);
        }
    }
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    long pid() const { return pid_; }

    /// The child's next line of output, empty at its end.
    std::string line() {
        char buffer[512];
        if (!std::fgets(buffer, sizeof buffer, out_)) return {};
        std::string s(buffer);
        if (!s.empty() && s.back() == '\n') s.pop_back();
        return s;
    }

    /// Waits for the child; its exit code, or 128 + signal.
    int finish() {
        const auto exit = crash::wait_child(std::exchange(pid_, -1));
        return exit.killed ? 128 + exit.code : exit.code;
    }

    /// SIGKILLs the child and reaps it.
    void kill() {
        ::kill(pid_, SIGKILL);
        (void)finish();
    }

private:
    pid_t pid_ = -1;
    std::FILE* out_ = nullptr;
};

}  // namespace loom::test
