// The doctest runner of dm_robust. Meson runs it once per suite (-ts=NAME). `--long`
// (or DRAGONMEM_LONG_TESTS=1) selects the long forms (hundreds of kill rounds, longer
// stress). After the run, whatever this process's pool names left in /dev/shm is removed
// and reported; so is what earlier runs that died left behind.
#define DOCTEST_CONFIG_IMPLEMENT
#include "support.hpp"

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
        if (robust::bad_inputs_tried() > 0)
            std::printf("bad inputs tried: %llu\n", static_cast<unsigned long long>(robust::bad_inputs_tried()));
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
DOCTEST_REGISTER_LISTENER("robust_counts", 1, CountsListener);

}  // namespace

int main(int argc, char** argv) {
    std::vector<char*> args;
    for (int i = 0; i < argc; ++i) {
        if (std::strcmp(argv[i], "--long") == 0)
            robust::set_long_mode(true);
        else
            args.push_back(argv[i]);
    }
    for (const std::string& stale : robust::sweep_dead_runs())
        std::fprintf(stderr, "note: removed %s, left by an earlier run that died\n", stale.c_str());
    doctest::Context context;
    context.applyCommandLine(static_cast<int>(args.size()), args.data());
    const int result = context.run();
    for (const std::string& leftover : robust::sweep())
        std::fprintf(stderr, "note: removed leftover %s (a test did not clean up)\n", leftover.c_str());
    return result;
}
