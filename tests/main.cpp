// The test runner: Catch2's session, then one closing line "N passed, M failed" (test cases)
// alone on the last line, which CI reads.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

namespace {

Catch::Totals run_totals;

struct TotalsListener : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testRunEnded(const Catch::TestRunStats& stats) override { run_totals = stats.totals; }
};

}  // namespace

CATCH_REGISTER_LISTENER(TotalsListener)

int main(int argc, char** argv) {
  Catch::Session session;
  if (int status = session.applyCommandLine(argc, argv); status != 0) return status;
  int failed = session.run();
  std::fflush(stdout);
  std::printf("%llu passed, %llu failed\n", static_cast<unsigned long long>(run_totals.testCases.passed),
              static_cast<unsigned long long>(run_totals.testCases.failed));
  return failed == 0 && run_totals.testCases.failed == 0 ? 0 : 1;
}
