//! Static memory planning of the runtime's activation arena.
//!
//! Every activation buffer gets a fixed byte offset in one arena, chosen at compile time so that
//! buffers alive at the same time never overlap. The algorithm is the greedy-by-size planner of
//! TensorFlow Lite Micro (`GreedyMemoryPlanner`):
//!
//! 1. Buffers that must share storage (`alias_of`: a reshape's output is its input; an add may
//!    write over an input that dies at that add) are merged into one *region* (union-find over
//!    the alias links, so chains work) whose lifetime is the union of the members' lifetimes and
//!    whose size is the largest member's.
//! 2. Regions are sorted by size, largest first (ties: earlier `first_use` first, then lower
//!    buffer index, so the plan is deterministic). Placing big blocks first leaves the small ones
//!    to fill the gaps, which is what makes the greedy choice good in practice.
//! 3. Each region in turn is placed at the lowest aligned offset where it overlaps no
//!    already-placed region whose lifetime intersects its own: walk those conflicting regions in
//!    offset order and take the first gap that fits (or the end of the last one). Regions whose
//!    lifetimes are disjoint are free to reuse the same bytes.
//! 4. The arena size is the highest end offset, rounded up to the alignment.
//!
//! It is not optimal (the problem is NP-hard: dynamic storage allocation), but it is always
//! between the peak of simultaneously live bytes and the sum of all sizes, and on chain-like
//! networks it is usually at or near the peak.
//!
//! Lifetimes are inclusive op indices: a buffer occupies its bytes from `first_use`, the op that
//! writes it, through `last_use`, the last op that reads it. An op's inputs and output are
//! therefore live together at that op and never overlap unless aliased. The graph input is live
//! from op 0 (`first_use = 0`, it is written before the first op); the graph output is live
//! through the last op (`last_use` = the last op index), so the caller can read it afterwards.

use std::fmt::Write as _;

/// One activation buffer to place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    /// Bytes.
    pub size: usize,
    /// Index of the op that writes it (0 for the graph input); live from here, inclusive.
    pub first_use: usize,
    /// Index of the last op that reads it (the last op for the graph output); inclusive.
    pub last_use: usize,
    /// Share buffer `j`'s storage exactly (same offset): in-place reuse.
    pub alias_of: Option<usize>,
}

/// The placement: an offset per buffer (in the order given) and the arena size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub offsets: Vec<usize>,
    /// Total bytes, a multiple of `alignment`.
    pub arena_bytes: usize,
    /// Every offset is a multiple of this (kept so that [`check`] can verify it).
    pub alignment: usize,
}

/// Places `buffers` in an arena with every offset a multiple of `alignment` (see the module
/// comment for the algorithm).
///
/// # Panics
/// If `alignment` is 0, a buffer's `first_use > last_use`, or an `alias_of` is out of range:
/// these are bugs of the caller, not properties of the model.
pub fn plan(buffers: &[Buffer], alignment: usize) -> Plan {
    assert!(alignment > 0, "alignment must be at least 1");
    if let Err(message) = validate_buffers(buffers) {
        panic!("invalid buffers: {message}");
    }

    let mut regions = regions(buffers);
    regions.sort_by_key(|r| (std::cmp::Reverse(r.size), r.first_use, r.members[0]));

    let mut placed: Vec<(usize, &Region)> = Vec::with_capacity(regions.len());
    let mut offsets = vec![0; buffers.len()];
    let mut arena_bytes = 0;
    for region in &regions {
        let mut conflicts: Vec<(usize, usize)> = placed
            .iter()
            .filter(|(_, other)| {
                lifetimes_intersect((region.first_use, region.last_use), (other.first_use, other.last_use))
            })
            .filter(|(_, other)| other.size > 0)
            .map(|&(offset, other)| (offset, offset + other.size))
            .collect();
        conflicts.sort_unstable();

        // Conflicts come in offset order; everything processed so far ends at or before
        // `candidate`, so the first conflict starting at or after `candidate + size` (or none)
        // means the gap fits.
        let mut candidate = 0;
        if region.size > 0 {
            for &(start, end) in &conflicts {
                if candidate + region.size <= start {
                    break;
                }
                candidate = candidate.max(align_up(end, alignment));
            }
        }

        for &member in &region.members {
            offsets[member] = candidate;
        }
        arena_bytes = arena_bytes.max(candidate + region.size);
        placed.push((candidate, region));
    }

    Plan { offsets, arena_bytes: align_up(arena_bytes, alignment), alignment }
}

