/*
 * os_fault.c - fault injection and call counting for the OS layer, shared
 * by every implementation of os.h (user space and kernel alike).
 */
#include "os.h"

/* ---- fault injection ------------------------------------------------------ */

static struct {
    lb_atomic_u64 calls;
    lb_atomic_u64 fail_at;    /* 0 = disarmed */
    lb_atomic_u32 persistent;
} lb_os_faults[LB_OS_OP_COUNT];

/* Count a call of op; true when it must fail.  Relaxed: a test arms the
 * fault before the calls it targets, from the same thread or after a join. */
bool lb_os_fault(enum lb_os_op op)
{
    uint64_t n = lb_add_rlx_u64(&lb_os_faults[op].calls, 1) + 1;
    uint64_t at = lb_load_rlx_u64(&lb_os_faults[op].fail_at);
    if (at == 0)
        return false;
    return lb_load_rlx_u32(&lb_os_faults[op].persistent) ? n >= at : n == at;
}

uint64_t lb_os_fault_set(enum lb_os_op op, uint64_t nth, int persistent)
{
    uint64_t calls = lb_load_rlx_u64(&lb_os_faults[op].calls);
    lb_store_rlx_u32(&lb_os_faults[op].persistent, persistent ? 1u : 0u);
    lb_store_rlx_u64(&lb_os_faults[op].fail_at, nth ? calls + nth : 0);
    return calls;
}

uint64_t lb_os_calls(enum lb_os_op op) { return lb_load_rlx_u64(&lb_os_faults[op].calls); }

uint64_t lb_os_calls_total(void)
{
    uint64_t t = 0;
    for (int i = 0; i < LB_OS_OP_COUNT; i++)
        t += lb_load_rlx_u64(&lb_os_faults[i].calls);
    return t;
}
