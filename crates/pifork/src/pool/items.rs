//! The items of a frame, to or from a pool worker: their bytes end to end, and where each
//! one is (every one of one size, or each its own).

/// Statuses of a result.
pub(crate) const STATUS_VALUE: u8 = 0;
/// The task panicked.
pub(crate) const STATUS_PANIC: u8 = 1;
/// The task could not run.
pub(crate) const STATUS_FAILED: u8 = 2;

/// Where the items of a frame are: each of one size, or each with its own (after its
/// status, for outcomes).
#[derive(Clone, Copy)]
enum Sizes<'a> {
    Same(usize),
    Each(&'a [u8], usize),
}

/// The items of a frame in turn: `(status, bytes)` (a request's are all values); a
/// request's are its tasks' arguments, taken as far as [`Items::allow`] lets them.
pub(crate) struct Items<'a> {
    data: &'a [u8],
    sizes: Sizes<'a>,
    left: usize,
    /// How many more may be taken before the items read as done.
    budget: usize,
}

impl<'a> Items<'a> {
    /// Reads `sizes` for `n` items over `data` (`with_status`: outcomes); None if they do not
    /// fit.
    pub fn parse(
        n: usize,
        data: &'a [u8],
        sizes: &'a [u8],
        with_status: bool,
    ) -> Option<Items<'a>> {
        let (&kind, rest) = sizes.split_first()?;
        let sizes = match kind {
            0 => {
                let size = u32::from_le_bytes(rest.try_into().ok()?) as usize;
                (size.checked_mul(n)? == data.len()).then_some(Sizes::Same(size))?
            }
            1 => {
                let width = if with_status { 5 } else { 4 };
                if rest.len() != n.checked_mul(width)? {
                    return None;
                }
                // The lengths must cover the data exactly: every item is then there.
                let total = rest.chunks_exact(width).try_fold(0usize, |sum, m| {
                    let len = u32::from_le_bytes(m[width - 4..].try_into().ok()?);
                    sum.checked_add(len as usize)
                })?;
                (total == data.len()).then_some(Sizes::Each(rest, width))?
            }
            _ => return None,
        };
        Some(Items { data, sizes, left: n, budget: usize::MAX })
    }

    /// One item: `bytes`.
    pub fn one(bytes: &'a [u8]) -> Items<'a> {
        Items { data: bytes, sizes: Sizes::Same(bytes.len()), left: 1, budget: 1 }
    }

    /// The items left.
    pub fn len(&self) -> usize {
        self.left
    }

    /// Lets `k` more be taken (and no more) before the items read as done.
    pub fn allow(&mut self, k: usize) {
        self.budget = k;
    }

    /// How many may be taken now.
    pub fn ready(&self) -> usize {
        self.left.min(self.budget)
    }

    /// The length of every item, if they all have one.
    pub fn same_size(&self) -> Option<usize> {
        match self.sizes {
            Sizes::Same(size) => Some(size),
            Sizes::Each(..) => None,
        }
    }

    /// The next item's bytes, if one may be taken.
    pub fn next_task(&mut self) -> Option<&'a [u8]> {
        self.next().map(|(_, bytes)| bytes)
    }

    /// The next item's bytes, if one may be taken, when every item is `size` bytes long
    /// (checked by the caller with [`Items::same_size`]): the loop of a batch.
    #[inline(always)]
    pub fn next_fixed(&mut self, size: usize) -> Option<&'a [u8]> {
        if self.left == 0 || self.budget == 0 {
            return None;
        }
        let (head, tail) = self.data.split_at_checked(size)?;
        self.data = tail;
        self.left -= 1;
        self.budget -= 1;
        Some(head)
    }

    /// The bytes of the `k` items that may be taken next, when every item is `size` bytes long
    /// (checked by the caller with [`Items::same_size`]); they stay until [`Items::skip`].
    pub fn peek_fixed(&self, size: usize, k: usize) -> Option<&'a [u8]> {
        if k > self.ready() {
            return None;
        }
        self.data.get(..k.checked_mul(size)?)
    }

    /// Takes the next `k` items, when every item is `size` bytes long and `k` may be taken.
    pub fn skip_fixed(&mut self, size: usize, k: usize) {
        let k = k.min(self.ready());
        self.data = &self.data[k * size..];
        self.left -= k;
        self.budget -= k;
    }

    /// The next `k` items, if they are values of one size: that size and their bytes.
    pub fn take_same(&mut self, k: usize) -> Option<(usize, &'a [u8])> {
        let Sizes::Same(size) = self.sizes else { return None };
        if k > self.ready() {
            return None;
        }
        let (head, tail) = self.data.split_at(k * size);
        self.data = tail;
        self.left -= k;
        self.budget -= k;
        Some((size, head))
    }
}

impl<'a> Iterator for Items<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        if self.left == 0 || self.budget == 0 {
            return None;
        }
        let (status, len) = match &mut self.sizes {
            Sizes::Same(size) => (STATUS_VALUE, *size),
            Sizes::Each(meta, width) => {
                let (head, tail) = meta.split_at(*width);
                *meta = tail;
                let (status, len) = if *width == 5 { (head[0], &head[1..]) } else { (0, head) };
                (status, u32::from_le_bytes(len.try_into().ok()?) as usize)
            }
        };
        if self.data.len() < len {
            return None;
        }
        let (head, tail) = self.data.split_at(len);
        self.data = tail;
        self.left -= 1;
        self.budget -= 1;
        Some((status, head))
    }
}
