//! Inference across threads on hosts (the `threads` feature).
//!
//! A convolution's or depthwise convolution's output rows are split into bands, one per thread,
//! each run by the same kernel as a window of its own: the input rows its outputs read, the
//! padding above them, and a scratch of its own (the first band the op's scratch in the arena,
//! the others [`Threads`]'). An output byte depends only on its receptive field, so every band's
//! bytes are the ones a single thread writes: results are bit-identical for any thread count.
//! Every other op, layers below [`Threads::min_macs`], and layers with 4-bit activations (whose
//! rows need not end on a byte) run on the calling thread as in [`Interpreter::invoke`].
//!
//! The calling thread runs the inference and the first band of each split layer; the pool's
//! threads take the others. Waking a sleeping thread costs tens of microseconds on a VM (as long
//! as a layer; handing a whole inference to a pool thread, `ThreadPool::install`, cost 22 µs
//! here), so the pool's threads stay awake while inferences come (each spins for work, taking
//! jobs as they arrive, and sleeps after [`AWAKE`] without any).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use std::vec::Vec;

use super::{
    conv_window, format, linked_weight_bits, run_op, split_with_scratch, weighted_layer, Interpreter, Prepared,
};
use crate::error::Error;
use crate::format::{DType, Op, Tensors};
use crate::kernels::linked::{self, has};
use crate::kernels::{self as k, Window};
use crate::model::Model;

/// The threads that help the calling thread, and their scratch, for
/// [`Interpreter::invoke_threads`]. Create it once per model (it sizes the scratch from the
/// model's layers) and reuse it for every inference.
pub struct Threads {
    /// `threads − 1` threads (none for one thread).
    pool: Option<rayon::ThreadPool>,
    threads: usize,
    /// The scratch of the bands after the first, one per pool thread.
    scratch: Vec<Vec<u8>>,
    min_macs: u64,
    /// Per pool thread: is it spinning for work ([`keep_awake`])?
    awake: Arc<[AtomicBool]>,
    /// Set when the `Threads` is dropped: the spinning threads go back to sleep.
    dropped: Arc<AtomicBool>,
}

/// Below this many multiply-accumulates a layer runs on one thread. A split costs more than the
/// pool's hand-off (about 1 µs a layer here): the next layer reads the rows the other core wrote
/// from that core's cache. Measured on a 2-core AVX-512 VM (`bench_invoke --threads 2
/// --min-macs M`, 2026-12-05): at 50,000 dscnn-kws took 33.8 µs against 24.5 µs on one thread
/// and resnet8 57.4 against 58.8 (its 131,000-MAC 1×1 layers lost ~4 µs each); at 1,000,000
/// dscnn 23.4 and resnet8 50.0. On another machine of the same kind 72,000-MAC layers gained
/// (`Threads::min_macs` sets it).
const MIN_MACS: u64 = 1_000_000;

/// How long a pool thread spins without work before it sleeps.
const AWAKE: Duration = Duration::from_micros(500);

