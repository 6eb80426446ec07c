include!("../firmware-common/build_support.rs");

fn main() {
    hawq_build::memory_x();
}
