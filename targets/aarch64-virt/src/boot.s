// Boot code of the QEMU virt firmware. QEMU starts the ELF's entry at EL1 (no EL2/EL3 without
// `-M virt,virtualization=on` / `secure=on`), MMU and caches off, FP/SIMD trapped.
//
// 1. The stack (SP_EL1), from the linker script.
// 2. FP/SIMD: CPACR_EL1.FPEN = 0b11, before any Rust code (which uses NEON registers freely).
// 3. The exception vectors (VBAR_EL1): every exception ends the run with a report.
// 4. The MMU on, an identity map in 1 GiB blocks: 0-1 GiB (flash, devices) Device-nGnRnE, 1-2 GiB
//    (DRAM) Normal write-back. With the MMU off every data access is Device memory, where an
//    unaligned access faults; as Normal memory, DRAM takes the unaligned loads and stores the
//    compiler emits for AArch64 Linux (the build drops `+strict-align`, see .cargo/config.toml).
// 5. .bss zeroed (.data is loaded in place by QEMU), then `hawq_main`.

    .section .text.boot, "ax"
    .global _start
_start:
    adrp    x0, __stack_top
    add     x0, x0, :lo12:__stack_top
    mov     sp, x0

    mov     x0, #(3 << 20)
    msr     cpacr_el1, x0

    adrp    x0, hawq_vectors
    add     x0, x0, :lo12:hawq_vectors
    msr     vbar_el1, x0
    isb

    // MAIR_EL1: Attr0 = 0x00 (Device-nGnRnE), Attr1 = 0xFF (Normal, inner/outer write-back,
    // read/write-allocate).
    mov     x0, #0xFF00
    msr     mair_el1, x0
    // TCR_EL1: T0SZ = 32 (4 GiB of VA, walks start at level 1), IRGN0 = ORGN0 = 0b01
    // (write-back), SH0 = 0b11 (inner shareable), TG0 = 4 KiB, EPD1 = 1 (no TTBR1 walks),
    // IPS = 0b000 (32-bit PA).
    mov     x0, #0x3520
    movk    x0, #0x80, lsl #16
    msr     tcr_el1, x0
    adrp    x0, hawq_page_table
    add     x0, x0, :lo12:hawq_page_table
    msr     ttbr0_el1, x0
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    // SCTLR_EL1: M (MMU), C (data cache), I (instruction cache) on; A (alignment check) off.
    mrs     x0, sctlr_el1
    mov     x1, #((1 << 0) | (1 << 2) | (1 << 12))
    orr     x0, x0, x1
    bic     x0, x0, #(1 << 1)
    msr     sctlr_el1, x0
    isb

    adrp    x0, __bss_start
    add     x0, x0, :lo12:__bss_start
    adrp    x1, __bss_end
    add     x1, x1, :lo12:__bss_end
1:  cmp     x0, x1
    b.hs    2f
    stp     xzr, xzr, [x0], #16
    b       1b
2:  bl      hawq_main
3:  wfe
    b       3b

// The level-1 table: four 1 GiB block entries (AF set, EL1 read/write).
    .section .pagetable, "a"
    .balign 4096
hawq_page_table:
    // 0x0000_0000: Device-nGnRnE (AttrIndx 0), never executable (PXN, UXN).
    .quad   0x0060000000000401
    // 0x4000_0000: Normal (AttrIndx 1), inner shareable.
    .quad   0x0000000040000705
    // 0x8000_0000 and up: not mapped.
    .quad   0
    .quad   0

// The vector table: 16 entries of 128 bytes (current EL with SP_EL0, with SP_ELx, lower EL
// AArch64, lower EL AArch32; each synchronous, IRQ, FIQ, SError). Each passes its index, ESR_EL1
// and ELR_EL1 to `hawq_exception`, which reports and exits.
    .section .text.vectors, "ax"
    .balign 2048
    .global hawq_vectors
hawq_vectors:
    .irp    n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    .balign 128
    mov     x0, #\n
    b       hawq_vector_common
    .endr
hawq_vector_common:
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    b       hawq_exception
