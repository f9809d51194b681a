// api_cxx.cpp - the public header compiles as C++ (-Wall -Wextra -Werror)
// and its main entry points, the seed's macro included, work from C++.
#include <labyrinth.h>

#include "check.h"

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace {

struct Recorder {
    int n = 0;
    labyrinth_report_kind kind = LABYRINTH_REPORT_NOTICE;
    int err = 0;
    const void *addr = nullptr;
};

extern "C" void on_report(const labyrinth_report *rep, void *arg)
{
    Recorder *r = static_cast<Recorder *>(arg);
    r->n++;
    r->kind = rep->kind;
    r->err = rep->err;
    r->addr = rep->addr;
}

int count_in_use(const struct labyrinth_page_info *, void *arg)
{
    ++*static_cast<long *>(arg);
    return 0;
}

} // namespace

int main()
{
    const std::size_t page = labyrinth_page_size();
    CHECK(page >= 4096 && (page & (page - 1)) == 0);

    labyrinth_zone_config cfg{};
    cfg.name = "cxx";
    cfg.pages = 256;
    cfg.flags = LABYRINTH_ZONE_NO_WARDEN;
    labyrinth_zone *z = labyrinth_zone_create(&cfg);
    REQUIRE(z != nullptr);
    CHECK(std::strcmp(labyrinth_zone_name(z), "cxx") == 0);
    Recorder rec;
    CHECK_EQ(labyrinth_zone_set_report_handler(z, on_report, &rec), 0);

    // The three named modes and a higher order.
    void *a = labyrinth_alloc_pages(z, LABYRINTH_GFP_ATOMIC, 0, LABYRINTH_QUALITY_ZERO);
    void *n = labyrinth_alloc_pages(z, LABYRINTH_GFP_NOWAIT, 0, 0);
    void *k = labyrinth_alloc_pages(z, LABYRINTH_GFP_KERNEL, 2, LABYRINTH_QUALITY_POISON);
    REQUIRE(a && n && k);
    CHECK(reinterpret_cast<std::uintptr_t>(k) % (page << 2) == 0);
    CHECK(static_cast<unsigned char *>(a)[page - 1] == 0);
    CHECK(static_cast<unsigned char *>(k)[3 * page] == 0x6b);

    // The seed's macro: a tracked page with its call site.
    void *m = labyrinth_void_allocpage_gfpatomic_extra_quality(z, LABYRINTH_QUALITY_ZERO); const unsigned line = __LINE__;
    REQUIRE(m != nullptr);
    struct labyrinth_page_info info{};
    CHECK_EQ(labyrinth_page_info(z, m, &info), 0);
    CHECK_EQ(info.state, LABYRINTH_PAGE_IN_USE);
    CHECK_EQ(info.tracked, 1);
    REQUIRE(info.site != nullptr);
    CHECK_EQ(info.site->line, line);
    CHECK(std::strcmp(info.site->file, __FILE__) == 0);
    CHECK(std::strcmp(info.site->func, "main") == 0);
    CHECK_EQ(info.thread, tracked_id(labyrinth_thread_id()));

    CHECK_EQ(labyrinth_register_page_tag(z, n, 0x1234u), 0);
    CHECK_EQ(labyrinth_page_info(z, n, &info), 0);
    CHECK_EQ(info.tag, 0x1234u);

    long blocks = 0;
    CHECK_EQ(labyrinth_zone_for_each_in_use(z, count_in_use, &blocks), 4);
    CHECK_EQ(blocks, 4);

    struct labyrinth_zone_stats st{};
    CHECK_EQ(labyrinth_zone_stats(z, &st), 0);
    CHECK_EQ(st.total_pages, 256);
    CHECK_EQ(st.in_use_pages, 7);
    CHECK_EQ(st.total_pages, st.free_pages + st.in_use_pages);
    CHECK_EQ(st.atomic_allocs, 2);

    std::uint64_t phys = 0;
    CHECK_EQ(labyrinth_virt_to_phys(z, a, &phys), -EOPNOTSUPP);

    // A refused free: a negative errno and one report.
    CHECK_EQ(labyrinth_free_pages(z, static_cast<char *>(k) + page, 2), -ENXIO);
    CHECK_EQ(rec.n, 1);
    CHECK_EQ(rec.kind, LABYRINTH_REPORT_BAD_FREE);
    CHECK_EQ(rec.err, -ENXIO);
    CHECK(rec.addr == static_cast<char *>(k) + page);
    CHECK(labyrinth_strerror(-ENXIO) != nullptr);

    CHECK_EQ(labyrinth_free_pages(z, a, 0), 0);
    CHECK_EQ(labyrinth_free_pages(z, n, 0), 0);
    CHECK_EQ(labyrinth_free_pages(z, k, 2), 0);
    CHECK_EQ(labyrinth_free_pages(z, m, 0), 0);
    CHECK_EQ(labyrinth_free_pages(z, nullptr, 0), 0);
    CHECK_EQ(labyrinth_zone_check(z), 0);
    CHECK_EQ(labyrinth_thread_release(z), 0);
    CHECK_EQ(labyrinth_zone_stats(z, &st), 0);
    CHECK_EQ(st.in_use_pages, 0);
    CHECK_EQ(st.misuse_reports, 1);
    labyrinth_zone_destroy(z);
    labyrinth_zone_destroy(nullptr);
    return check_done("api_cxx");
}
