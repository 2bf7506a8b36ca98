//! How a task names its function across processes.
//!
//! - A function with no state (a `fn` item, a closure that captures nothing: a zero-sized type
//!   without drop glue) travels as the distance, from an anchor function of the library, of its
//!   monomorphized trampoline [`run_zst::<F, T, R>`]. Every worker runs the parent's own
//!   executable (checked when it starts, `sys::executable_identity`), so the distance names the
//!   same code there, under every start method. The trampoline makes the function's value from
//!   nothing, which is sound for a zero-sized type without drop glue: it has a single value.
//! - A closure with state is kept in this process's table, under a number; a worker forked
//!   after it was added has a copy of the table and runs it by number. Workers under spawn and
//!   forkserver never see the table: there a closure with state is refused.
//! - A registered entry (`pifork::register`) travels by name.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::items::Items;
use crate::message::{self, Message};
use crate::sys;

/// Kind of a [`FuncRef`]: code distance.
pub(crate) const KIND_CODE: u8 = 0;
/// Kind of a [`FuncRef`]: registered entry.
pub(crate) const KIND_ENTRY: u8 = 1;
/// Kind of a [`FuncRef`]: closure table slot.
pub(crate) const KIND_CLOSURE: u8 = 2;

/// A function as it travels to a worker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FuncRef {
    /// `KIND_CODE`, `KIND_ENTRY` or `KIND_CLOSURE`.
    pub kind: u8,
    /// The code distance, or the closure's number.
    pub value: i64,
    /// The entry's name.
    pub name: String,
}

impl Message for FuncRef {
    fn encode(&self, out: &mut Vec<u8>) {
        self.kind.encode(out);
        self.value.encode(out);
        self.name.encode(out);
    }
    fn decode(input: &mut &[u8]) -> crate::error::Result<Self> {
        let (kind, value, name) = <(u8, i64, String)>::decode(input)?;
        Ok(FuncRef { kind, value, name })
    }
}

/// Runs a registered entry by name on encoded arguments (given to the worker by the entry
/// registry, which this module must not name).
pub(crate) type EntryRunner<'a> = &'a dyn Fn(&str, &[u8]) -> Result<Vec<u8>, String>;

/// Tasks' encoded arguments, one after the other.
pub(crate) type Args<'a, 'b> = &'a mut Items<'b>;

/// Where the values written end: `(end, count)`, `count` values of one length that end at
/// `end` in the output (one entry for a run of numbers, not one each).
pub(crate) type Ends = Vec<(usize, u32)>;

/// A stored closure: for each argument decodes, runs, encodes (as a [`sys::Trampoline`]).
pub(crate) type Stored =
    Arc<dyn Fn(Args<'_, '_>, &mut Vec<u8>, &mut Ends) -> Result<(), String> + Send + Sync>;

static CLOSURES: Mutex<BTreeMap<u64, Stored>> = Mutex::new(BTreeMap::new());
static NEXT_CLOSURE: AtomicU64 = AtomicU64::new(0);

/// The number the next closure gets: a worker forked now can run every closure below it.
pub(crate) fn closure_generation() -> u64 {
    NEXT_CLOSURE.load(Ordering::Acquire)
}

/// Removes a closure from the table (its job is over).
pub(crate) fn forget_closure(id: u64) {
    CLOSURES.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
}

/// The closure under `id`, in a worker.
pub(crate) fn stored_closure(id: u64) -> Option<Stored> {
    CLOSURES.lock().unwrap_or_else(|e| e.into_inner()).get(&id).cloned()
}

/// Runs a function value made from nothing (see the module docs) on encoded arguments, one
/// after the other (a [`sys::Trampoline`]).
fn run_zst<F: Fn(T) -> R, T: Message, R: Message>(
    args: Args<'_, '_>,
    out: &mut Vec<u8>,
    ends: &mut Ends,
) -> Result<(), String> {
    #[allow(unsafe_code)] // a zero-sized function value (see sys/mod.rs)
    // SAFETY: `Func::new` stores this trampoline only for an `F` that is zero-sized and has no
    // drop glue, and it held a value of `F` (so `F` is inhabited).
    let f: F = unsafe { sys::conjure_zst::<F>() };
    run_each(&f, args, out, ends)
}

