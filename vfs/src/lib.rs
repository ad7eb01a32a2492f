//! In-memory VFS.
#![no_std]
extern crate alloc;
