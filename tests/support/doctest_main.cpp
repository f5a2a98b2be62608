// The doctest runner of dm_unit and dm_robust. Meson runs each once per suite (-ts=NAME),
// so that one hang or crash does not hide the other suites. `--long` (or
// DRAGONMEM_LONG_TESTS=1) selects the long forms (hundreds of kill rounds, longer
// stress). Before the run, what test processes that died without cleaning up (a crash,
// a SIGKILL, a sanitizer halt) left in /dev/shm is removed; after it, whatever this
// process's pool names left behind is removed and reported.
#define DOCTEST_CONFIG_IMPLEMENT
#include "testing.hpp"

#include <cstdio>
#include <cstring>
#include <vector>

namespace {

// Prints the run's bad-input count just before doctest's summary line (listeners see
// test_run_end before the console reporter), so the summary stays the last line.
struct CountsListener : doctest::IReporter {
    explicit CountsListener(const doctest::ContextOptions&) {}
    void report_query(const doctest::QueryData&) override {}
    void test_run_start() override {}
    void test_run_end(const doctest::TestRunStats&) override {
        if (dmtest::bad_inputs_tried() > 0)
            std::printf("bad inputs tried: %llu\n", static_cast<unsigned long long>(dmtest::bad_inputs_tried()));
        std::fflush(stdout);
    }
    void test_case_start(const doctest::TestCaseData&) override {}
    void test_case_reenter(const doctest::TestCaseData&) override {}
    void test_case_end(const doctest::CurrentTestCaseStats&) override {}
    void test_case_exception(const doctest::TestCaseException&) override {}
    void subcase_start(const doctest::SubcaseSignature&) override {}
    void subcase_end() override {}
    void log_assert(const doctest::AssertData&) override {}
    void log_message(const doctest::MessageData&) override {}
    void test_case_skipped(const doctest::TestCaseData&) override {}
};
DOCTEST_REGISTER_LISTENER("dmtest_counts", 1, CountsListener);

}  // namespace

int main(int argc, char** argv) {
    std::vector<char*> args;
    for (int i = 0; i < argc; ++i) {
        if (std::strcmp(argv[i], "--long") == 0)
            dmtest::set_long_mode(true);
        else
            args.push_back(argv[i]);
    }
    for (const std::string& stale : dmtest::sweep_dead_owners())
        std::fprintf(stderr, "note: removed /dev/shm/%s left by an earlier test process that is gone\n",
                     stale.c_str());
    doctest::Context context;
    context.applyCommandLine(static_cast<int>(args.size()), args.data());
    const int result = context.run();
    for (const std::string& leftover : dmtest::sweep_my_shm())
        std::fprintf(stderr, "note: removed leftover /dev/shm/%s (a test did not clean up)\n", leftover.c_str());
    return result;
}