/// `f` on each argument, its encoded value appended to `out` and `out`'s length to `ends`.
#[inline(always)]
fn run_each<F: Fn(T) -> R, T: Message, R: Message>(
    f: &F,
    args: Args<'_, '_>,
    out: &mut Vec<u8>,
    ends: &mut Ends,
) -> Result<(), String> {
    // Arguments of one fixed size (numbers, tuples of them): a tight loop over the batch,
    // room made for all its values at once.
    if let Some(size) = T::SIZE
        && size > 0
        && args.same_size() == Some(size)
    {
        if let Some(r) = R::SIZE
            && r > 0
        {
            return run_fixed(f, args, out, ends, size, r);
        }
        let mut run = Run { ends, end: out.len(), size: 0, count: 0 };
        while let Some(bytes) = args.next_fixed(size) {
            let arg = message::from_bytes::<T>(bytes).map_err(|e| e.to_string())?;
            f(arg).encode(out);
            run.wrote(out.len());
        }
        return Ok(());
    }
    while let Some(bytes) = args.next_task() {
        let arg = message::from_bytes::<T>(bytes).map_err(|e| e.to_string())?;
        f(arg).encode(out);
        ends.push((out.len(), 1));
    }
    Ok(())
}

/// `f` on a batch of arguments of `size` bytes each, its values of `r` bytes each written in
/// place, one pass over the batch: the loop a map of numbers spends its time in. The values
/// before a task that fails or panics stay, that task is taken, and the panic goes on.
#[inline(always)]
fn run_fixed<F: Fn(T) -> R, T: Message, R: Message>(
    f: &F,
    args: Args<'_, '_>,
    out: &mut Vec<u8>,
    ends: &mut Ends,
    size: usize,
    r: usize,
) -> Result<(), String> {
    let n = args.ready().min(u32::MAX as usize);
    let Some(batch) = args.peek_fixed(size, n) else { return Ok(()) };
    let start = out.len();
    // Values are written a block at a time through a buffer that stays in cache, not into
    // room zeroed first. The block's values are kept when a task fails or panics.
    let mut block = [0u8; BLOCK];
    let per = (BLOCK / r).max(1);
    let (mut done, mut held) = (0, 0);
    let ran = catch_unwind(AssertUnwindSafe(|| {
        if r > BLOCK {
            for arg in batch.chunks_exact(size) {
                let arg = message::from_bytes::<T>(arg).map_err(|e| e.to_string())?;
                let at = out.len();
                out.resize(at + r, 0);
                f(arg).encode_fixed(&mut out[at..]);
                done += 1;
            }
            return Ok(());
        }
        for args in batch.chunks(per * size) {
            for (arg, slot) in args.chunks_exact(size).zip(block.chunks_exact_mut(r)) {
                let arg = message::from_bytes::<T>(arg).map_err(|e| e.to_string())?;
                f(arg).encode_fixed(slot);
                held += 1;
            }
            out.extend_from_slice(&block[..held * r]);
            done += held;
            held = 0;
        }
        Ok(())
    }));
    out.extend_from_slice(&block[..held * r]);
    done += held;
    out.truncate(start + done * r);
    if done > 0 {
        ends.push((out.len(), done as u32));
    }
    let finished = matches!(ran, Ok(Ok(())));
    args.skip_fixed(size, if finished { done } else { done + 1 });
    match ran {
        Ok(result) => result,
        Err(payload) => resume_unwind(payload),
    }
}

/// The buffer [`run_fixed`] writes values in, a block at a time.
const BLOCK: usize = 4096;

/// Values of one length written in a row: noted in the ends as one entry when the length
/// changes and when it drops, also while a task's panic unwinds (the values before it stay).
struct Run<'a> {
    ends: &'a mut Ends,
    /// Where the last value ends.
    end: usize,
    size: usize,
    count: u32,
}

