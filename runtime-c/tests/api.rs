//! The C interface, called from Rust as a C program would call it, on the bundled example
//! compiled in 8-bit and in 4-bit activations: it computes exactly what the Rust API computes,
//! describes the tensors as the model does, and turns every bad argument into its status.
// Every call below passes valid pointers, or deliberately bad ones the function must refuse.
#![allow(clippy::undocumented_unsafe_blocks)]

use std::mem::MaybeUninit;
use std::path::PathBuf;
use std::ptr;

use hawq_compiler::data::Dataset;
use hawq_compiler::import::import;
use hawq_compiler::ir::InputTransform;
use hawq_compiler::pipeline::{compile, prepare};
use hawq_compiler::quantize::BitConfig;
use hawq_runtime::{Interpreter, Model};
use hawq_runtime_c::HawqStatus::*;
use hawq_runtime_c::*;

fn digits(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/digits").join(file)
}

/// The bundled example compiled with 8-bit weights and `act` bits activations (the input at 8).
fn blob(act: u8) -> Vec<u8> {
    blob_with(8, act)
}

/// The bundled example compiled with `weights`-bit weights and `act`-bit activations.
fn blob_with(weights: u8, act: u8) -> Vec<u8> {
    let graph = import(&digits("model.onnx")).expect("import");
    let calib = Dataset::load(&digits("calib.npz")).expect("calib");
    let prepared = prepare(graph, &calib, InputTransform { scale: 0.0625, offset: 0.0 }).expect("prepare");
    let mut bits = BitConfig::uniform(&prepared.graph, weights, act);
    bits.act_bits[prepared.graph.input] = 8;
    compile(&prepared, &bits).expect("compile").blob
}

fn inputs(n: usize) -> Vec<Vec<u8>> {
    let eval = Dataset::load(&digits("eval.npz")).expect("eval");
    (0..n).map(|i| eval.raw(i)).collect()
}

/// Zeroed storage, as a C static would be.
fn zeroed<T>() -> T {
    // SAFETY (test): the handles are arrays of words, valid when zero.
    unsafe { MaybeUninit::zeroed().assume_init() }
}

struct Loaded {
    model: Box<HawqModel>,
    it: Box<HawqInterpreter>,
    _arena: Vec<u8>,
}

fn load(blob: &[u8]) -> Loaded {
    let mut model: Box<HawqModel> = Box::new(zeroed());
    assert_eq!(unsafe { hawq_model_load(blob.as_ptr(), blob.len(), &mut *model) }, HAWQ_OK);
    let mut arena = vec![0u8; unsafe { hawq_arena_bytes(&*model) }];
    let mut it: Box<HawqInterpreter> = Box::new(zeroed());
    assert_eq!(unsafe { hawq_interpreter_init(&*model, arena.as_mut_ptr(), arena.len(), &mut *it) }, HAWQ_OK);
    Loaded { model, it, _arena: arena }
}

fn output(it: &HawqInterpreter, index: usize) -> Result<Vec<u8>, HawqStatus> {
    let (mut data, mut len) = (ptr::null(), 0usize);
    match unsafe { hawq_output(it, index, &mut data, &mut len) } {
        HAWQ_OK => Ok(unsafe { std::slice::from_raw_parts(data, len) }.to_vec()),
        s => Err(s),
    }
}

