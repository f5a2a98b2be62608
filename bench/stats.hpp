// Summary statistics of repeated runs: median and min-max, nothing fancier, because
// medians of interleaved reps are what stays comparable on a noisy 2-core machine.
#pragma once

#include <vector>

namespace bench {

struct Summary {
    double median = 0;
    double min = 0;
    double max = 0;
    std::vector<double> reps;  // in run order, so drift over the run stays visible
};

// `reps` must not be empty.
Summary summarize(std::vector<double> reps);

}  // namespace bench