impl Run<'_> {
    /// One more value, ending at `end`.
    #[inline(always)]
    fn wrote(&mut self, end: usize) {
        let size = end - self.end;
        if self.count == 0 || size != self.size || self.count == u32::MAX {
            self.note();
            self.size = size;
        }
        self.count += 1;
        self.end = end;
    }

    /// Notes the values of the run so far.
    fn note(&mut self) {
        if self.count > 0 {
            self.ends.push((self.end, self.count));
            self.count = 0;
        }
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        self.note();
    }
}

/// A function a pool runs: `fn(T) -> R`, a closure, or a registered entry.
pub struct Func<T, R> {
    pub(crate) wire: Wire,
    _t: PhantomData<fn(T) -> R>,
}

impl<T, R> Clone for Func<T, R> {
    fn clone(&self) -> Self {
        Func { wire: self.wire.clone(), _t: PhantomData }
    }
}

/// What a `Func` is, before it is given a closure number.
#[derive(Clone)]
pub(crate) enum Wire {
    /// Code distance of a trampoline.
    Code(i64),
    /// A registered entry, by name.
    Entry(String),
    /// A closure with state, not yet in the table.
    Closure(Stored),
}

impl<T: Message + 'static, R: Message + 'static> Func<T, R> {
    /// A function: a `fn` item or a closure that captures nothing runs under every start
    /// method; a closure that captures state runs on forked workers only.
    pub fn new<F: Fn(T) -> R + Send + Sync + 'static>(f: F) -> Self {
        let wire = if std::mem::size_of::<F>() == 0 && !std::mem::needs_drop::<F>() {
            Wire::Code(sys::trampoline_offset(run_zst::<F, T, R>))
        } else {
            Wire::Closure(Arc::new(
                move |args: Args<'_, '_>, out: &mut Vec<u8>, ends: &mut Ends| {
                    run_each(&f, args, out, ends)
                },
            ))
        };
        Func { wire, _t: PhantomData }
    }

    /// The entry point registered under `name` (see [`crate::register`]), taking `T`, giving `R`.
    pub fn entry(name: &str) -> Self {
        Func { wire: Wire::Entry(name.to_string()), _t: PhantomData }
    }

    /// Whether this function can run on spawned (and forkserver) workers.
    pub fn travels(&self) -> bool {
        !matches!(self.wire, Wire::Closure(_))
    }
}

/// Puts a closure in the table; its number.
pub(crate) fn store_closure(f: Stored) -> u64 {
    let mut table = CLOSURES.lock().unwrap_or_else(|e| e.into_inner());
    let id = NEXT_CLOSURE.fetch_add(1, Ordering::AcqRel);
    table.insert(id, f);
    id
}

/// Runs `f` in a worker on each of the encoded arguments, appending its encoded result to
/// `out` and then `out`'s length to `ends`; stops at the first that fails, with the reason
/// (that argument taken). `entry` runs a registered entry by name.
pub(crate) fn call(
    f: &FuncRef,
    args: Args<'_, '_>,
    out: &mut Vec<u8>,
    ends: &mut Ends,
    entry: EntryRunner<'_>,
) -> Result<(), String> {
    match f.kind {
        KIND_CODE => {
            #[allow(unsafe_code)] // a code distance back to its function (see sys/mod.rs)
            // SAFETY: the distance was made by `trampoline_offset` on a `Trampoline` in the
            // pool's parent, and this worker checked when it started that it runs the parent's
            // very executable (`executable_identity`), so the same function sits there here.
            let run = unsafe { sys::trampoline_at::<Items<'_>, Ends>(f.value) };
            run(args, out, ends)
        }
        KIND_ENTRY => {
            while let Some(bytes) = args.next_task() {
                out.extend_from_slice(&entry(&f.name, bytes)?);
                ends.push((out.len(), 1));
            }
            Ok(())
        }
        KIND_CLOSURE => match stored_closure(f.value as u64) {
            Some(run) => run(args, out, ends),
            None => fail_one(args, format!("closure {} is not known to this worker", f.value)),
        },
        kind => fail_one(args, format!("unknown function kind {kind}")),
    }
}

/// The next argument fails for `reason` (nothing does if there is none).
fn fail_one(args: Args<'_, '_>, reason: String) -> Result<(), String> {
    match args.next_task() {
        Some(_) => Err(reason),
        None => Ok(()),
    }
}
