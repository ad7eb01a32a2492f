//! The per-process file descriptor table.

use alloc::sync::Arc;
use alloc::vec::Vec;

use ktls_abi::fs::{CLOSE_RANGE_CLOEXEC, CLOSE_RANGE_UNSHARE, NR_OPEN, O_CLOEXEC};
use ktls_abi::Errno;

use crate::file::OpenFile;
use crate::Result;

/// The default RLIMIT_NOFILE soft limit.
pub const DEFAULT_NOFILE: usize = 1024;

#[derive(Clone)]
struct FdEntry {
    file: Arc<OpenFile>,
    cloexec: bool,
}

/// File descriptors: small integers naming shared [`OpenFile`]s, each with its own
/// FD_CLOEXEC flag. New descriptors take the lowest free number below the limit
/// (RLIMIT_NOFILE). `Clone` is fork: the copy refers to the same open files.
///
/// Closing a descriptor drops its reference to the open file; the last reference going
/// releases the file (a pipe end's writer count, a device's `release`), which may call
/// [`crate::Platform::wake`]: the kernel's lock around this table must not be one that its
/// wake takes.
#[derive(Clone)]
pub struct FdTable {
    slots: Vec<Option<FdEntry>>,
    limit: usize,
}

impl Default for FdTable {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for FdTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(fd, file, cloexec)| (fd, (file, cloexec))))
            .finish()
    }
}

impl FdTable {
    /// An empty table with the default limit (1024).
    pub fn new() -> Self {
        FdTable {
            slots: Vec::new(),
            limit: DEFAULT_NOFILE,
        }
    }

    /// The RLIMIT_NOFILE limit: descriptors are below it.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Sets RLIMIT_NOFILE. EPERM above NR_OPEN (as setrlimit). Open descriptors at or above
    /// a lowered limit stay open; new ones are allocated below it.
    pub fn set_limit(&mut self, limit: usize) -> Result<()> {
        if limit > NR_OPEN {
            return Err(Errno::EPERM);
        }
        self.limit = limit;
        Ok(())
    }

