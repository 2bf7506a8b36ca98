//! Naming code across processes of one executable: a function as its distance from an anchor
//! function of this library, and back. The pool's workers run a task's function by that
//! distance, which names the same code in every process running the same executable, whatever
//! address the loader chose for it (ASLR moves the whole image, not its functions relative to
//! one another).

/// A tasks' runner: for each encoded argument that `A` (the tasks) gives, decodes it, runs,
/// appends the encoded result to the buffer and notes in `E` where it ends; stops at the
/// first argument it cannot decode, with the reason.
pub type Trampoline<A, E> = fn(&mut A, &mut Vec<u8>, &mut E) -> Result<(), String>;

/// The anchor every distance is measured from: one function of this image, never inlined (so
/// it has an address of its own).
#[inline(never)]
fn anchor() -> usize {
    std::hint::black_box(0)
}

/// The anchor's address.
fn anchor_address() -> usize {
    anchor as fn() -> usize as usize
}

/// The distance of `f` from the anchor, in bytes.
pub fn trampoline_offset<A, E>(f: Trampoline<A, E>) -> i64 {
    (f as usize as i64).wrapping_sub(anchor_address() as i64)
}

/// The function at `offset` bytes from the anchor.
///
/// # Safety
/// `offset` must be what [`trampoline_offset`] returned, for a function of this very type (`A` and
/// `E` the same up to lifetimes, which a `fn` item is generic over), in
/// a process running the same executable image (same file, same build), so that anchor plus
/// offset is the start of that function here too.
pub unsafe fn trampoline_at<A, E>(offset: i64) -> Trampoline<A, E> {
    let address = (anchor_address() as i64).wrapping_add(offset) as usize;
    // SAFETY: forwarded to the caller: the same image holds a function of type `Trampoline<A, E>`
    // at this address (its distance from the anchor is fixed when the image is linked), and a
    // fn pointer has the size and representation of a code address.
    unsafe { std::mem::transmute::<usize, Trampoline<A, E>>(address) }
}

/// A value of the zero-sized type `F`, made from nothing.
///
/// # Safety
/// `F` must be zero-sized, have no drop glue, and be inhabited (the caller has, or had, a
/// value of it): such a value holds no bytes and no state, so the one made here is the same
/// value as every other, as a copy of the caller's that `fork` would have made.
pub unsafe fn conjure_zst<F>() -> F {
    assert!(std::mem::size_of::<F>() == 0 && !std::mem::needs_drop::<F>());
    // SAFETY: a zero-sized, inhabited type has exactly one value, with no bytes to read; a
    // dangling, well-aligned pointer is valid for reading zero bytes (size checked above,
    // the rest forwarded to the caller).
    unsafe { std::ptr::read(std::ptr::NonNull::<F>::dangling().as_ptr()) }
}

/// Identity of the running executable file: device, inode, size and modification time of
/// `/proc/self/exe`.
pub fn executable_identity() -> std::io::Result<(u64, u64, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    // Opened, not stat'ed by path: qemu-user answers an open of /proc/self/exe with the
    // emulated program but lets a stat through to its own binary, so a parent started as
    // `qemu-aarch64 prog` and its spawned child (started through binfmt_misc) would disagree.
    // Natively the two are the same file, also when it has been deleted since.
    let meta = std::fs::File::open("/proc/self/exe")?.metadata()?;
    Ok((meta.dev(), meta.ino(), meta.size(), meta.mtime()))
}
