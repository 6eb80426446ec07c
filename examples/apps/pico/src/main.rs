//! Raspberry Pi Pico app template: sensor → input → infer → act.
//!
//! Every `INFERENCE_PERIOD_MS` it samples GPIO26 (ADC0, pin 31) `INPUT_RAW_BYTES` times into the
//! model's raw input, runs the model, lights the on-board LED (GPIO25) when the class is
//! `LED_CLASS` and logs the class with defmt over RTT. `digits_model` is the module
//! `hawq compile --emit-rust src/` writes (the bundled digits example); put yours in its place.
#![no_std]
#![no_main]

// Generated (`hawq compile --emit-rust`): kept as written, so that it can be regenerated.
#[rustfmt::skip]
mod digits_model;

use defmt_rtt as _;
use digits_model as model;
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use embedded_hal_0_2::adc::OneShot;
use hawq_runtime::{Error, Interpreter};
use panic_probe as _;
use rp2040_hal::{self as hal, adc::AdcPin, pac, Clock};

/// The second-stage bootloader for the Pico's W25Q080 flash.
#[link_section = ".boot2"]
#[used]
pub static BOOT2_FIRMWARE: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

/// The Pico's crystal.
const XOSC_HZ: u32 = 12_000_000;

/// The class that lights the LED.
const LED_CLASS: usize = 0;
/// The raw input value that the sensor's full scale maps to: your training data's range (the
/// digits model takes pixels of 0–16).
const RAW_MAX: u32 = 16;
/// The ADC's full scale (12 bits, 0 V to 3.3 V on the Pico).
const ADC_FULL_SCALE: u32 = (1 << 12) - 1;
/// Time between two samples of the input window.
const SAMPLE_PERIOD_US: u32 = 1_000;
/// Time between two inferences.
const INFERENCE_PERIOD_MS: u32 = 500;

/// The arena: `ARENA_BYTES` of RAM, in a static (not on the stack).
static mut ARENA: model::Arena = model::Arena::new();

#[hal::entry]
fn main() -> ! {
    let Some(mut pac) = pac::Peripherals::take() else { halt() };
    let mut watchdog = hal::Watchdog::new(pac.WATCHDOG);
    let Ok(clocks) = hal::clocks::init_clocks_and_plls(
        XOSC_HZ,
        pac.XOSC,
        pac.CLOCKS,
        pac.PLL_SYS,
        pac.PLL_USB,
        &mut pac.RESETS,
        &mut watchdog,
    ) else {
        defmt::error!("clock setup failed");
        halt()
    };
    let mut timer = hal::Timer::new(pac.TIMER, &mut pac.RESETS, &clocks);
    let sio = hal::Sio::new(pac.SIO);
    let pins = hal::gpio::Pins::new(pac.IO_BANK0, pac.PADS_BANK0, sio.gpio_bank0, &mut pac.RESETS);
    let mut led = pins.gpio25.into_push_pull_output();
    let mut adc = hal::Adc::new(pac.ADC, &mut pac.RESETS);
    let Ok(mut sensor) = AdcPin::new(pins.gpio26.into_floating_input()) else { halt() };

    let model = match model::load() {
        Ok(model) => model,
        Err(e) => fail("load", e),
    };
    // SAFETY: the only reference to ARENA, taken once.
    let arena = unsafe { &mut *core::ptr::addr_of_mut!(ARENA) };
    let mut it = match model::interpreter(&model, arena) {
        Ok(it) => it,
        Err(e) => fail("interpreter", e),
    };
    defmt::info!(
        "model loaded: {} B, arena {} B, clock {} Hz",
        model::MODEL_BYTES,
        model::ARENA_BYTES,
        clocks.system_clock.freq().to_Hz()
    );

    let mut input = [0u8; model::INPUT_RAW_BYTES];
    loop {
        // Sense: one window of samples, each scaled to the model's raw input range.
        for x in input.iter_mut() {
            // The RP2040's one-shot read cannot fail (its error type is `Infallible`).
            let counts: u16 = adc.read(&mut sensor).unwrap_or(0);
            *x = to_raw(u32::from(counts), ADC_FULL_SCALE);
            timer.delay_us(SAMPLE_PERIOD_US);
        }
        // Infer, then act.
        match classify(&mut it, &input) {
            Ok((class, score)) => {
                let _ = if class == LED_CLASS { led.set_high() } else { led.set_low() };
                defmt::info!("class {} (score {})", class, score);
            }
            Err(e) => defmt::error!("inference failed: {}", e.summary()),
        }
        timer.delay_ms(INFERENCE_PERIOD_MS);
    }
}

/// A reading of `0..=full_scale` as a raw input value of `0..=RAW_MAX`, rounded.
fn to_raw(counts: u32, full_scale: u32) -> u8 {
    ((counts.min(full_scale) * RAW_MAX + full_scale / 2) / full_scale) as u8
}

/// Runs the model on `input` and returns the class with the highest score, and that score.
fn classify(it: &mut Interpreter<'_, '_, { model::KERNELS }>, input: &[u8]) -> Result<(usize, f32), Error> {
    it.write_input_raw(input)?;
    it.invoke()?;
    let scores = model::read_output(it)?;
    let best = (0..scores.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap_or(0);
    Ok((best, scores[best]))
}

/// Logs an error the app cannot go on from (the model does not load or the arena is too small).
fn fail(step: &str, e: Error) -> ! {
    defmt::error!("{}: {}", step, e.summary());
    halt()
}

fn halt() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}
