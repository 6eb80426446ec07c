//! Cortex-M0 (QEMU microbit, nRF51) firmware; instruction counts from TIMER0 under `-icount shift=8`. 16 KiB of
//! RAM hold the arena, the stack and the model's decoded tables: only small models fit.
#![no_std]
#![no_main]

hawq_firmware_common::cortex_m_qemu_firmware!("cortex-m0", Nrf51Timer);
