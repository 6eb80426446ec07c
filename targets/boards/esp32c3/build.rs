include!("../../firmware-common/build_support.rs");

fn main() {
    // esp-hal's linkall.x describes the memory: no memory.x here.
    hawq_build::embed();
}
