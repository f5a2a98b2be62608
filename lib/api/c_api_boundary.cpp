// fail_from_exception: the catch side of the C API's exception barrier (c_api_boundary.hpp).
#include "api/c_api_boundary.hpp"

#include "os/error.hpp"

#include <dragonmem/error.hpp>

#include <exception>
#include <new>

namespace dragonmem::detail {

dragonError_t fail_from_exception(const char* op) noexcept {
    dragonError_t code = DRAGON_FAILURE;
    const char* what = "an exception that is not a std::exception";
    try {
        throw;
    } catch (const std::bad_alloc&) {
        code = DRAGON_INTERNAL_MALLOC_FAIL;
        what = "out of memory (std::bad_alloc)";
    } catch (const Error& e) {
        code = e.code();
        what = e.what();
    } catch (const std::exception& e) {
        what = e.what();
    } catch (...) {
    }
    // Formatted on the stack: the heap may be what failed.
    char text[512];
    auto written = fmt::format_to_n(text, sizeof text - 1, "{}: {}; the call did not complete",
                                    op != nullptr ? op : "dragonmem", what);
    *written.out = '\0';
    return fail(code, text);
}

}  // namespace dragonmem::detail