#[test]
fn the_c_interface_computes_what_the_rust_api_computes() {
    for act in [8, 4] {
        let blob = blob(act);
        let rust_model = Model::from_bytes(&blob).unwrap();
        let mut rust_arena = vec![0u8; rust_model.arena_bytes()];
        let mut rust = Interpreter::new(&rust_model, &mut rust_arena).unwrap();
        let mut c = load(&blob);

        assert_eq!(hawq_abi_version(), HAWQ_ABI_VERSION);
        assert_eq!(unsafe { hawq_arena_bytes(&*c.model) }, rust_model.arena_bytes());
        assert_eq!(unsafe { hawq_output_count(&*c.model) }, 1);
        let mut info = MaybeUninit::<HawqTensorInfo>::uninit();
        assert_eq!(unsafe { hawq_input_info(&*c.model, info.as_mut_ptr()) }, HAWQ_OK);
        let info = unsafe { info.assume_init() };
        let t = rust_model.input();
        assert_eq!(info, HawqTensorInfo::of(t));
        assert_eq!((info.shape, info.elements, info.dtype), ([1, 8, 8, 1], 64, HawqDtype::HAWQ_DTYPE_INT8));
        assert_eq!(info.scale, t.scale.to_f32());
        let (mut kind, mut raw_bytes) = (HawqRawKind::HAWQ_RAW_F32, 0usize);
        assert_eq!(unsafe { hawq_input_raw(&*c.model, &mut kind, &mut raw_bytes) }, HAWQ_OK);
        assert_eq!((kind, raw_bytes), (HawqRawKind::HAWQ_RAW_U8, 64));
        let mut out_info = MaybeUninit::<HawqTensorInfo>::uninit();
        assert_eq!(unsafe { hawq_output_info(&*c.model, 0, out_info.as_mut_ptr()) }, HAWQ_OK);
        let out_info = unsafe { out_info.assume_init() };
        assert_eq!(out_info, HawqTensorInfo::of(rust_model.output()));
        assert_eq!(out_info.elements, 10);
        let want_dtype = if act == 4 { HawqDtype::HAWQ_DTYPE_INT4 } else { HawqDtype::HAWQ_DTYPE_INT8 };
        assert_eq!(out_info.dtype, want_dtype, "{act}-bit activations");
        assert_eq!(out_info.bytes as usize, rust_model.output().bytes());

        let mut distinct = std::collections::BTreeSet::new();
        for x in inputs(40) {
            rust.write_input_raw(&x).unwrap();
            rust.invoke().unwrap();
            assert_eq!(unsafe { hawq_write_input_raw(&mut *c.it, x.as_ptr(), x.len()) }, HAWQ_OK);
            assert_eq!(unsafe { hawq_invoke(&mut *c.it) }, HAWQ_OK);
            let bytes = output(&c.it, 0).unwrap();
            assert_eq!(bytes, rust.output_bytes(), "{act}-bit activations");
            let mut want = [0f32; 10];
            rust.read_output_f32(&mut want).unwrap();
            let mut got = [f32::NAN; 12];
            assert_eq!(unsafe { hawq_output_f32(&*c.it, 0, got.as_mut_ptr(), got.len()) }, HAWQ_OK);
            assert_eq!(got[..10], want);
            assert!(got[10].is_nan(), "wrote past the output's elements");
            distinct.insert(bytes);
        }
        assert!(distinct.len() > 5, "the outputs should depend on the input: {} distinct", distinct.len());
    }
}

#[test]
fn load_errors_mirror_the_runtime_and_leave_no_model() {
    let good = blob(8);
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 1;
    let mut magic = good.clone();
    magic[0] = b'X';
    let mut version = good.clone();
    version[4] ^= 0x40;
    let cases: [(&[u8], HawqStatus); 5] = [
        (&good[..good.len() - 1], HAWQ_ERR_TRUNCATED),
        (&good[..10], HAWQ_ERR_TRUNCATED),
        (&flipped, HAWQ_ERR_CHECKSUM_MISMATCH),
        (&magic, HAWQ_ERR_BAD_MAGIC),
        (&version, HAWQ_ERR_UNSUPPORTED_VERSION),
    ];
    for (bad, want) in cases {
        let expected = HawqStatus::of(Model::from_bytes(bad).unwrap_err());
        assert_eq!(expected, want);
        // A handle that held a good model holds none after a failed load.
        let mut model: HawqModel = zeroed();
        assert_eq!(unsafe { hawq_model_load(good.as_ptr(), good.len(), &mut model) }, HAWQ_OK);
        assert!(unsafe { hawq_arena_bytes(&model) } > 0);
        assert_eq!(unsafe { hawq_model_load(bad.as_ptr(), bad.len(), &mut model) }, want);
        assert_eq!(unsafe { hawq_arena_bytes(&model) }, 0);
        assert_eq!(unsafe { hawq_output_count(&model) }, 0);
        let mut arena = [0u8; 64];
        let mut it: HawqInterpreter = zeroed();
        let s = unsafe { hawq_interpreter_init(&model, arena.as_mut_ptr(), arena.len(), &mut it) };
        assert_eq!(s, HAWQ_ERR_NOT_LOADED);
    }
}

