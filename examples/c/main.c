/* A C program running a hawq model through the C library (libhawq_runtime_c.a, hawq.h).
 *
 * It runs the bundled digits model (examples/digits) on a few test inputs and prints, for each,
 * the output bytes and the instructions the inference took, in the line format of the Rust QEMU
 * firmware (tests/src/qemu.rs parses both), then the stack's high-water mark; it returns 0, or 2
 * on any error. tests/tests/c_api.rs builds it with arm-none-eabi-gcc for QEMU's Cortex-M4 and
 * requires every output byte to equal the host runtime's. See README.md here for the commands.
 *
 * digits_model.h/.c:  hawq compile examples/digits/model.onnx ... -o digits.hq --emit-c DIR
 * test_inputs.h:      TEST_INPUT_COUNT raw inputs, test_inputs[i][DIGITS_INPUT_RAW_BYTES] (in a
 *                     real application: the sensor's pixels)
 */
#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "digits_model.h"
#include "hawq.h"
#include "test_inputs.h"

static hawq_model model;
static hawq_interpreter interpreter;
static uint8_t arena[DIGITS_ARENA_BYTES] __attribute__((aligned(16)));

/* ---- a line of text, without a C library ---- */

static char line[256];
static size_t used;

static void put(const char *s) {
    while (*s && used + 1 < sizeof line) {
        line[used++] = *s++;
    }
}

static void put_u32(uint32_t v) {
    char digits[11];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && used + 1 < sizeof line) {
        line[used++] = digits[--n];
    }
}

static void put_hex(const uint8_t *bytes, size_t n) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n && used + 2 < sizeof line; i++) {
        line[used++] = hex[bytes[i] >> 4];
        line[used++] = hex[bytes[i] & 15];
    }
}

static void end_line(void) {
    line[used++] = '\n';
    line[used] = '\0';
    board_write(line);
    used = 0;
}

static int fail(const char *what, hawq_status s) {
    put("error: ");
    put(what);
    put(": ");
    put(hawq_status_str(s));
    end_line();
    return 2;
}

/* The model's description through the library must agree with the macros of digits_model.h. */
static int check_description(void) {
    hawq_tensor_info in, out;
    hawq_raw_kind kind;
    size_t raw_bytes;
    hawq_status s = hawq_input_info(&model, &in);
    if (s == HAWQ_OK) s = hawq_output_info(&model, 0, &out);
    if (s == HAWQ_OK) s = hawq_input_raw(&model, &kind, &raw_bytes);
    if (s != HAWQ_OK) return fail("describing the model", s);
    int agree = hawq_abi_version() == HAWQ_ABI_VERSION && hawq_arena_bytes(&model) == DIGITS_ARENA_BYTES &&
                hawq_output_count(&model) == DIGITS_OUTPUT_COUNT && in.elements == DIGITS_INPUT_ELEMENTS &&
                in.scale == DIGITS_INPUT_SCALE && in.zero_point == DIGITS_INPUT_ZERO_POINT &&
                kind == DIGITS_INPUT_RAW_KIND && raw_bytes == DIGITS_INPUT_RAW_BYTES &&
                out.elements == DIGITS_OUTPUT0_ELEMENTS && out.bytes == DIGITS_OUTPUT0_BYTES &&
                out.dtype == DIGITS_OUTPUT0_DTYPE && out.scale == DIGITS_OUTPUT0_SCALE &&
                out.zero_point == DIGITS_OUTPUT0_ZERO_POINT;
    if (!agree) {
        put("error: the library's description of the model differs from digits_model.h");
        end_line();
        return 2;
    }
    /* A status through the interface: an arena one byte short. */
    hawq_interpreter probe;
    s = hawq_interpreter_init(&model, arena, sizeof arena - 1, &probe);
    put("status arena_short=");
    put_u32((uint32_t)s);
    put(" ");
    put(hawq_status_str(s));
    end_line();
    return 0;
}

int main(void) {
    hawq_status s = hawq_model_load(digits_model, DIGITS_MODEL_BYTES, &model);
    if (s != HAWQ_OK) return fail("loading the model", s);
    s = hawq_interpreter_init(&model, arena, sizeof arena, &interpreter);
    if (s != HAWQ_OK) return fail("preparing the interpreter", s);
    if (check_description() != 0) return 2;

    put("hawq target=cortex-m4-c model_bytes=");
    put_u32(DIGITS_MODEL_BYTES);
    put(" arena_bytes=");
    put_u32(DIGITS_ARENA_BYTES);
    put(" inputs=");
    put_u32(TEST_INPUT_COUNT);
    put(" input_bytes=");
    put_u32(DIGITS_INPUT_RAW_BYTES);
    put(" counter=instructions");
    end_line();

    /* The cost of reading the counter, subtracted from each count. */
    uint32_t a = board_counter();
    uint32_t b = board_counter();
    uint32_t overhead = board_instructions(b - a);

    for (uint32_t i = 0; i < TEST_INPUT_COUNT; i++) {
        s = hawq_write_input_raw(&interpreter, test_inputs[i], DIGITS_INPUT_RAW_BYTES);
        if (s != HAWQ_OK) return fail("writing the input", s);
        uint32_t start = board_counter();
        s = hawq_invoke(&interpreter);
        uint32_t end = board_counter();
        if (s != HAWQ_OK) return fail("running the model", s);
        const uint8_t *out;
        size_t n;
        s = hawq_output(&interpreter, 0, &out, &n);
        if (s != HAWQ_OK) return fail("reading the output", s);
        put("inference ");
        put_u32(i);
        put(" instructions=");
        put_u32(board_instructions(end - start) - overhead);
        put(" output=");
        put_hex(out, n);
        end_line();
    }

    put("stack used=");
    put_u32((uint32_t)board_stack_used());
    put(" size=");
    put_u32((uint32_t)board_stack_size());
    end_line();
    put("ok");
    end_line();
    return 0;
}
