// Permissions (bad-input rows F9): a pool's shm object carries
// exactly the mode it was created with (default 0600, umask ignored) and the creator's
// uid/gid, so a user the mode excludes can neither attach nor read it (MEMORY_ERRNO with
// EACCES in the message), 0666 is open to everyone and 0660 to the creator's group. The
// other users are real ones: children dropped to uid/gid 65534 ("nobody") and 65533
// (needs root; skipped with a message otherwise).
#include "testing.hpp"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

using dragonmem::Memory;
using dragonmem::Pool;
using namespace dmtest;

TEST_SUITE_BEGIN("permissions");

namespace {

constexpr uid_t k_nobody = 65534;
constexpr gid_t k_nogroup = 65534;
constexpr uid_t k_other_user = 65533;

// A copy of dm_child that other users can run: the build tree may sit under a
// folder they cannot enter (a CI clone in a private folder). Removed at scope exit.
class ChildCopy {
public:
    ChildCopy() {
        char dir_template[] = "/tmp/dmt_child_XXXXXX";
        if (::mkdtemp(dir_template) == nullptr) return;
        dir_ = dir_template;
        ::chmod(dir_.c_str(), 0755);
        path_ = dir_ + "/dm_child";
        std::ifstream in(child_program(), std::ios::binary);
        std::ofstream out(path_, std::ios::binary);
        out << in.rdbuf();
        out.close();
        ::chmod(path_.c_str(), 0755);
    }
    ~ChildCopy() {
        if (!path_.empty()) ::unlink(path_.c_str());
        if (!dir_.empty()) ::rmdir(dir_.c_str());
    }
    ChildCopy(const ChildCopy&) = delete;
    ChildCopy& operator=(const ChildCopy&) = delete;
    const std::string& path() const { return path_; }

private:
    std::string dir_;
    std::string path_;
};

const std::string& other_user_child() {
    static ChildCopy* copy = nullptr;
    if (copy == nullptr) {
        copy = new ChildCopy();
        std::atexit([] { delete copy; });
    }
    return copy->path();
}

struct AsUser {
    int rc = -1;
    int alloc_rc = -1;
    std::string msg;
    int rdonly_errno = -1;
    int rdwr_errno = -1;
};

// Attaches `pool_b64` as uid/gid (and supplementary groups), and tries raw open(2) of
// the object, in children running as that user.
AsUser try_as(uid_t uid, gid_t gid, const std::vector<gid_t>& groups, const std::string& pool_b64,
              const std::string& pool_name) {
    AsUser out;
    Child attach = Child::spawn_as({other_user_child(), "attach"}, uid, gid, groups, {{"DMR_POOL", pool_b64}});
    auto line = attach.wait_line("attach", 10000);
    REQUIRE_MESSAGE(line.has_value(), "attach as uid " << uid << ": " << attach.output());
    out.rc = std::stoi(field(*line, "rc"));
    out.alloc_rc = std::stoi(field(*line, "alloc_rc"));
    out.msg = field(*line, "msg");
    Child open = Child::spawn_as({other_user_child(), "open-shm", shm_path(pool_name)}, uid, gid, groups);
    auto opened = open.wait_line("open", 10000);
    REQUIRE_MESSAGE(opened.has_value(), open.output());
    out.rdonly_errno = std::stoi(field(*opened, "rdonly_errno"));
    out.rdwr_errno = std::stoi(field(*opened, "rdwr_errno"));
    return out;
}

void expect_denied(const AsUser& r, const std::string& row, bool can_read = false) {
    count_bad_inputs();
    CHECK_MESSAGE(r.rc == DRAGON_MEMORY_ERRNO, row << ": attach returned " << toString(static_cast<dragonError_t>(r.rc))
                                                   << ": " << r.msg);
    CHECK_MESSAGE((r.msg.find("Permission denied") != std::string::npos || r.msg.find("EACCES") != std::string::npos),
                  row << ": message does not say EACCES / Permission denied: " << r.msg);
    CHECK_MESSAGE(r.rdwr_errno == EACCES, row << ": open(O_RDWR) errno " << r.rdwr_errno);
    if (can_read)
        CHECK_MESSAGE(r.rdonly_errno == 0, row << ": open(O_RDONLY) errno " << r.rdonly_errno);
    else
        CHECK_MESSAGE(r.rdonly_errno == EACCES, row << ": the pool can be read: open(O_RDONLY) errno " << r.rdonly_errno);
}

void expect_allowed(const AsUser& r, const std::string& row) {
    CHECK_MESSAGE(r.rc == DRAGON_SUCCESS, row << ": attach returned " << toString(static_cast<dragonError_t>(r.rc)) << ": "
                                              << r.msg);
    CHECK_MESSAGE(r.alloc_rc == DRAGON_SUCCESS, row << ": alloc+free returned " << r.alloc_rc << ": " << r.msg);
    CHECK(r.rdwr_errno == 0);
}

mode_t file_mode(const std::string& name) {
    struct stat st {};
    ::stat(shm_path(name).c_str(), &st);
    return st.st_mode & 07777;
}

}  // namespace

