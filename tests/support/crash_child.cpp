#include "support/crash_child.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <random>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/failpoint.hpp"

extern char** environ;

namespace loom::test::crash {

namespace {

std::atomic<int> appends{0};
int crash_after = -1;
int ledger_fd = -1;

[[noreturn]] void fail(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

}  // namespace

bool start_child(const char* ledger_path) {
    if (const char* n = std::getenv("LOOM_CRASH_AFTER")) crash_after = std::atoi(n);
    if (const char* fp = std::getenv("LOOM_FAILPOINT")) {
        std::string spec = fp;
        auto colon = spec.rfind(':');
        loom::detail::arm_failpoint(spec.substr(0, colon), std::atol(spec.c_str() + colon + 1));
    }
    ledger_fd = ::open(ledger_path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (ledger_fd < 0) std::perror("open ledger");
    return ledger_fd >= 0;
}

unsigned child_threads(unsigned fallback) {
    const char* threads = std::getenv("LOOM_CRASH_THREADS");
    return threads ? unsigned(std::atoi(threads)) : fallback;
}

void append_ledger(const std::string& step, int attempt) {
    std::string line = step + " " + std::to_string(attempt) + " " + std::to_string(::getpid()) + "\n";
    if (::write(ledger_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
        ::fsync(ledger_fd) != 0) {
        std::perror("ledger");
        std::_Exit(3);
    }
    if (++appends == crash_after) ::raise(SIGKILL);
}

void jitter() {
    thread_local std::mt19937 rng{std::random_device{}()};
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
}

void print_failpoint_hits() { std::cout << "failpoint hits " << loom::detail::failpoint_hits() << std::endl; }

pid_t spawn(const std::vector<std::string>& argv, const Env& env, int stdout_fd) {
    // Everything is built before fork(), so that the child only calls
    // functions that are safe between fork() and exec().
    std::vector<std::string> vars;
    for (char** e = environ; *e; ++e) {
        const std::string var = *e;
        const auto name = var.substr(0, var.find('='));
        bool replaced = false;
        for (const auto& [n, v] : env) replaced = replaced || n == name;
        if (!replaced) vars.push_back(var);
    }
    for (const auto& [name, value] : env)
        if (!value.empty()) vars.push_back(name + "=" + value);
    std::vector<char*> args, envp;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    for (const auto& v : vars) envp.push_back(const_cast<char*>(v.c_str()));
    args.push_back(nullptr);
    envp.push_back(nullptr);

    const pid_t pid = ::fork();
    if (pid == 0) {
        if (::dup2(stdout_fd, STDOUT_FILENO) >= 0) ::execve(args[0], args.data(), envp.data());
        ::_exit(127);
    }
    if (pid < 0) fail("fork");
    return pid;
}

Exit wait_child(pid_t pid, std::optional<std::chrono::milliseconds> hang_limit) {
    int status = 0;
    bool hung = false;
    if (!hang_limit) {
        if (::waitpid(pid, &status, 0) != pid) fail("waitpid");
    } else {
        for (const auto start = std::chrono::steady_clock::now();;) {
            const pid_t r = ::waitpid(pid, &status, WNOHANG);
            if (r < 0) fail("waitpid");
            if (r == pid) break;
            if (!hung && std::chrono::steady_clock::now() - start > *hang_limit) {
                hung = true;
                ::kill(pid, SIGKILL);
            }
            std::this_thread::sleep_for(std::chrono::microseconds(300));
        }
    }
    if (WIFSIGNALED(status)) return {true, hung, WTERMSIG(status), {}};
    return {false, false, WEXITSTATUS(status), {}};
}

}  // namespace loom::test::crash