#[test]
fn bad_arguments_are_statuses() {
    let good = blob(8);
    let mut c = load(&good);
    let (model, it) = (&*c.model as *const HawqModel, &mut *c.it as *mut HawqInterpreter);
    let null_model = ptr::null::<HawqModel>();
    let null_it = ptr::null_mut::<HawqInterpreter>();
    let x = inputs(1).remove(0);
    let mut info = MaybeUninit::<HawqTensorInfo>::uninit();
    let (mut kind, mut n) = (HawqRawKind::HAWQ_RAW_U8, 0usize);
    let (mut data, mut len) = (ptr::null::<u8>(), 0usize);
    let mut floats = [0f32; 10];
    unsafe {
        // NULL everywhere.
        let mut m: HawqModel = zeroed();
        assert_eq!(hawq_model_load(ptr::null(), good.len(), &mut m), HAWQ_ERR_NULL_POINTER);
        assert_eq!(hawq_model_load(good.as_ptr(), good.len(), ptr::null_mut()), HAWQ_ERR_NULL_POINTER);
        assert_eq!(hawq_arena_bytes(null_model), 0);
        assert_eq!(hawq_output_count(null_model), 0);
        assert_eq!(hawq_input_info(null_model, info.as_mut_ptr()), HAWQ_ERR_NULL_POINTER);
        assert_eq!(hawq_input_info(model, ptr::null_mut()), HAWQ_ERR_NULL_POINTER);
        assert_eq!(hawq_input_raw(model, ptr::null_mut(), &mut n), HAWQ_ERR_NULL_POINTER);
        assert_eq!(hawq_input_raw(model, &mut kind, ptr::null_mut()), HAWQ_ERR_NULL_POINTER);
        assert_eq!(hawq_output_info(model, 0, ptr::null_mut()), HAWQ_ERR_NULL_POINTER);
        let mut arena = vec![0u8; hawq_arena_bytes(model)];
        let mut it2: HawqInterpreter = zeroed();
        assert_eq!(hawq_interpreter_init(model, ptr::null_mut(), arena.len(), &mut it2), HAWQ_ERR_NULL_POINTER);
        assert_eq!(hawq_interpreter_init(model, arena.as_mut_ptr(), arena.len(), null_it), HAWQ_ERR_NULL_POINTER);
        assert_eq!(hawq_interpreter_init(null_model, arena.as_mut_ptr(), arena.len(), &mut it2), HAWQ_ERR_NULL_POINTER);
        assert_eq!(hawq_write_input_raw(null_it, x.as_ptr(), x.len()), HAWQ_ERR_NULL_POINTER);
        assert_eq!(hawq_write_input_raw(it, ptr::null(), x.len()), HAWQ_ERR_NULL_POINTER);
        assert_eq!(hawq_invoke(null_it), HAWQ_ERR_NULL_POINTER);
        assert_eq!(hawq_output(null_it, 0, &mut data, &mut len), HAWQ_ERR_NULL_POINTER);
        assert_eq!(hawq_output(it, 0, ptr::null_mut(), &mut len), HAWQ_ERR_NULL_POINTER);
        assert_eq!(hawq_output(it, 0, &mut data, ptr::null_mut()), HAWQ_ERR_NULL_POINTER);
        assert_eq!(hawq_output_f32(it, 0, ptr::null_mut(), 10), HAWQ_ERR_NULL_POINTER);

        // Never-loaded (zeroed) handles.
        let zero_model: HawqModel = zeroed();
        let mut zero_it: HawqInterpreter = zeroed();
        assert_eq!(hawq_input_info(&zero_model, info.as_mut_ptr()), HAWQ_ERR_NOT_LOADED);
        assert_eq!(hawq_output_info(&zero_model, 0, info.as_mut_ptr()), HAWQ_ERR_NOT_LOADED);
        assert_eq!(hawq_interpreter_init(&zero_model, arena.as_mut_ptr(), arena.len(), &mut it2), HAWQ_ERR_NOT_LOADED);
        assert_eq!(hawq_invoke(&mut zero_it), HAWQ_ERR_NOT_LOADED);
        assert_eq!(hawq_write_input_raw(&mut zero_it, x.as_ptr(), x.len()), HAWQ_ERR_NOT_LOADED);
        assert_eq!(hawq_output(&zero_it, 0, &mut data, &mut len), HAWQ_ERR_NOT_LOADED);

        // Misaligned handles and out-pointers.
        let mut bytes = vec![0u64; 64];
        let odd = (bytes.as_mut_ptr() as *mut u8).add(1);
        assert_eq!(hawq_model_load(good.as_ptr(), good.len(), odd.cast()), HAWQ_ERR_MISALIGNED);
        assert_eq!(hawq_arena_bytes(odd.cast()), 0);
        assert_eq!(hawq_invoke(odd.cast()), HAWQ_ERR_MISALIGNED);
        assert_eq!(hawq_input_raw(model, &mut kind, odd.cast()), HAWQ_ERR_MISALIGNED);
        assert_eq!(hawq_output(it, 0, odd.cast(), &mut len), HAWQ_ERR_MISALIGNED);
        assert_eq!(hawq_output_f32(it, 0, odd.cast(), 10), HAWQ_ERR_MISALIGNED);

        // Lengths.
        assert_eq!(hawq_model_load(good.as_ptr(), usize::MAX, &mut m), HAWQ_ERR_TOO_LARGE);
        assert_eq!(hawq_write_input_raw(it, x.as_ptr(), x.len() - 1), HAWQ_ERR_SIZE_MISMATCH);
        assert_eq!(hawq_write_input_raw(it, x.as_ptr(), x.len() + 1), HAWQ_ERR_SIZE_MISMATCH);
        assert_eq!(hawq_write_input_raw(it, x.as_ptr(), usize::MAX), HAWQ_ERR_TOO_LARGE);
        assert_eq!(hawq_output_f32(it, 0, floats.as_mut_ptr(), 9), HAWQ_ERR_SIZE_MISMATCH);
        assert_eq!(hawq_output_f32(it, 0, floats.as_mut_ptr(), usize::MAX / 2), HAWQ_ERR_TOO_LARGE);
        let short = arena.len() - 1;
        assert_eq!(hawq_interpreter_init(model, arena.as_mut_ptr(), short, &mut it2), HAWQ_ERR_ARENA_TOO_SMALL);
        assert_eq!(hawq_invoke(&mut it2), HAWQ_ERR_NOT_LOADED, "a failed init leaves no interpreter");

        // Indices.
        assert_eq!(hawq_output_info(model, 1, info.as_mut_ptr()), HAWQ_ERR_NO_SUCH_OUTPUT);
        assert_eq!(hawq_output(it, 1, &mut data, &mut len), HAWQ_ERR_NO_SUCH_OUTPUT);
        assert_eq!(hawq_output_f32(it, usize::MAX, floats.as_mut_ptr(), 10), HAWQ_ERR_NO_SUCH_OUTPUT);

        // Overlaps: an arena over the blob or a handle, an input or output buffer in the arena.
        let mut blob_in_ram = good.clone();
        let mut m2: HawqModel = zeroed();
        assert_eq!(hawq_model_load(blob_in_ram.as_ptr(), blob_in_ram.len(), &mut m2), HAWQ_OK);
        let need = hawq_arena_bytes(&m2);
        assert!(blob_in_ram.len() >= need, "the overlap case needs a blob at least as long as the arena");
        let s = hawq_interpreter_init(&m2, blob_in_ram.as_mut_ptr(), need, &mut it2);
        assert_eq!(s, HAWQ_ERR_BUFFERS_OVERLAP, "an arena over the blob");
        let mut words = vec![0u64; need.div_ceil(8) + 8];
        let (start, words_len) = (words.as_mut_ptr(), words.len() * 8);
        let s = hawq_interpreter_init(&m2, start.cast(), words_len, start.add(2).cast());
        assert_eq!(s, HAWQ_ERR_BUFFERS_OVERLAP, "an interpreter handle inside its arena");
        let s = hawq_interpreter_init(start.cast(), start.cast(), words_len, &mut it2);
        assert_eq!(s, HAWQ_ERR_NOT_LOADED, "zeroed words are no model");
        assert_eq!(hawq_interpreter_init(&m2, arena.as_mut_ptr(), arena.len(), &mut it2), HAWQ_OK);
        let (arena_ptr, input_len) = (arena.as_ptr(), x.len());
        assert_eq!(hawq_write_input_raw(&mut it2, arena_ptr, input_len), HAWQ_ERR_BUFFERS_OVERLAP);
        assert_eq!(hawq_output_f32(&it2, 0, arena.as_mut_ptr().cast(), 10), HAWQ_ERR_BUFFERS_OVERLAP);

        // A blob over its own model handle.
        let mut words = vec![0usize; HAWQ_MODEL_WORDS + good.len().div_ceil(std::mem::size_of::<usize>())];
        let handle = words.as_mut_ptr().cast::<HawqModel>();
        let s = hawq_model_load(words.as_ptr().cast(), words.len() * std::mem::size_of::<usize>(), handle);
        assert_eq!(s, HAWQ_ERR_BUFFERS_OVERLAP, "a blob over its handle");

        // A model handle that was reloaded with a failing blob under a live interpreter.
        assert_eq!(hawq_write_input_raw(&mut it2, x.as_ptr(), x.len()), HAWQ_OK);
        assert_eq!(hawq_invoke(&mut it2), HAWQ_OK);
        assert_eq!(hawq_model_load(good.as_ptr(), 3, &mut m2), HAWQ_ERR_TRUNCATED);
        assert_eq!(hawq_invoke(&mut it2), HAWQ_ERR_NOT_LOADED);
        assert_eq!(hawq_output(&it2, 0, &mut data, &mut len), HAWQ_ERR_NOT_LOADED);
        drop(blob_in_ram);

        // The good interpreter still works after all of that.
        assert_eq!(hawq_write_input_raw(it, x.as_ptr(), x.len()), HAWQ_OK);
        assert_eq!(hawq_invoke(it), HAWQ_OK);
        assert_eq!(hawq_output(it, 0, &mut data, &mut len), HAWQ_OK);
        assert_eq!(len, 10);
    }
}

