//! Cortex-M3 (mps2-an385) firmware; instruction counts from the CMSDK timer under `-icount shift=7`.
#![no_std]
#![no_main]

hawq_firmware_common::cortex_m_qemu_firmware!("cortex-m3", Cmsdk);
