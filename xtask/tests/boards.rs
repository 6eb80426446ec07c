//! The real boards' firmware (targets/boards: nRF52840-DK, Raspberry Pi Pico, ESP32-C3) builds
//! around the bundled example, in the normal suite. Built only: running needs the board and a
//! debug probe (targets/README.md). Needs the cross targets of scripts/setup-cross.sh.

use hawq_e2e::qemu::{self, compile_cases, Config, ModelSpec};

#[test]
fn every_real_board_firmware_builds_around_the_digits_model() {
    let case = compile_cases(&ModelSpec::digits(), &[Config::Int8], 4).unwrap().remove(0);
    for board in qemu::BOARDS {
        let sizes = qemu::build_board(board, &case.blob, &case.inputs.concat())
            .unwrap_or_else(|e| panic!("{}: {e:#}", board.name))
            .unwrap_or_else(|why| panic!("{}: digits does not fit: {why}", board.name));
        println!("{:<12} {:<24} flash {} B, statics {} B", board.name, board.chip, sizes.image, sizes.statics);
        assert!(sizes.image > case.blob.len() as u64, "{}: the model is not in the image", board.name);
        let arena = u32::from_le_bytes(case.blob[12..16].try_into().unwrap()) as u64;
        assert!(sizes.statics >= arena, "{}: the arena is not in RAM", board.name);
    }
}