impl Threads {
    /// `threads` threads in all (the caller's included; at least 1) for `model`'s layers. Fails
    /// only if the operating system cannot start the threads.
    pub fn new(model: &Model<'_>, threads: usize) -> std::io::Result<Threads> {
        let threads = threads.max(1);
        let pool = match threads {
            1 => None,
            n => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n - 1)
                    .thread_name(|i| std::format!("hawq-{}", i + 1))
                    .build()
                    .map_err(std::io::Error::other)?,
            ),
        };
        let tensors = model.tensors();
        let largest = model
            .ops()
            .filter_map(|op| match op.ok()? {
                Op::Conv2d(p) | Op::DepthwiseConv2d(p) => {
                    let (input, output) = (tensors.get(p.input as usize)?, tensors.get(p.output as usize)?);
                    let g = conv_window(&p, &input, &output);
                    let bits = crate::quant::Bits::from_u8(p.weight_bits)?;
                    Some(scratch_bytes(&g, bits, format(&input).bits, matches!(op, Ok(Op::Conv2d(_)))))
                }
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let scratch = (1..threads).map(|_| std::vec![0u8; largest]).collect();
        let awake = (1..threads).map(|_| AtomicBool::new(false)).collect();
        Ok(Threads { pool, threads, scratch, min_macs: MIN_MACS, awake, dropped: Arc::new(AtomicBool::new(false)) })
    }

    /// Splits only layers of at least `macs` multiply-accumulates (default 1,000,000); 0 splits
    /// every layer of two output rows or more.
    pub fn min_macs(mut self, macs: u64) -> Threads {
        self.min_macs = macs;
        self
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Makes sure every pool thread is spinning for work (a thread that already is returns at
    /// once from the job this hands it).
    fn wake(&self) {
        let Some(pool) = &self.pool else { return };
        if self.awake.iter().all(|a| a.load(Ordering::Relaxed)) {
            return;
        }
        let (awake, dropped) = (self.awake.clone(), self.dropped.clone());
        pool.spawn_broadcast(move |ctx| {
            let me = &awake[ctx.index()];
            if !me.swap(true, Ordering::AcqRel) {
                keep_awake(&dropped);
                me.store(false, Ordering::Release);
            }
        });
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::Release);
    }
}

/// Runs the pool's jobs as they come until none came for [`AWAKE`] or the [`Threads`] is gone.
fn keep_awake(dropped: &AtomicBool) {
    let mut last = Instant::now();
    let mut idle = 0u32;
    while !dropped.load(Ordering::Acquire) {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            idle = 0;
        } else {
            // The clock now and then: reading it every turn was a tenth of this thread's time.
            idle += 1;
            if idle.is_multiple_of(64) {
                if idle == 64 {
                    last = Instant::now();
                } else if last.elapsed() > AWAKE {
                    return;
                }
            }
            core::hint::spin_loop();
        }
    }
}

fn scratch_bytes(g: &Window, bits: crate::quant::Bits, in_bits: crate::quant::Bits, conv: bool) -> usize {
    if conv {
        k::conv2d_scratch_bytes(g, bits, in_bits)
    } else {
        k::depthwise_conv2d_scratch_bytes(g, bits, in_bits)
    }
}

impl<'m, 'a, const KERNELS: u32> Interpreter<'m, 'a, KERNELS> {
    /// [`Interpreter::invoke`] with `threads`: the same output bytes, the large convolutions'
    /// rows computed at once by the calling thread and the pool's. `threads` must have been made
    /// for this interpreter's model (for another one a layer whose bands would need more scratch
    /// than it holds runs on one thread).
    pub fn invoke_threads(&mut self, threads: &mut Threads) -> Result<(), Error> {
        threads.wake();
        let Threads { pool, scratch, min_macs, .. } = threads;
        let (scratch, min_macs) = (&mut scratch[..], *min_macs);
        let tensors = self.model.tensors();
        let mut at = 0;
        for (index, op) in self.model.linked_ops::<KERNELS>().enumerate() {
            let op = op?;
            let prepared = self.prepared_at(&op, &mut at);
            let split = match pool {
                Some(pool) => in_bands::<KERNELS>(pool, &op, tensors, self.arena, prepared, scratch, min_macs),
                None => false,
            };
            if !split {
                run_op::<KERNELS>(&op, index as u16, tensors, self.arena, prepared)?;
            }
        }
        Ok(())
    }
}

/// Output rows `a..b` of `g` as a window of their own, with the first input row it reads: the
/// rows those outputs read (none past the input) and the padding above them.
fn band(g: &Window, a: usize, b: usize) -> (Window, usize) {
    // The first row read, counted from the top of the padding.
    let top = a * g.stride_h;
    let first = top.saturating_sub(g.pad_top);
    let end = ((b - 1) * g.stride_h + g.kernel_h).saturating_sub(g.pad_top).min(g.in_h);
    let w = Window { in_h: end.saturating_sub(first), out_h: b - a, pad_top: g.pad_top.saturating_sub(top), ..*g };
    (w, first)
}