#[test]
fn every_status_has_its_own_message_and_number() {
    let mut seen = std::collections::BTreeSet::new();
    for s in HawqStatus::ALL {
        let text = unsafe { std::ffi::CStr::from_ptr(hawq_status_str(s as i32)) }.to_str().unwrap();
        assert!(!text.is_empty() && text != "unknown status", "{s:?}");
        assert!(seen.insert(text), "{s:?} shares its message '{text}'");
        assert_eq!(HawqStatus::from_code(s as i32), Some(s));
    }
    for code in [-1, 28, 99, 106, i32::MIN, i32::MAX] {
        let text = unsafe { std::ffi::CStr::from_ptr(hawq_status_str(code)) };
        assert_eq!(text.to_str().unwrap(), "unknown status", "{code}");
    }
    // The numbers are the interface: they must not move.
    assert_eq!(HAWQ_OK as i32, 0);
    assert_eq!(HAWQ_ERR_CHECKSUM_MISMATCH as i32, 4);
    assert_eq!(HAWQ_ERR_ARENA_SIZE_MISMATCH as i32, 23);
    assert_eq!(HAWQ_ERR_SCRATCH_OVERLAP as i32, 25);
    assert_eq!(HAWQ_ERR_KERNEL_NOT_LINKED as i32, 26);
    assert_eq!(HAWQ_ERR_NOT_IN_PLACE as i32, 27);
    assert_eq!(HAWQ_ERR_NULL_POINTER as i32, 100);
    assert_eq!(HAWQ_ERR_BUFFERS_OVERLAP as i32, 105);
    // The runtime's own messages and ours agree on the first words of each error.
    let e = hawq_runtime::Error::ChecksumMismatch { expected: 1, computed: 2 };
    assert!(e.to_string().starts_with(HAWQ_ERR_CHECKSUM_MISMATCH.message().to_str().unwrap()));
}