TEST_CASE("permissions: modes 0600, 0644, 0222, 0666 and 0660 against user nobody") {
    if (::geteuid() != 0) {
        MESSAGE("not root: cannot run children as another user; permission rows skipped");
        return;
    }
    const mode_t old_umask = ::umask(0077);  // the mode must not depend on the umask
    struct Row {
        unsigned mode;
        bool allowed;
        bool can_read;
        const char* row;
    };
    for (const Row& row : {Row{0600, false, false, "P1/F9 mode 0600, other user"},
                           Row{0644, false, true, "F9 mode 0644 (read but no write permission)"},
                           Row{0222, false, false, "F9 mode 0222 (write but no read permission)"},
                           Row{0666, true, true, "P2 mode 0666, other user"},
                           Row{0660, false, false, "P3 mode 0660, user not in the group"}}) {
        ScopedPool scoped(64 * 1024, [&] {
            dragonmem::PoolOptions o;
            o.mode = row.mode;
            return o;
        }(), "pm");
        CHECK_MESSAGE(file_mode(scoped.name()) == row.mode, row.row << ": object mode " << std::oct
                                                                    << file_mode(scoped.name()));
        Memory mine = scoped.pool().alloc(100);
        PoolSnapshot before = snapshot(scoped.pool());
        AsUser r = try_as(k_nobody, k_nogroup, {}, scoped.pool().serialize_base64(), scoped.name());
        if (row.allowed)
            expect_allowed(r, row.row);
        else
            expect_denied(r, row.row, row.can_read);
        PoolSnapshot after = snapshot(scoped.pool());
        CHECK_MESSAGE(after == before, row.row << ": pool changed\nbefore " << before.describe() << "\nafter  "
                                               << after.describe());
        mine.free();
    }
    // 0660: a member of the creator's group (root's group 0, as a supplementary group)
    // can attach and allocate.
    {
        dragonmem::PoolOptions o;
        o.mode = 0660;
        ScopedPool scoped(64 * 1024, o, "pg");
        AsUser member = try_as(k_nobody, k_nogroup, {0}, scoped.pool().serialize_base64(), scoped.name());
        expect_allowed(member, "P3 mode 0660, user in the creator's group");
        AsUser primary = try_as(k_nobody, 0, {}, scoped.pool().serialize_base64(), scoped.name());
        expect_allowed(primary, "P3 mode 0660, user whose primary group is the creator's");
    }
    ::umask(old_umask);
}

TEST_CASE("permissions: a pool created by nobody with 0600 is closed to another user and open to its owner") {
    if (::geteuid() != 0) {
        MESSAGE("not root: permission rows skipped");
        return;
    }
    const std::string name = unique_pool_name("nb");
    ShmGuard guard(name);
    Child creator = Child::spawn_as({other_user_child(), "create-and-wait", name, "65536", "600"}, k_nobody, k_nogroup, {});
    auto created = creator.wait_line("created", 10000);
    REQUIRE_MESSAGE(created.has_value(), creator.output());
    const std::string b64 = field(*created, "b64");
    struct stat st {};
    REQUIRE(::stat(shm_path(name).c_str(), &st) == 0);
    CHECK(st.st_uid == k_nobody);
    CHECK((st.st_mode & 07777) == 0600);
    AsUser other = try_as(k_other_user, k_other_user, {}, b64, name);
    expect_denied(other, "P4 0600 pool of nobody, user 65533");
    AsUser owner = try_as(k_nobody, k_nogroup, {}, b64, name);
    expect_allowed(owner, "P4 0600 pool of nobody, nobody again");
    creator.kill_now();
    creator.wait(5000);
}

TEST_SUITE_END();
