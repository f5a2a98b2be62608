// The one exception type of the benchmark: a contender call failed, with the values.
#pragma once

#include <stdexcept>
#include <string>

namespace bench {

// Thrown by a contender when one of its calls fails; the runner records the message
// in the JSON under that contender and stops timing it for the figure.
class BenchError : public std::runtime_error {
public:
    explicit BenchError(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace bench
