//! Kernels, one folder per instruction set (tract's layout). `reference` is the portable scalar
//! path and the oracle: every other path must produce its bytes exactly.

pub mod reference;