/// Runs a convolution or depthwise convolution of 8-bit activations in bands of rows across the
/// pool; `false` (nothing run) for any other op or a layer too small to split, which the caller
/// then runs as usual (and which reports any error).
fn in_bands<const K: u32>(
    pool: &rayon::ThreadPool,
    op: &Op<'_>,
    tensors: Tensors<'_>,
    arena: &mut [u8],
    prepared: Prepared<'_>,
    extra: &mut [Vec<u8>],
    min_macs: u64,
) -> bool {
    let (Op::Conv2d(p) | Op::DepthwiseConv2d(p)) = op else { return false };
    let conv = matches!(op, Op::Conv2d(_));
    let kind = if conv { linked::CONV2D } else { linked::DEPTHWISE_CONV2D };
    let (Some(input), Some(output)) = (tensors.get(p.input as usize), tensors.get(p.output as usize)) else {
        return false;
    };
    let Some(bits) = linked_weight_bits::<K>(p.weight_bits) else { return false };
    if !has(K, kind) || input.dtype != DType::I8 || output.dtype != DType::I8 {
        return false;
    }
    let g = conv_window(p, &input, &output);
    let per_row = (g.out_w * g.out_c * g.kernel_h * g.kernel_w * if conv { g.in_c } else { 1 }) as u64;
    let bands = (extra.len() + 1).min(g.out_h);
    if bands < 2 || per_row * (g.out_h as u64) < min_macs {
        return false;
    }
    let rows = g.out_h.div_ceil(bands);
    let bands = g.out_h.div_ceil(rows);
    let in_fmt = format(&input);
    // Every band must read some input and fit its scratch, or the layer runs whole.
    let fits = (0..bands).all(|i| {
        let (w, _) = band(&g, i * rows, ((i + 1) * rows).min(g.out_h));
        let room = if i == 0 { scratch_bytes(&g, bits, in_fmt.bits, conv) } else { extra[i - 1].len() };
        w.in_h > 0 && scratch_bytes(&w, bits, in_fmt.bits, conv) <= room
    });
    if !fits {
        return false;
    }
    let bytes = scratch_bytes(&g, bits, in_fmt.bits, conv);
    let Some((src, dst, first_scratch)) = split_with_scratch(arena, &input, &output, p.scratch, bytes) else {
        return false;
    };
    let layer = weighted_layer(p.weights, bits, &p.channel, p.clamp, [&input, &output], prepared);
    let line = g.in_w * g.in_c;
    let run = |i: usize, dst: &mut [u8], scratch: &mut [u8]| {
        let (w, first) = band(&g, i * rows, ((i + 1) * rows).min(g.out_h));
        let src = &src[first * line..(first + w.in_h) * line];
        if conv {
            k::conv2d::<K>(&w, &layer, src, dst, scratch);
        } else {
            k::depthwise_conv2d::<K>(&w, &layer, src, dst, scratch);
        }
    };
    let mut outs = dst.chunks_mut(rows * g.out_w * g.out_c);
    let Some(first_out) = outs.next() else { return false };
    // The other bands to the pool, the first here. The calling thread then spins until the
    // others are done: waiting at the scope's end instead would put it to sleep, and its wake-up
    // cost more than a band (a context switch each way, most of the gain of a second thread).
    let finished = AtomicUsize::new(0);
    pool.in_place_scope(|s| {
        for (i, (out, scratch)) in outs.zip(extra.iter_mut()).enumerate() {
            let (run, finished) = (&run, &finished);
            s.spawn(move |_| {
                run(i + 1, out, scratch);
                finished.fetch_add(1, Ordering::Release);
            });
        }
        run(0, first_out, first_scratch);
        while finished.load(Ordering::Acquire) < bands - 1 {
            core::hint::spin_loop();
        }
    });
    true
}
