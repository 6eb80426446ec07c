//! ESP32-C3 app template: sensor → input → infer → act.
//!
//! Every `INFERENCE_PERIOD_MS` it samples GPIO3 (ADC1 channel 3) `INPUT_RAW_BYTES` times into
//! the model's raw input, runs the model, lights an LED on GPIO7 when the class is `LED_CLASS`
//! and logs the class with esp-println. `digits_model` is the module
//! `hawq compile --emit-rust src/` writes (the bundled digits example); put yours in its place.
#![no_std]
#![no_main]

// Generated (`hawq compile --emit-rust`): kept as written, so that it can be regenerated.
#[rustfmt::skip]
mod digits_model;

use digits_model as model;
use esp_backtrace as _;
use esp_hal::analog::adc::{Adc, AdcConfig, Attenuation};
use esp_hal::delay::Delay;
use esp_hal::gpio::{Level, Output, OutputConfig};
use esp_println::println;
use hawq_runtime::{Error, Interpreter};

esp_bootloader_esp_idf::esp_app_desc!();

/// The class that lights the LED.
const LED_CLASS: usize = 0;
/// The raw input value that the sensor's full scale maps to: your training data's range (the
/// digits model takes pixels of 0–16).
const RAW_MAX: u32 = 16;
/// The ADC's full scale (12 bits; about 0–2.5 V at 11 dB attenuation).
const ADC_FULL_SCALE: u32 = (1 << 12) - 1;
/// Time between two samples of the input window.
const SAMPLE_PERIOD_US: u32 = 1_000;
/// Time between two inferences.
const INFERENCE_PERIOD_MS: u32 = 500;

/// The arena: `ARENA_BYTES` of RAM, in a static (not on the stack).
static mut ARENA: model::Arena = model::Arena::new();

#[esp_hal::main]
fn main() -> ! {
    let peripherals = esp_hal::init(esp_hal::Config::default());
    let mut led = Output::new(peripherals.GPIO7, Level::Low, OutputConfig::default());
    let mut adc_config = AdcConfig::new();
    let mut sensor = adc_config.enable_pin(peripherals.GPIO3, Attenuation::_11dB);
    let mut adc = Adc::new(peripherals.ADC1, adc_config);
    let delay = Delay::new();

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
    println!("model loaded: {} B, arena {} B", model::MODEL_BYTES, model::ARENA_BYTES);

    let mut input = [0u8; model::INPUT_RAW_BYTES];
    loop {
        // Sense: one window of samples, each scaled to the model's raw input range.
        for x in input.iter_mut() {
            let counts = nb::block!(adc.read_oneshot(&mut sensor)).unwrap_or(0);
            *x = to_raw(u32::from(counts), ADC_FULL_SCALE);
            delay.delay_micros(SAMPLE_PERIOD_US);
        }
        // Infer, then act.
        match classify(&mut it, &input) {
            Ok((class, score)) => {
                led.set_level(if class == LED_CLASS { Level::High } else { Level::Low });
                println!("class {} (score {})", class, score);
            }
            Err(e) => println!("inference failed: {}", e.summary()),
        }
        delay.delay_millis(INFERENCE_PERIOD_MS);
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
    println!("{}: {}", step, e.summary());
    loop {
        core::hint::spin_loop();
    }
}
