//! ktls runner library.