    fn entry(&self, fd: i32) -> Result<&FdEntry> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get(i))
            .and_then(|s| s.as_ref())
            .ok_or(Errno::EBADF)
    }

    fn entry_mut(&mut self, fd: i32) -> Result<&mut FdEntry> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get_mut(i))
            .and_then(|s| s.as_mut())
            .ok_or(Errno::EBADF)
    }

    /// The open file behind `fd` (EBADF if none).
    pub fn get(&self, fd: i32) -> Result<Arc<OpenFile>> {
        Ok(self.entry(fd)?.file.clone())
    }

    /// FD_CLOEXEC of `fd` (F_GETFD).
    pub fn cloexec(&self, fd: i32) -> Result<bool> {
        Ok(self.entry(fd)?.cloexec)
    }

    /// Sets FD_CLOEXEC of `fd` (F_SETFD).
    pub fn set_cloexec(&mut self, fd: i32, cloexec: bool) -> Result<()> {
        self.entry_mut(fd)?.cloexec = cloexec;
        Ok(())
    }

    /// Number of open descriptors.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Open descriptors in increasing order, with their FD_CLOEXEC.
    pub fn iter(&self) -> impl Iterator<Item = (i32, &Arc<OpenFile>, bool)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|e| (i as i32, &e.file, e.cloexec)))
    }

    /// ENOMEM if the table cannot grow to hold `fd` (as Linux's expand_files).
    fn place(&mut self, fd: usize, file: Arc<OpenFile>, cloexec: bool) -> Result<()> {
        if fd >= self.slots.len() {
            self.slots
                .try_reserve(fd + 1 - self.slots.len())
                .map_err(|_| Errno::ENOMEM)?;
            self.slots.resize(fd + 1, None);
        }
        // Any file already there is dropped (closed) here.
        self.slots[fd] = Some(FdEntry { file, cloexec });
        Ok(())
    }

    /// Installs `file` at the lowest free descriptor ≥ `min`. EMFILE if none is below the
    /// limit.
    fn alloc_from(&mut self, min: usize, file: Arc<OpenFile>, cloexec: bool) -> Result<i32> {
        let free = (min..self.limit)
            .find(|&i| self.slots.get(i).is_none_or(|s| s.is_none()))
            .ok_or(Errno::EMFILE)?;
        self.place(free, file, cloexec)?;
        Ok(free as i32)
    }

    /// Installs an open file at the lowest free descriptor (open, pipe, ...). EMFILE when
    /// the table is full.
    pub fn insert(&mut self, file: Arc<OpenFile>, cloexec: bool) -> Result<i32> {
        self.alloc_from(0, file, cloexec)
    }

    /// dup(2): a new descriptor (without FD_CLOEXEC) for the same open file.
    pub fn dup(&mut self, fd: i32) -> Result<i32> {
        let file = self.get(fd)?;
        self.alloc_from(0, file, false)
    }

    /// F_DUPFD / F_DUPFD_CLOEXEC: like dup, at the lowest free descriptor ≥ `min`. EINVAL if
    /// `min` is negative or not below the limit.
    pub fn dup_min(&mut self, fd: i32, min: i32, cloexec: bool) -> Result<i32> {
        let file = self.get(fd)?;
        let min = usize::try_from(min).map_err(|_| Errno::EINVAL)?;
        if min >= self.limit {
            return Err(Errno::EINVAL);
        }
        self.alloc_from(min, file, cloexec)
    }

    /// dup2(2): `new` becomes a copy of `old` (without FD_CLOEXEC), closing what `new` held.
    /// If they are equal, only checks that `old` is open. EBADF for a closed `old` or a `new`
    /// outside 0..limit.
    pub fn dup2(&mut self, old: i32, new: i32) -> Result<i32> {
        if old == new {
            self.entry(old)?;
            return Ok(new);
        }
        self.dup3(old, new, 0)
    }

    /// dup3(2): like dup2 but EINVAL when `old == new` or `flags` has anything but
    /// O_CLOEXEC, which sets FD_CLOEXEC on `new`.
    pub fn dup3(&mut self, old: i32, new: i32, flags: u64) -> Result<i32> {
        if flags & !O_CLOEXEC != 0 || old == new {
            return Err(Errno::EINVAL);
        }
        let slot = usize::try_from(new).map_err(|_| Errno::EBADF)?;
        if slot >= self.limit {
            return Err(Errno::EBADF);
        }
        let file = self.get(old)?;
        self.place(slot, file, flags & O_CLOEXEC != 0)?;
        Ok(new)
    }

    /// close(2). EBADF if `fd` is not open.
    pub fn close(&mut self, fd: i32) -> Result<()> {
        let slot = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        match self.slots.get_mut(slot).and_then(|s| s.take()) {
            Some(_) => {
                self.trim();
                Ok(())
            }
            None => Err(Errno::EBADF),
        }
    }

    /// close_range(2) over `first..=last`: closes the open descriptors, or with
    /// CLOSE_RANGE_CLOEXEC sets their FD_CLOEXEC. EINVAL for unknown flags or
    /// `first > last`. CLOSE_RANGE_UNSHARE is the kernel's to honour (unshare the table
    /// first); it is accepted here.
    pub fn close_range(&mut self, first: u32, last: u32, flags: u64) -> Result<()> {
        if flags & !(CLOSE_RANGE_CLOEXEC | CLOSE_RANGE_UNSHARE) != 0 || first > last {
            return Err(Errno::EINVAL);
        }
        let end = (last as usize).saturating_add(1).min(self.slots.len());
        for slot in self.slots.iter_mut().take(end).skip(first as usize) {
            if flags & CLOSE_RANGE_CLOEXEC != 0 {
                if let Some(e) = slot {
                    e.cloexec = true;
                }
            } else {
                *slot = None;
            }
        }
        self.trim();
        Ok(())
    }

    /// What execve does: closes every descriptor with FD_CLOEXEC.
    pub fn close_on_exec(&mut self) {
        for slot in &mut self.slots {
            if slot.as_ref().is_some_and(|e| e.cloexec) {
                *slot = None;
            }
        }
        self.trim();
    }

    fn trim(&mut self) {
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
    }
}
