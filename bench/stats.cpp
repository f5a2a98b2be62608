// Median and min-max of a figure's repetitions.
#include "stats.hpp"

#include <algorithm>
#include <cassert>

namespace bench {

Summary summarize(std::vector<double> reps) {
    assert(!reps.empty());
    Summary summary;
    summary.reps = reps;
    std::sort(reps.begin(), reps.end());
    const std::size_t middle = reps.size() / 2;
    summary.median = reps.size() % 2 == 1 ? reps[middle] : (reps[middle - 1] + reps[middle]) / 2;
    summary.min = reps.front();
    summary.max = reps.back();
    return summary;
}

}  // namespace bench
