//! cpio newc reader and writer.
#![cfg_attr(not(feature = "std"), no_std)]
extern crate alloc;