/// Verifies a plan: offsets aligned; every buffer inside the arena; buffers aliased to each other
/// (directly or through a chain) at the same offset; any two others whose lifetimes intersect in
/// disjoint byte ranges (empty buffers overlap nothing).
pub fn check(buffers: &[Buffer], plan: &Plan) -> Result<(), String> {
    validate_buffers(buffers)?;
    if plan.offsets.len() != buffers.len() {
        return Err(format!("plan has {} offsets for {} buffers", plan.offsets.len(), buffers.len()));
    }
    if plan.alignment == 0 {
        return Err("plan alignment is 0".into());
    }
    if !plan.arena_bytes.is_multiple_of(plan.alignment) {
        return Err(format!("arena size {} is not a multiple of the alignment {}", plan.arena_bytes, plan.alignment));
    }
    for (index, (buffer, &offset)) in buffers.iter().zip(&plan.offsets).enumerate() {
        if offset % plan.alignment != 0 {
            return Err(format!("buffer {index}: offset {offset} is not a multiple of {}", plan.alignment));
        }
        if offset + buffer.size > plan.arena_bytes {
            return Err(format!(
                "buffer {index}: [{offset}, {}) ends beyond the arena of {} bytes",
                offset + buffer.size,
                plan.arena_bytes
            ));
        }
    }

    let group = alias_roots(buffers);
    for i in 0..buffers.len() {
        for j in i + 1..buffers.len() {
            let (a, b) = (&buffers[i], &buffers[j]);
            let (offset_a, offset_b) = (plan.offsets[i], plan.offsets[j]);
            if group[i] == group[j] {
                if offset_a != offset_b {
                    return Err(format!("buffers {i} and {j} are aliased but at offsets {offset_a} and {offset_b}"));
                }
            } else if lifetimes_intersect((a.first_use, a.last_use), (b.first_use, b.last_use))
                && ranges_overlap((offset_a, a.size), (offset_b, b.size))
            {
                return Err(format!(
                    "buffers {i} [{offset_a}, {}) ops {}..={} and {j} [{offset_b}, {}) ops {}..={} overlap, both live",
                    offset_a + a.size,
                    a.first_use,
                    a.last_use,
                    offset_b + b.size,
                    b.first_use,
                    b.last_use
                ));
            }
        }
    }
    Ok(())
}

/// A readable dump of a plan, like TFLM's `PrintMemoryPlan`: one line per op index, the arena
/// drawn `width` characters wide with each live buffer's bytes marked by its symbol (`.` is free;
/// `!` marks bytes claimed by two live, non-aliased buffers, i.e. a broken plan), then a table of
/// the buffers. Symbols are `0-9a-zA-Z` by buffer index, repeating after 62. Where aliased buffers
/// are live together (the op that reuses the storage), the later buffer's symbol is shown.
/// `names` gives buffer names; missing ones are shown as `#index`.
pub fn ascii_map(buffers: &[Buffer], plan: &Plan, names: &[String], width: usize) -> String {
    const SYMBOLS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let width = width.max(1);
    let arena = plan.arena_bytes;
    let group = alias_roots(buffers);
    let symbol = |index: usize| SYMBOLS[index % SYMBOLS.len()] as char;
    let name = |index: usize| names.get(index).cloned().unwrap_or_else(|| format!("#{index}"));
    let last_op = buffers.iter().map(|b| b.last_use).max();

    let mut out = String::new();
    let bytes_per_column = arena.div_ceil(width).max(1);
    let _ = writeln!(
        out,
        "arena {arena} bytes, alignment {}, {} buffers; one column ~ {bytes_per_column} bytes",
        plan.alignment,
        buffers.len()
    );

    for op in 0..=last_op.unwrap_or(0) {
        if last_op.is_none() {
            break;
        }
        let live: Vec<(usize, usize, usize)> = buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.size > 0 && b.first_use <= op && op <= b.last_use)
            .map(|(index, b)| (index, plan.offsets.get(index).copied().unwrap_or(0), b.size))
            .collect();
        let columns_of = |offset: usize, size: usize| {
            let first = scale_down(offset, width, arena).min(width - 1);
            first..scale_up(offset + size, width, arena).clamp(first + 1, width)
        };
        // Buffers in index order, so among aliased buffers the later one is drawn on top. A
        // column shared by two adjacent buffers shows the later one; only bytes that really
        // overlap are marked as a conflict.
        let mut bar = vec!['.'; if arena == 0 { 0 } else { width }];
        if arena > 0 {
            for &(index, offset, size) in &live {
                bar[columns_of(offset, size)].fill(symbol(index));
            }
            for (position, &(a, offset_a, size_a)) in live.iter().enumerate() {
                for &(b, offset_b, size_b) in &live[position + 1..] {
                    if group[a] != group[b] && ranges_overlap((offset_a, size_a), (offset_b, size_b)) {
                        let start = offset_a.max(offset_b);
                        let end = (offset_a + size_a).min(offset_b + size_b);
                        bar[columns_of(start, end - start)].fill('!');
                    }
                }
            }
        }
        let bar: String = bar.into_iter().collect();
        let _ = writeln!(out, "op {op:>4} |{bar}| {:>9} B live", live_bytes_at(buffers, &group, op));
    }

    let _ = writeln!(out);
    let name_width = (0..buffers.len()).map(|i| name(i).len()).max().unwrap_or(0).max(4);
    let _ = writeln!(out, "sym  {:<name_width$}  {:>9}  {:>9}  {:>9}  ops      alias", "name", "offset", "size", "end");
    for (index, buffer) in buffers.iter().enumerate() {
        let offset = plan.offsets.get(index).copied().unwrap_or(0);
        let alias = buffer.alias_of.map(|j| format!("= {}", name(j))).unwrap_or_default();
        let lifetime = format!("{}..={}", buffer.first_use, buffer.last_use);
        let _ = writeln!(
            out,
            "{}    {:<name_width$}  {offset:>9}  {:>9}  {:>9}  {lifetime:<8} {alias}",
            symbol(index),
            name(index),
            buffer.size,
            offset + buffer.size,
        );
    }
    out
}

