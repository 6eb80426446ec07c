/* The board of main.c on QEMU's mps2-an386 (Cortex-M4F): vector table and reset, semihosting
 * output and exit (QEMU exits with main's return value), the CMSDK APB timer as an instruction
 * counter (run with -icount shift=7: 128 ns per instruction, 40 ns per tick), and a painted
 * stack for its high-water mark. No C library: freestanding C and libgcc. */
#include <stddef.h>
#include <stdint.h>

#include "../board.h"

extern uint32_t __data_start[], __data_end[], __data_load[], __bss_start[], __bss_end[], __stack_top[];
int main(void);

/* ---- semihosting (Arm: bkpt 0xab, operation in r0, argument in r1) ---- */

static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* The host's stdout: SYS_OPEN of ":tt" for writing (SYS_WRITE0 would go to QEMU's stderr). */
static int host_stdout = -1;

void board_write(const char *s) {
    if (host_stdout < 0) {
        const uint32_t open[3] = {(uint32_t)(uintptr_t)":tt", 4 /* "w" */, 3 /* strlen(":tt") */};
        host_stdout = semihost(0x01, open); /* SYS_OPEN */
    }
    size_t n = 0;
    while (s[n]) {
        n++;
    }
    const uint32_t write[3] = {(uint32_t)host_stdout, (uint32_t)(uintptr_t)s, (uint32_t)n};
    semihost(0x05, write); /* SYS_WRITE */
}

static void board_exit(int code) {
    const uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)code};
    semihost(0x20, block); /* SYS_EXIT_EXTENDED */
    for (;;) {
    }
}

/* ---- CMSDK APB timer 0: 32-bit, counting down at 25 MHz ---- */

#define TIMER_CTRL (*(volatile uint32_t *)0x40000000u)
#define TIMER_VALUE (*(volatile uint32_t *)0x40000004u)
#define TIMER_RELOAD (*(volatile uint32_t *)0x40000008u)

uint32_t board_counter(void) {
    return ~TIMER_VALUE;
}

uint32_t board_instructions(uint32_t ticks) {
    /* ticks * 40 ns / 128 ns, rounded */
    return (uint32_t)(((uint64_t)ticks * 5u + 8u) / 16u);
}

/* ---- the stack: painted from the end of the statics to just below the reset frame ---- */

#define STACK_PATTERN 0x5AFE57ACu
#define STACK_MARGIN 256u

size_t board_stack_size(void) {
    return (size_t)((uintptr_t)__stack_top - (uintptr_t)__bss_end);
}

size_t board_stack_used(void) {
    const uint32_t *p = __bss_end;
    while (p < __stack_top && *p == STACK_PATTERN) {
        p++;
    }
    return (size_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

static void paint_stack(void) {
    uint32_t here;
    volatile uint32_t *p = __bss_end;
    uint32_t *end = (uint32_t *)(((uintptr_t)&here - STACK_MARGIN) & ~(uintptr_t)3);
    while (p < end) {
        *p++ = STACK_PATTERN;
    }
}

/* ---- reset and faults ---- */

void reset_handler(void);
static void fault_handler(void) {
    board_write("fault: hardfault\n");
    board_exit(3);
}

void reset_handler(void) {
    /* The runtime is built for the hard-float ABI: enable the FPU (CP10, CP11) first. */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n isb" ::: "memory");
    for (uint32_t *src = __data_load, *dst = __data_start; dst < __data_end;) {
        *dst++ = *src++;
    }
    for (volatile uint32_t *dst = __bss_start; dst < __bss_end;) {
        *dst++ = 0;
    }
    paint_stack();
    TIMER_CTRL = 0;
    TIMER_RELOAD = 0xFFFFFFFFu;
    TIMER_VALUE = 0xFFFFFFFFu;
    TIMER_CTRL = 1;
    board_exit(main());
}

typedef void (*handler)(void);
struct vector_table {
    void *stack_top;
    handler entries[15];
};

__attribute__((section(".vectors"), used)) const struct vector_table vectors = {
    __stack_top,
    {reset_handler, fault_handler, fault_handler, fault_handler, fault_handler, fault_handler, 0, 0, 0, 0,
     fault_handler, fault_handler, 0, fault_handler, fault_handler},
};