/// The input helpers: an interleaved sample writes what the raw one writes (the digits model has
/// one channel, so both orders agree), an RGB565 frame into a one-channel model is a status, and
/// their pointer and length checks are hawq_write_input_raw's.
#[test]
fn the_input_helpers_write_what_the_rust_api_writes() {
    let blob = blob(8);
    let c = load(&blob);
    let it = Box::into_raw(c.it);
    for x in inputs(8) {
        // SAFETY (test): `it` is initialized; `x` lives through the calls.
        unsafe {
            assert_eq!(hawq_write_input_raw(it, x.as_ptr(), x.len()), HAWQ_OK);
            assert_eq!(hawq_invoke(it), HAWQ_OK);
            let want = output(&*it, 0).unwrap();
            assert_eq!(hawq_write_input_interleaved(it, x.as_ptr(), x.len()), HAWQ_OK);
            assert_eq!(hawq_invoke(it), HAWQ_OK);
            assert_eq!(output(&*it, 0).unwrap(), want);
        }
    }
    let frame = [0u8; 2 * 64];
    // SAFETY (test): as above; NULL and short arguments are the checks under test.
    unsafe {
        assert_eq!(hawq_write_input_rgb565(it, frame.as_ptr(), frame.len(), 0), HAWQ_ERR_SIZE_MISMATCH);
        assert_eq!(hawq_write_input_interleaved(it, ptr::null(), 64), HAWQ_ERR_NULL_POINTER);
        assert_eq!(hawq_write_input_interleaved(it, frame.as_ptr(), 63), HAWQ_ERR_SIZE_MISMATCH);
        assert_eq!(hawq_write_input_rgb565(ptr::null_mut(), frame.as_ptr(), frame.len(), 1), HAWQ_ERR_NULL_POINTER);
        drop(Box::from_raw(it));
    }
}

