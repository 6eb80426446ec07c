/* What main.c needs from the board: text output, a counter, the stack's high-water mark. The
 * QEMU implementation is qemu-mps2-an386/board.c; on a real board, a UART, DWT->CYCCNT, ... */
#ifndef BOARD_H
#define BOARD_H

#include <stddef.h>
#include <stdint.h>

/* Writes a NUL-terminated string to the host. */
void board_write(const char *s);
/* A free-running counter (instructions under QEMU -icount, cycles on a board); wraps at 2^32. */
uint32_t board_counter(void);
/* Converts a difference of board_counter() readings into instructions. */
uint32_t board_instructions(uint32_t ticks);
/* Bytes of stack used so far (the stack is painted before main), and the stack's size. */
size_t board_stack_used(void);
size_t board_stack_size(void);

#endif
