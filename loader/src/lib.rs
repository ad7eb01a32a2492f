//! ELF loading plan and initial stack builder (see README of the crate).
#![no_std]
extern crate alloc;