/// Writes `x`, runs the model once and reads output 0.
fn run(it: &mut HawqInterpreter, x: &[u8]) -> Vec<u8> {
    assert_eq!(unsafe { hawq_write_input_raw(it, x.as_ptr(), x.len()) }, HAWQ_OK);
    assert_eq!(unsafe { hawq_invoke(it) }, HAWQ_OK);
    output(it, 0).unwrap()
}

/// `hawq_interpreter_init_with_workspace` computes what `hawq_interpreter_init` computes, with
/// the weights laid out once at initialization and read from the workspace by every
/// `hawq_invoke`; its bad arguments are statuses.
#[test]
fn a_workspace_gives_the_same_outputs_and_every_invoke_reads_it() {
    let good = blob(8);
    let mut plain = load(&good);
    let model = &*plain.model as *const HawqModel;
    let needed = unsafe { hawq_workspace_bytes(model) };
    assert_eq!(needed, Model::from_bytes(&good).unwrap().host_workspace_bytes());
    assert_eq!(unsafe { hawq_workspace_bytes(ptr::null()) }, 0);
    let mut arena = vec![0u8; unsafe { hawq_arena_bytes(model) }];
    let mut workspace = vec![0x5Au8; needed + 16];
    let ws = workspace.as_mut_ptr();
    let mut it: HawqInterpreter = zeroed();
    let init = |arena: *mut u8, arena_len: usize, ws: *mut u8, ws_len: usize, it: &mut HawqInterpreter| unsafe {
        hawq_interpreter_init_with_workspace(model, arena, arena_len, ws, ws_len, it)
    };
    assert_eq!(init(arena.as_mut_ptr(), arena.len(), ws, needed, &mut it), HAWQ_OK);
    let xs = inputs(20);
    for x in &xs {
        assert_eq!(run(&mut it, x), run(&mut plain.it, x));
    }
    if needed == 0 {
        // No kernel of this machine lays weights out: no workspace at all will do.
        assert_eq!(init(arena.as_mut_ptr(), arena.len(), ptr::null_mut(), 0, &mut it), HAWQ_OK);
        assert_eq!(run(&mut it, &xs[0]), run(&mut plain.it, &xs[0]));
        return;
    }
    // Every invoke reads the laid-out weights there: scrambled past the first region's length
    // (the first layer's weights), they give other outputs.
    let (reference, kept) = (workspace[..needed].to_vec(), 4);
    for b in &mut workspace[kept..needed] {
        *b ^= 0xA5;
    }
    let changed = xs.iter().filter(|x| run(&mut it, x) != run(&mut plain.it, x)).count();
    assert!(changed > 0, "a scrambled workspace gave the same outputs: the invokes do not read it");
    workspace[..needed].copy_from_slice(&reference);
    for x in &xs[..3] {
        assert_eq!(run(&mut it, x), run(&mut plain.it, x), "the workspace restored");
    }
    // Another model loaded into the handle (4-bit weights: the same layout's size, other
    // values): the interpreter runs it without the stale layout until initialized again.
    let other = blob_with(4, 8);
    assert_eq!(unsafe { hawq_model_load(other.as_ptr(), other.len(), &mut *plain.model) }, HAWQ_OK);
    assert_eq!(unsafe { hawq_workspace_bytes(model) }, needed, "the same layout's size");
    for x in &xs {
        assert_eq!(run(&mut it, x), run(&mut plain.it, x), "another model loaded under the workspace");
    }
    assert_eq!(init(arena.as_mut_ptr(), arena.len(), ws, needed, &mut it), HAWQ_OK);
    for x in &xs[..3] {
        assert_eq!(run(&mut it, x), run(&mut plain.it, x), "initialized again for the other model");
    }

    let (a, n) = (arena.as_mut_ptr(), arena.len());
    let mut it2: HawqInterpreter = zeroed();
    assert_eq!(init(a, n, ws, needed - 1, &mut it2), HAWQ_ERR_SIZE_MISMATCH, "a workspace a byte short");
    assert_eq!(init(a, n, ptr::null_mut(), 0, &mut it2), HAWQ_ERR_SIZE_MISMATCH, "no workspace where one is needed");
    assert_eq!(init(a, n, ptr::null_mut(), needed, &mut it2), HAWQ_ERR_NULL_POINTER);
    assert_eq!(init(a, n, ws, usize::MAX, &mut it2), HAWQ_ERR_TOO_LARGE);
    assert_eq!(init(a, n, unsafe { a.add(n - 1) }, needed, &mut it2), HAWQ_ERR_BUFFERS_OVERLAP, "over the arena");
    let handle = (&mut it2 as *mut HawqInterpreter).cast::<u8>();
    assert_eq!(init(a, n, handle, needed, &mut it2), HAWQ_ERR_BUFFERS_OVERLAP, "over its own handle");
    assert_eq!(unsafe { hawq_invoke(&mut it2) }, HAWQ_ERR_NOT_LOADED, "a failed init leaves no interpreter");
}
