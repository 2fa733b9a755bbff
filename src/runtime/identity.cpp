#include "runtime/identity.hpp"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "runtime/mutex.hpp"

namespace loom::detail {
namespace {

constexpr const char* kPrefix = "loom/";

std::string host_name() {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0) return "unknown-host";
    return name;
}

// The pid namespace's inode ("pid:[4026531836]"): pids compare only within one.
std::string pid_namespace() {
    char link[64] = {};
    const auto n = readlink("/proc/self/ns/pid", link, sizeof link - 1);
    if (n <= 0) return "0";
    std::string text(link, static_cast<std::size_t>(n));
    const auto open = text.find('['), close = text.find(']');
    return open == std::string::npos || close == std::string::npos ? text : text.substr(open + 1, close - open - 1);
}

// Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since
// boot. A pid reused by a new process has another. Empty if there is no such
// process.
std::string start_time(const std::string& pid) {
    std::ifstream in("/proc/" + pid + "/stat");
    std::string stat;
    if (!std::getline(in, stat)) return {};
    const auto paren = stat.rfind(')');   // the command name may hold spaces and parentheses
    if (paren == std::string::npos) return {};
    std::istringstream fields(stat.substr(paren + 2));
    std::string field;
    for (int i = 3; i <= 22 && fields >> field; ++i) {
        if (i == 22) return field;
    }
    return {};
}

struct Registry {
    Mutex mutex;
    std::multiset<std::string> live LOOM_GUARDED_BY(mutex);
};

Registry& registry() {
    static Registry r;
    return r;
}

std::vector<std::string> split(const std::string& text, char by) {
    std::vector<std::string> parts;
    std::string part;
    std::istringstream in(text);
    while (std::getline(in, part, by)) parts.push_back(part);
    return parts;
}

}  // namespace

std::string new_identity() {
    static std::atomic<unsigned> made{0};
    const std::string pid = std::to_string(getpid());
    std::string identity = std::string(kPrefix) + host_name() + "/" + pid_namespace() + "/" + pid + "/" +
                           start_time(pid) + "/" + std::to_string(++made);
    identity_began(identity);
    return identity;
}

void identity_began(const std::string& identity) {
    auto& r = registry();
    MutexLock lock(r.mutex);
    r.live.insert(identity);
}

void identity_ended(const std::string& identity) {
    auto& r = registry();
    MutexLock lock(r.mutex);
    auto it = r.live.find(identity);
    if (it != r.live.end()) r.live.erase(it);
}

bool owner_gone(const std::string& owner) {
    if (owner.rfind(kPrefix, 0) != 0) return false;
    const auto parts = split(owner.substr(std::string(kPrefix).size()), '/');
    if (parts.size() != 5) return false;
    const std::string &host = parts[0], &ns = parts[1], &pid = parts[2], &started = parts[3];
    if (host != host_name() || ns != pid_namespace() || started.empty()) return false;
    if (pid == std::to_string(getpid())) {
        auto& r = registry();
        MutexLock lock(r.mutex);
        return r.live.count(owner) == 0;
    }
    return start_time(pid) != started;   // exited, or its pid now belongs to another process
}

}  // namespace loom::detail
