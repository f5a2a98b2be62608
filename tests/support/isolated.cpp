// A risky call in a forked child (see isolated.hpp).
#include "isolated.hpp"

#include "child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace dmtest {

Isolated run_isolated(const std::function<std::string()>& fn, int timeout_ms) {
    Isolated result;
    int verdict_fds[2];
    int diag_fds[2];
    if (::pipe2(verdict_fds, O_CLOEXEC) != 0 || ::pipe2(diag_fds, O_CLOEXEC) != 0) {
        result.text = "CRASH: pipe failed";
        return result;
    }
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid > 0) track_child(pid, true);
    if (pid == 0) {
        // The child dies plainly on a fault (no doctest crash report from a copy of the
        // test runner); its stdout/stderr (an ASan report, say) go to the parent.
        for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::signal(sig, SIG_DFL);
        ::dup2(diag_fds[1], 1);
        ::dup2(diag_fds[1], 2);
        std::string text = fn();
        std::size_t off = 0;
        while (off < text.size()) {
            ssize_t put = ::write(verdict_fds[1], text.data() + off, text.size() - off);
            if (put <= 0) break;
            off += static_cast<std::size_t>(put);
        }
        std::_Exit(0);  // no atexit: the parent owns the cleanup of its names
    }
    ::close(verdict_fds[1]);
    ::close(diag_fds[1]);
    std::string text, diag;
    double deadline = now_ms() + timeout_ms;
    bool hung = false;
    bool verdict_open = true, diag_open = true;
    while (verdict_open || diag_open) {
        int left = static_cast<int>(deadline - now_ms());
        if (left <= 0) {
            hung = true;
            break;
        }
        pollfd p[2] = {{verdict_open ? verdict_fds[0] : -1, POLLIN, 0}, {diag_open ? diag_fds[0] : -1, POLLIN, 0}};
        if (::poll(p, 2, std::min(left, 100)) <= 0) continue;
        char buffer[4096];
        if (p[0].revents != 0) {
            ssize_t got = ::read(verdict_fds[0], buffer, sizeof buffer);
            if (got <= 0)
                verdict_open = false;
            else
                text.append(buffer, static_cast<std::size_t>(got));
        }
        if (p[1].revents != 0) {
            ssize_t got = ::read(diag_fds[0], buffer, sizeof buffer);
            if (got <= 0)
                diag_open = false;
            else if (diag.size() < 65536)
                diag.append(buffer, static_cast<std::size_t>(got));
        }
    }
    ::close(verdict_fds[0]);
    ::close(diag_fds[0]);
    if (hung) ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    track_child(pid, false);
    auto tail = [&] {
        std::string d = diag.size() > 3000 ? "..." + diag.substr(diag.size() - 3000) : diag;
        return d.empty() ? std::string() : "; its output: " + d;
    };
    if (hung) {
        result.text = "HANG: no result within " + std::to_string(timeout_ms) + " ms" + tail();
    } else if (WIFSIGNALED(status)) {
        result.text = std::string("CRASH: killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
                      strsignal(WTERMSIG(status)) + ")" + tail();
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        result.text = "CRASH: exit status " + std::to_string(WEXITSTATUS(status)) + tail();
    } else {
        result.completed = true;
        result.text = text;
    }
    return result;
}

}  // namespace dmtest