/// Bytes that must be distinct at op `op`: per alias group, its largest member live then.
fn live_bytes_at(buffers: &[Buffer], group: &[usize], op: usize) -> usize {
    let mut largest_per_group = vec![0usize; buffers.len()];
    for (index, buffer) in buffers.iter().enumerate() {
        if buffer.first_use <= op && op <= buffer.last_use {
            largest_per_group[group[index]] = largest_per_group[group[index]].max(buffer.size);
        }
    }
    largest_per_group.iter().sum()
}

/// A set of buffers placed together.
#[derive(Debug)]
struct Region {
    /// Buffer indices, ascending.
    members: Vec<usize>,
    size: usize,
    first_use: usize,
    last_use: usize,
}

fn regions(buffers: &[Buffer]) -> Vec<Region> {
    let group = alias_roots(buffers);
    let mut by_root: Vec<Option<Region>> = (0..buffers.len()).map(|_| None).collect();
    for (index, buffer) in buffers.iter().enumerate() {
        let region = by_root[group[index]].get_or_insert(Region {
            members: Vec::new(),
            size: 0,
            first_use: buffer.first_use,
            last_use: buffer.last_use,
        });
        region.members.push(index);
        region.size = region.size.max(buffer.size);
        region.first_use = region.first_use.min(buffer.first_use);
        region.last_use = region.last_use.max(buffer.last_use);
    }
    by_root.into_iter().flatten().collect()
}

/// The alias group of each buffer, named by its smallest member. Assumes valid `alias_of`.
fn alias_roots(buffers: &[Buffer]) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..buffers.len()).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for (index, buffer) in buffers.iter().enumerate() {
        if let Some(target) = buffer.alias_of.filter(|&t| t < buffers.len()) {
            let (a, b) = (find(&mut parent, index), find(&mut parent, target));
            // The smaller index becomes the root, so roots are stable and readable.
            let (root, child) = (a.min(b), a.max(b));
            parent[child] = root;
        }
    }
    (0..buffers.len()).map(|i| find(&mut parent, i)).collect()
}

fn validate_buffers(buffers: &[Buffer]) -> Result<(), String> {
    for (index, buffer) in buffers.iter().enumerate() {
        if buffer.first_use > buffer.last_use {
            return Err(format!("buffer {index}: first_use {} after last_use {}", buffer.first_use, buffer.last_use));
        }
        if let Some(target) = buffer.alias_of {
            if target >= buffers.len() {
                return Err(format!("buffer {index}: alias_of {target} out of range ({} buffers)", buffers.len()));
            }
        }
    }
    Ok(())
}

fn lifetimes_intersect((first_a, last_a): (usize, usize), (first_b, last_b): (usize, usize)) -> bool {
    first_a <= last_b && first_b <= last_a
}

fn ranges_overlap((offset_a, size_a): (usize, usize), (offset_b, size_b): (usize, usize)) -> bool {
    size_a > 0 && size_b > 0 && offset_a < offset_b + size_b && offset_b < offset_a + size_a
}

fn align_up(value: usize, alignment: usize) -> usize {
    value.div_ceil(alignment) * alignment
}

