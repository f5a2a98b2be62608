// cuda_device.hpp in a library built without CUDA (meson option `cuda` disabled, or no
// toolkit found): GPU pools are refused with a message that says so.
#include "os/cuda_device.hpp"

#include "os/error.hpp"

namespace dragonmem::detail {

namespace {

dragonError_t absent(const std::string& who) {
    return failf(DRAGON_MEMORY_ILLEGAL_MEMTYPE,
                 "{}: GPU memory needs CUDA, and this libdragonmem was built without CUDA (rebuild with the CUDA "
                 "toolkit: meson setup -Dcuda=enabled)",
                 who);
}

}  // namespace

bool cuda_built_in() noexcept { return false; }
dragonError_t cuda_check_device(int, const std::string& who) { return absent(who); }
dragonError_t cuda_alloc_shared(int, std::size_t, void*&, IpcHandle&, const std::string& who) { return absent(who); }
void cuda_free(int, void*) noexcept {}
dragonError_t cuda_open_shared(int, const IpcHandle&, void*&, const std::string& who) { return absent(who); }
void cuda_close_shared(int, void*) noexcept {}
dragonError_t cuda_copy(void*, CopyEnd, const void*, CopyEnd, std::size_t, const std::string& what) {
    return absent(what);
}
dragonError_t cuda_zero(int, void*, std::size_t, const std::string& what) { return absent(what); }
dragonError_t cuda_host_register(int, void*, std::size_t, const std::string& who) { return absent(who); }
dragonError_t cuda_host_unregister(int, void*, const std::string& who) { return absent(who); }

}  // namespace dragonmem::detail
