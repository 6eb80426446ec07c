//! Shared setup of the real-model suite: where the fixtures are, and each fixture's metadata
//! (input transform, metric, data files) as `../shared/fixtures/README.md` gives them.

pub mod c_program;
pub mod qemu;

use std::path::PathBuf;

use hawq_compiler::eval::Metric;
use hawq_compiler::ir::InputTransform;

/// The fixtures folder: `$HAWQ_FIXTURES`, or `../shared/fixtures` beside the repository. Panics
/// with instructions when it is missing: this suite fails loudly, it never skips.
pub fn fixtures() -> PathBuf {
    let dir = std::env::var_os("HAWQ_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"));
    if !dir.join("README.md").is_file() {
        panic!(
            "the real-model suite needs the fixtures at {} (set HAWQ_FIXTURES to their folder); \
             they are not part of the repository",
            dir.display()
        );
    }
    dir
}

pub struct Fixture {
    pub name: &'static str,
    pub model: &'static str,
    pub calib: &'static str,
    pub eval: &'static str,
    pub transform: InputTransform,
    pub metric: Metric,
    /// The acceptance threshold of the uniform 8-bit model (at least, or at most for rmse).
    pub int8_target: f64,
}

pub const FIXTURES: &[Fixture] = &[
    Fixture {
        name: "resnet8-cifar10",
        model: "resnet8-cifar10/model.onnx",
        calib: "resnet8-cifar10/calib.npz",
        eval: "resnet8-cifar10/eval.npz",
        transform: InputTransform { scale: 1.0, offset: 0.0 },
        metric: Metric::Top1,
        int8_target: 0.845,
    },
    Fixture {
        name: "dscnn-kws",
        model: "dscnn-kws/model.onnx",
        calib: "dscnn-kws/calib.npz",
        eval: "dscnn-kws/eval.npz",
        transform: InputTransform { scale: 0.5847, offset: -83.0 * 0.5847 },
        metric: Metric::Top1,
        int8_target: 0.895,
    },
    Fixture {
        name: "mnist8",
        model: "mnist8/model.onnx",
        calib: "mnist8/calib.npz",
        eval: "mnist8/eval.npz",
        transform: InputTransform { scale: 1.0 / 255.0, offset: 0.0 },
        metric: Metric::Top1,
        int8_target: 0.985,
    },
    Fixture {
        name: "autoencoder-ad",
        model: "autoencoder-ad/model.onnx",
        calib: "autoencoder-ad/calib.npz",
        eval: "autoencoder-ad/eval.npz",
        transform: InputTransform { scale: 1.0, offset: 0.0 },
        metric: Metric::AucRecon,
        int8_target: 0.87,
    },
    Fixture {
        name: "sine-mlp",
        model: "sine-mlp/model.onnx",
        calib: "sine-mlp/data.npz",
        eval: "sine-mlp/data.npz",
        transform: InputTransform { scale: 1.0, offset: 0.0 },
        metric: Metric::Rmse,
        int8_target: 0.03,
    },
];
