// gpu_uuid_text (cuda_device.hpp): a GPU's identity as nvidia-smi -L prints it. Apart
// from the two implementations of cuda_device.hpp, which both report it.
#include "os/cuda_device.hpp"

#include <fmt/format.h>

namespace dragonmem::detail {

std::string gpu_uuid_text(const GpuUuid& uuid) {
    std::string hex;
    for (std::size_t i = 0; i < k_gpu_uuid_bytes; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) hex += '-';
        hex += fmt::format("{:02x}", uuid.bytes[i]);
    }
    return "GPU-" + hex;
}

}  // namespace dragonmem::detail