/// `value * width / total`, rounded down, without overflow for any arena size.
fn scale_down(value: usize, width: usize, total: usize) -> usize {
    (value as u128 * width as u128 / total as u128) as usize
}

fn scale_up(value: usize, width: usize, total: usize) -> usize {
    (value as u128 * width as u128).div_ceil(total as u128) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn buffer(size: usize, first_use: usize, last_use: usize) -> Buffer {
        Buffer { size, first_use, last_use, alias_of: None }
    }

    /// The lower bound any valid plan must reach: at the busiest op, the sum over alias groups
    /// of the group's largest live member.
    fn peak_live_bytes(buffers: &[Buffer]) -> usize {
        let group = alias_roots(buffers);
        let last_op = buffers.iter().map(|b| b.last_use).max().unwrap_or(0);
        (0..=last_op).map(|op| live_bytes_at(buffers, &group, op)).max().unwrap_or(0)
    }

    fn buffers_strategy() -> impl Strategy<Value = Vec<Buffer>> {
        prop::collection::vec(
            (0usize..1000, 0usize..20, 0usize..8, prop::option::weighted(0.2, any::<prop::sample::Index>())),
            0..30,
        )
        .prop_map(|specs| {
            specs
                .iter()
                .enumerate()
                .map(|(index, &(size, first_use, duration, alias))| Buffer {
                    size,
                    first_use,
                    last_use: first_use + duration,
                    // Aliases point backwards, like reshape/add outputs to their inputs.
                    alias_of: alias.filter(|_| index > 0).map(|target| target.index(index)),
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn plan_is_valid_and_within_bounds(
            buffers in buffers_strategy(),
            alignment in prop::sample::select(vec![1usize, 4, 16]),
        ) {
            let plan = plan(&buffers, alignment);
            prop_assert_eq!(check(&buffers, &plan), Ok(()));
            let sum_of_sizes: usize = buffers.iter().map(|b| align_up(b.size, alignment)).sum();
            prop_assert!(plan.arena_bytes <= sum_of_sizes, "arena {} > sum {}", plan.arena_bytes, sum_of_sizes);
            prop_assert!(plan.arena_bytes >= peak_live_bytes(&buffers));
            // The map must not panic on anything the planner produces.
            let names: Vec<String> = (0..buffers.len()).map(|i| format!("t{i}")).collect();
            let map = ascii_map(&buffers, &plan, &names, 40);
            prop_assert!(!map.contains('!'), "valid plan drawn with a conflict:\n{}", map);
        }

        #[test]
        fn check_rejects_moved_buffer(buffers in buffers_strategy()) {
            let mut plan = plan(&buffers, 1);
            let group = alias_roots(&buffers);
            // Find two live-together, non-aliased, non-empty buffers and put one on top of the other.
            let pair = (0..buffers.len())
                .flat_map(|i| (0..buffers.len()).map(move |j| (i, j)))
                .find(|&(i, j)| {
                    let (a, b) = (&buffers[i], &buffers[j]);
                    i != j
                        && group[i] != group[j]
                        && a.size > 0
                        && b.size > 0
                        && lifetimes_intersect((a.first_use, a.last_use), (b.first_use, b.last_use))
                        && buffers.iter().enumerate().all(|(k, _)| k == i || group[k] != group[i])
                });
            if let Some((moved, onto)) = pair {
                plan.offsets[moved] = plan.offsets[onto];
                plan.arena_bytes = plan.arena_bytes.max(plan.offsets[moved] + buffers[moved].size);
                prop_assert!(check(&buffers, &plan).is_err());
            }
        }
    }

    #[test]
    fn chain_of_three_packs_into_two_slots() {
        let buffers = [buffer(100, 0, 1), buffer(100, 1, 2), buffer(100, 2, 3)];
        for alignment in [1, 4] {
            let plan = plan(&buffers, alignment);
            assert_eq!(check(&buffers, &plan), Ok(()));
            assert_eq!(plan.arena_bytes, 200);
            assert_eq!(plan.offsets[0], plan.offsets[2], "first and third buffer share storage");
        }
    }

    #[test]
    fn alignment_rounds_offsets_and_arena() {
        let buffers = [buffer(10, 0, 1), buffer(10, 0, 1), buffer(3, 0, 1)];
        let plan = plan(&buffers, 16);
        assert_eq!(check(&buffers, &plan), Ok(()));
        assert!(plan.offsets.iter().all(|o| o % 16 == 0));
        assert_eq!(plan.arena_bytes, 48);
    }

    #[test]
    fn aliases_share_offsets_and_union_lifetimes() {
        // 0: conv output, 1: reshape of 0 (aliased), 2: fc output read with nothing else,
        // 3: unrelated buffer live at op 3 while 1 is still live, so it must not land on 0/1.
        let buffers = [
            buffer(64, 0, 1),
            Buffer { size: 64, first_use: 1, last_use: 3, alias_of: Some(0) },
            buffer(32, 3, 4),
            buffer(64, 2, 3),
        ];
        let plan = plan(&buffers, 1);
        assert_eq!(check(&buffers, &plan), Ok(()));
        assert_eq!(plan.offsets[0], plan.offsets[1]);
        assert_ne!(plan.offsets[3], plan.offsets[0]);
    }

    #[test]
    fn in_place_add_reuses_dying_input() {
        // op 0 writes a; op 1 writes b (reads a); op 2: c = a + b in place of b; op 3 reads c.
        let buffers =
            [buffer(100, 0, 2), buffer(100, 1, 2), Buffer { size: 100, first_use: 2, last_use: 3, alias_of: Some(1) }];
        let plan = plan(&buffers, 1);
        assert_eq!(check(&buffers, &plan), Ok(()));
        assert_eq!(plan.offsets[1], plan.offsets[2]);
        assert_eq!(plan.arena_bytes, 200);
    }

    #[test]
    fn check_rejects_broken_plans() {
        let buffers =
            [buffer(100, 0, 1), buffer(100, 1, 2), Buffer { size: 50, first_use: 2, last_use: 3, alias_of: Some(1) }];
        let good = plan(&buffers, 4);
        assert_eq!(check(&buffers, &good), Ok(()));

        let mut overlapping = good.clone();
        overlapping.offsets[1] = overlapping.offsets[0] + 40;
        overlapping.offsets[2] = overlapping.offsets[1];
        overlapping.arena_bytes = 400;
        assert!(check(&buffers, &overlapping).unwrap_err().contains("overlap"));
        assert!(ascii_map(&buffers, &overlapping, &[], 40).contains('!'), "the map flags the overlap");

        let mut split_alias = good.clone();
        split_alias.offsets[2] = split_alias.offsets[0];
        assert!(check(&buffers, &split_alias).unwrap_err().contains("aliased"));

        let mut misaligned = good.clone();
        misaligned.offsets = misaligned.offsets.iter().map(|o| o + 2).collect();
        misaligned.arena_bytes += 4;
        assert!(check(&buffers, &misaligned).unwrap_err().contains("multiple"));

        let mut too_small = good.clone();
        too_small.arena_bytes = 100;
        assert!(check(&buffers, &too_small).unwrap_err().contains("beyond the arena"));

        let mut short = good;
        short.offsets.pop();
        assert!(check(&buffers, &short).is_err());
    }

    #[test]
    fn empty_and_zero_sized_buffers() {
        assert_eq!(plan(&[], 8), Plan { offsets: vec![], arena_bytes: 0, alignment: 8 });
        let buffers = [buffer(0, 0, 5), buffer(8, 0, 5)];
        let plan = plan(&buffers, 8);
        assert_eq!(check(&buffers, &plan), Ok(()));
        assert_eq!(plan.arena_bytes, 8);
        assert!(ascii_map(&buffers, &plan, &[], 10).contains("#1"));
    }

    #[test]
    #[should_panic(expected = "alias_of 7 out of range")]
    fn plan_panics_on_bad_alias() {
        plan(&[Buffer { size: 1, first_use: 0, last_use: 0, alias_of: Some(7) }], 1);
    }

    #[test]
    fn ascii_map_draws_lifetimes_and_table() {
        let buffers = [buffer(100, 0, 1), buffer(100, 1, 2), buffer(100, 2, 3)];
        let plan = plan(&buffers, 1);
        let names: Vec<String> = ["input", "conv1", "conv2"].iter().map(|s| s.to_string()).collect();
        let map = ascii_map(&buffers, &plan, &names, 20);
        let lines: Vec<&str> = map.lines().collect();
        assert!(lines[0].starts_with("arena 200 bytes"));
        // Op 1: buffers 0 and 1 fill the arena; op 3: only buffer 2 in its half.
        assert_eq!(lines[2], format!("op    1 |{}{}|       200 B live", "0".repeat(10), "1".repeat(10)));
        assert_eq!(lines[4], format!("op    3 |{}{}|       100 B live", "2".repeat(10), ".".repeat(10)));
        assert!(map.contains("conv2"));
        assert!(map.lines().any(|l| l.contains("conv1") && l.contains("1..=2")));
    }
}
