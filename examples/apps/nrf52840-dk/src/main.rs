//! nRF52840-DK app template: sensor → input → infer → act.
//!
//! Every `INFERENCE_PERIOD_MS` it samples the analog pin P0.03 (AIN1, the Arduino header's A0)
//! `INPUT_RAW_BYTES` times into the model's raw input, runs the model, lights LED1 when the class
//! is `LED_CLASS` and logs the class with defmt over RTT. `digits_model` is the module
//! `hawq compile --emit-rust src/` writes (the bundled digits example); put yours in its place.
#![no_std]
#![no_main]

// Generated (`hawq compile --emit-rust`): kept as written, so that it can be regenerated.
#[rustfmt::skip]
mod digits_model;

use cortex_m_rt::entry;
use defmt_rtt as _;
use digits_model as model;
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use hawq_runtime::{Error, Interpreter};
use nrf52840_hal::gpio::{p0, Level};
use nrf52840_hal::saadc::{Saadc, SaadcConfig};
use nrf52840_hal::{pac, Delay};
use panic_probe as _;

/// The class that lights the LED.
const LED_CLASS: usize = 0;
/// The raw input value that the sensor's full scale maps to: your training data's range (the
/// digits model takes pixels of 0–16).
const RAW_MAX: u32 = 16;
/// The SAADC's full scale with `SaadcConfig::default()` (14 bits, 0 V to VDD).
const ADC_FULL_SCALE: u32 = (1 << 14) - 1;
/// Time between two samples of the input window.
const SAMPLE_PERIOD_US: u32 = 1_000;
/// Time between two inferences.
const INFERENCE_PERIOD_MS: u32 = 500;

/// The arena: `ARENA_BYTES` of RAM, in a static (not on the stack).
static mut ARENA: model::Arena = model::Arena::new();

#[entry]
fn main() -> ! {
    let (Some(core), Some(periph)) = (cortex_m::Peripherals::take(), pac::Peripherals::take()) else { halt() };
    let port0 = p0::Parts::new(periph.P0);
    // LED1 (P0.13) is active low: start dark.
    let mut led = port0.p0_13.into_push_pull_output(Level::High);
    let mut sensor = port0.p0_03.into_floating_input();
    let mut adc = Saadc::new(periph.SAADC, SaadcConfig::default());
    let mut delay = Delay::new(core.SYST);

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
    defmt::info!("model loaded: {} B, arena {} B", model::MODEL_BYTES, model::ARENA_BYTES);

    let mut input = [0u8; model::INPUT_RAW_BYTES];
    loop {
        // Sense: one window of samples, each scaled to the model's raw input range.
        for x in input.iter_mut() {
            // A single-ended reading near 0 V can come out slightly negative.
            let counts = adc.read_channel(&mut sensor).unwrap_or(0).max(0) as u32;
            *x = to_raw(counts, ADC_FULL_SCALE);
            delay.delay_us(SAMPLE_PERIOD_US);
        }
        // Infer, then act.
        match classify(&mut it, &input) {
            Ok((class, score)) => {
                let _ = if class == LED_CLASS { led.set_low() } else { led.set_high() };
                defmt::info!("class {} (score {})", class, score);
            }
            Err(e) => defmt::error!("inference failed: {}", e.summary()),
        }
        delay.delay_ms(INFERENCE_PERIOD_MS);
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
