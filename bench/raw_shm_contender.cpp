// The floor of the pool figures: the system calls any POSIX shared-memory pool needs
// (shm_open, ftruncate, mmap, one touched header page, munmap, shm_unlink) and nothing
// else. What a library spends beyond it is its own metadata work.
#include "contenders.hpp"
#include "shm_cleanup.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>

namespace bench {
namespace {

[[noreturn]] void fail_errno(const char* call, const std::string& values) {
    throw BenchError(fmt::format("{}({}): {}", call, values, std::strerror(errno)));
}

std::string shm_path(const std::string& name) { return "/" + name; }

// Creates, sizes and maps the object, and writes its first byte as a header would.
void create_segment(const std::string& name, std::size_t segment_bytes) {
    const int fd = shm_open(shm_path(name).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) [[unlikely]] {
        fail_errno("shm_open", name);
    }
    if (ftruncate(fd, static_cast<off_t>(segment_bytes)) != 0) [[unlikely]] {
        close(fd);
        shm_unlink(shm_path(name).c_str());
        fail_errno("ftruncate", fmt::format("'{}', {} B", name, segment_bytes));
    }
    void* base = mmap(nullptr, segment_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) [[unlikely]] {
        shm_unlink(shm_path(name).c_str());
        fail_errno("mmap", fmt::format("'{}', {} B", name, segment_bytes));
    }
    *static_cast<volatile char*>(base) = 1;
    munmap(base, segment_bytes);
}

// Opens, sizes (fstat) and maps the object, and reads its first byte as a header check would.
void attach_segment(const std::string& name) {
    const int fd = shm_open(shm_path(name).c_str(), O_RDWR, 0);
    if (fd < 0) [[unlikely]] {
        fail_errno("shm_open", name);
    }
    struct stat status {};
    if (fstat(fd, &status) != 0) [[unlikely]] {
        close(fd);
        fail_errno("fstat", name);
    }
    const auto segment_bytes = static_cast<std::size_t>(status.st_size);
    void* base = mmap(nullptr, segment_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) [[unlikely]] {
        fail_errno("mmap", name);
    }
    const char header = *static_cast<volatile char*>(base);  // a volatile read is never elided
    static_cast<void>(header);
    munmap(base, segment_bytes);
}

class RawShmContender final : public Contender {
public:
    ~RawShmContender() override { release(); }

    std::string name() const override { return "raw_shm"; }
    std::string description() const override {
        return "shm_open+ftruncate+mmap+touch one page+munmap+shm_unlink (the floor of pool figures)";
    }

    std::uint64_t create_destroys(std::size_t segment_bytes, std::uint64_t count) override {
        const std::string name = unique_shm_name("cd");
        const std::uint64_t start_ns = now_ns();
        for (std::uint64_t i = 0; i < count; ++i) {
            create_segment(name, segment_bytes);
            shm_unlink(shm_path(name).c_str());
        }
        return now_ns() - start_ns;
    }

    std::uint64_t attach_detaches(std::size_t segment_bytes, std::uint64_t count) override {
        if (attach_target_bytes_ != segment_bytes) {
            release();
            attach_target_ = unique_shm_name("at");
            create_segment(*attach_target_, segment_bytes);
            attach_target_bytes_ = segment_bytes;
        }
        const std::uint64_t start_ns = now_ns();
        for (std::uint64_t i = 0; i < count; ++i) {
            attach_segment(*attach_target_);
        }
        return now_ns() - start_ns;
    }

    void release() override {
        if (attach_target_) {
            shm_unlink(shm_path(*attach_target_).c_str());
        }
        attach_target_.reset();
        attach_target_bytes_ = 0;
    }

private:
    std::optional<std::string> attach_target_;
    std::size_t attach_target_bytes_ = 0;
};

}  // namespace

std::unique_ptr<Contender> make_raw_shm_contender() { return std::make_unique<RawShmContender>(); }

}  // namespace bench
