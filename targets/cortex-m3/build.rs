include!("../firmware-common/build_support.rs");

fn main() {
    hawq_build::embed();
    hawq_build::memory_x();
    hawq_build::no_device_interrupts();
}
